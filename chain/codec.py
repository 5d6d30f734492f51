"""Canonical msgpack: one encoding per value, strict decoding.

Wire types are msgpack arrays of fields in a fixed order. Only integers, byte
strings, text strings, booleans and arrays appear on the wire; maps, floats and
extension types never do. ``decode`` accepts exactly the bytes ``encode``
produces for the decoded value: a non-minimal integer, trailing bytes or an
oversized input is refused with ``DecodeError`` and nothing else.

The ``read_*`` helpers check one field each; wire types build their decoders
from them so every complaint names the field (``transaction.nonce: ...``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Generic, TypeVar

import msgpack

from mura.chain.errors import DecodeError

#: Largest input ``decode`` accepts unless a caller asks for less.
DEFAULT_MAX_SIZE = 16 * 1024 * 1024

#: Longest array any wire type needs (a block's 20,000 transactions), with room to spare.
MAX_ARRAY_LENGTH = 65_536
#: Deepest nesting of arrays any wire type needs, with room to spare.
MAX_DEPTH = 16

MIN_INT = -(2**63)
MAX_INT = 2**64 - 1

_packer_options = {"use_bin_type": True, "strict_types": False}


def encode(value: Any) -> bytes:
    """The canonical msgpack encoding of ``value`` (tuples encode as arrays)."""
    return msgpack.packb(value, **_packer_options)  # type: ignore[no-any-return]


def _refuse_map(pairs: Any) -> Any:
    raise DecodeError("maps are not allowed on the wire")


def _refuse_extension(code: int, data: bytes) -> Any:
    raise DecodeError(f"extension type {code} is not allowed on the wire")


_UNPACKER_OPTIONS: dict[str, Any] = {
    "raw": False,
    "use_list": True,
    "strict_map_key": True,
    "object_pairs_hook": _refuse_map,
    "ext_hook": _refuse_extension,
    # Refused by the C unpacker before any Python object is built for them.
    "max_array_len": MAX_ARRAY_LENGTH,
}


def decode(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> Any:
    """Decode one canonical value from ``data``, which must hold nothing else."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise DecodeError(f"input is {len(data)} bytes, the limit is {max_size}")
    if len(data) == 0:
        raise DecodeError("input is empty")
    try:
        value = msgpack.unpackb(data, **_UNPACKER_OPTIONS)
    except DecodeError:
        raise
    except msgpack.ExtraData:
        raise DecodeError("trailing bytes after the value") from None
    except (ValueError, RecursionError, msgpack.UnpackException) as error:
        raise DecodeError(f"not valid msgpack: {error}") from None
    _check_shape(value)
    if encode(value) != bytes(data):
        raise DecodeError("not the canonical encoding (a value is encoded in a longer form than needed)")
    return value


def decode_head(data: bytes, *, count: int, max_size: int = DEFAULT_MAX_SIZE) -> Any:
    """The first of the ``count`` fields of the array encoded in ``data``, read without
    parsing the others (a block's header without its transactions). The field must be
    canonical; the rest is left for a full ``decode`` to check."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise DecodeError(f"input is {len(data)} bytes, the limit is {max_size}")
    unpacker = msgpack.Unpacker(max_buffer_size=max(len(data), 1), **_UNPACKER_OPTIONS)
    unpacker.feed(data)
    try:
        length = unpacker.read_array_header()
        start = unpacker.tell()
        first = unpacker.unpack()
    except DecodeError:
        raise
    except (ValueError, RecursionError, msgpack.UnpackException, msgpack.OutOfData) as error:
        raise DecodeError(f"not valid msgpack: {error!r}") from None
    if length != count:
        raise DecodeError(f"expected an array of {count} fields, got {length}")
    _check_shape(first)
    if encode(first) != bytes(data[start : unpacker.tell()]) or encode([None] * count)[:start] != bytes(data[:start]):
        raise DecodeError("not the canonical encoding (a value is encoded in a longer form than needed)")
    return first


_SCALARS = (int, bytes, str, bool, type(None))


def _check_shape(value: Any) -> None:
    """Only integers, bytes, text, booleans, nil and arrays (no floats, no
    timestamps or other extension types), nested at most ``MAX_DEPTH`` deep."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, _SCALARS):
            continue
        if not isinstance(item, list):
            raise DecodeError(f"{type(item).__name__} values are not allowed on the wire")
        if depth >= MAX_DEPTH:
            raise DecodeError(f"arrays nested more than {MAX_DEPTH} deep")
        stack.extend((child, depth + 1) for child in item)


# --- field readers ----------------------------------------------------------


def read_fields(value: Any, what: str, count: int) -> list[Any]:
    """``value`` must be an array of exactly ``count`` fields."""
    if not isinstance(value, list):
        raise DecodeError(f"{what}: expected an array of {count} fields, got {_kind(value)}")
    if len(value) != count:
        problem = "missing fields" if len(value) < count else "unknown extra fields"
        raise DecodeError(f"{what}: expected {count} fields, got {len(value)} ({problem})")
    return value


def read_list(value: Any, what: str, *, max_length: int) -> list[Any]:
    """``value`` must be an array of at most ``max_length`` items."""
    if not isinstance(value, list):
        raise DecodeError(f"{what}: expected an array, got {_kind(value)}")
    if len(value) > max_length:
        raise DecodeError(f"{what}: {len(value)} items, the limit is {max_length}")
    return value


def read_int(value: Any, what: str, *, minimum: int = 0, maximum: int = MAX_INT) -> int:
    """``value`` must be an integer (not a boolean) within ``[minimum, maximum]``."""
    if type(value) is not int:
        raise DecodeError(f"{what}: expected an integer, got {_kind(value)}")
    if not minimum <= value <= maximum:
        raise DecodeError(f"{what}: {value} is outside {minimum}..{maximum}")
    return value


def read_bytes(value: Any, what: str, *, length: int | None = None, max_length: int | None = None) -> bytes:
    """``value`` must be a byte string, of exactly ``length`` or at most ``max_length`` bytes."""
    if not isinstance(value, bytes):
        raise DecodeError(f"{what}: expected bytes, got {_kind(value)}")
    if length is not None and len(value) != length:
        raise DecodeError(f"{what}: expected {length} bytes, got {len(value)}")
    if max_length is not None and len(value) > max_length:
        raise DecodeError(f"{what}: {len(value)} bytes, the limit is {max_length}")
    return value


def read_str(value: Any, what: str, *, max_length: int) -> str:
    """``value`` must be a text string of at most ``max_length`` characters."""
    if not isinstance(value, str):
        raise DecodeError(f"{what}: expected text, got {_kind(value)}")
    if len(value) > max_length:
        raise DecodeError(f"{what}: {len(value)} characters, the limit is {max_length}")
    return value


def read_bool(value: Any, what: str) -> bool:
    """``value`` must be a boolean."""
    if not isinstance(value, bool):
        raise DecodeError(f"{what}: expected a boolean, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", bytes: "bytes", str: "text", list: "an array"}
    return names.get(type(value), type(value).__name__)


_Value = TypeVar("_Value")


class RecentlyDecoded(Generic[_Value]):
    """Values decoded lately, by the SHA-256 of their canonical bytes.

    The same bytes reach a node several times (a transaction by gossip, then in a
    proposal, then in the VIEW-CHANGEs and NEW-VIEW that carry that proposal).
    Decoding is deterministic and the decoded types are immutable, so the same
    bytes may share one decoded value. Bounded: the least recently used go first.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._values: OrderedDict[bytes, _Value] = OrderedDict()

    def __len__(self) -> int:
        return len(self._values)

    def get(self, digest: bytes) -> _Value | None:
        value = self._values.get(digest)
        if value is not None:
            self._values.move_to_end(digest)
        return value

    def clear(self) -> None:
        self._values.clear()

    def put(self, digest: bytes, value: _Value) -> None:
        self._values[digest] = value
        if len(self._values) > self._capacity:
            self._values.popitem(last=False)
