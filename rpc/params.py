"""The chain's param types: addresses, hashes, block ids, heights, asset ids, signed
transactions, and the limits and cursors of paged lists.

Each checks a JSON value and converts it into what a handler wants, so a
handler sees public keys and hash bytes, never text it must parse again. Bytes
travel as ``0x``-prefixed hex; accounts as text addresses with the network's
prefix, whose checksum refuses a typo.

A paged method returns at most ``limit`` items and a ``next_cursor`` (null on
the last page); the next call passes that cursor back. A cursor is opaque
text to a client; a cursor this node could not have written is invalid params.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mura.chain.address import decode_address
from mura.chain.assets import MAX_ASSET_ID_LENGTH, asset_id_problem
from mura.chain.errors import Invalid
from mura.chain.transaction import MAX_TRANSACTION_BYTES, Transaction, decode_transaction_hex
from mura.rpc.declarations import (
    STRING,
    Param,
    ParamInvalid,
    ParamType,
    format_number,
    integer,
    json_type_name,
)

_ADDRESS_CHARACTERS = "023456789acdefghjklmnpqrstuvwxyz"
_HASH_TEXT = re.compile(r"0x[0-9a-fA-F]{64}")

#: A 32-byte hash as the RPC writes it.
HASH_SCHEMA: dict[str, Any] = {"type": "string", "pattern": "^0x[0-9a-f]{64}$"}
#: The largest height a param may name: the codec's integers are 64-bit.
MAX_HEIGHT = 2**63 - 1
#: Items a paged method returns when the call gives no limit.
DEFAULT_PAGE = 100
#: The most items a paged method returns in one call.
MAX_PAGE = 1000
#: A transaction cursor: the height and the index of the last transaction returned.
_TRANSACTION_CURSOR = re.compile(r"([0-9]{1,19}):([0-9]{1,10})")
_MAX_INDEX = 2**32 - 1


def to_hex(data: bytes) -> str:
    """Bytes as the RPC writes them: ``0x`` and lowercase hex."""
    return "0x" + data.hex()


def address_type(prefix: str) -> ParamType:
    """A text address on the network with ``prefix``, converted to its public key."""

    def check(value: Any) -> bytes:
        text = STRING.check(value)
        try:
            return decode_address(text, prefix)
        except Invalid as error:
            raise ParamInvalid(error.message, rule=error.rule) from None

    pattern = f"^{prefix}1[{_ADDRESS_CHARACTERS}]{{58}}$"
    return ParamType({"type": "string", "pattern": pattern}, check)


def _check_hash(value: Any) -> bytes:
    text = STRING.check(value)
    if not _HASH_TEXT.fullmatch(text):
        raise ParamInvalid(f"expected 0x and 64 hex digits, got {len(text)} characters")
    return bytes.fromhex(text[2:])


#: A block or transaction hash, converted to its 32 bytes (upper-case hex is accepted).
HASH = ParamType({"type": "string", "pattern": "^0x[0-9a-fA-F]{64}$"}, _check_hash)


@dataclass(frozen=True, slots=True)
class BlockId:
    """A block named by its height or by its hash: exactly one is set."""

    height: int | None = None
    hash: bytes | None = None

    def describe(self) -> dict[str, Any]:
        """The id as error ``data`` shows it."""
        return {"height": self.height} if self.hash is None else {"hash": to_hex(self.hash)}


def _check_block_id(value: Any) -> BlockId:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= MAX_HEIGHT:
            raise ParamInvalid(f"a height is from 0 to {MAX_HEIGHT}, got {format_number(value)}")
        return BlockId(height=value)
    if isinstance(value, str):
        return BlockId(hash=_check_hash(value))
    raise ParamInvalid(f"expected a height (integer) or a block hash (0x string), got {json_type_name(value)}")


#: A block's height (integer) or hash (``0x`` string).
BLOCK_ID = ParamType(
    {"oneOf": [{"type": "integer", "minimum": 0, "maximum": MAX_HEIGHT}, dict(HASH.schema)]},
    _check_block_id,
)


def _check_transaction_hex(value: Any) -> Transaction:
    text = STRING.check(value)
    try:
        return decode_transaction_hex(text)
    except Invalid as error:
        raise ParamInvalid(error.message, rule=error.rule) from None


#: A signed transaction's canonical encoding in hex (``0x`` optional), decoded.
TRANSACTION_HEX = ParamType(
    {"type": "string", "pattern": "^(0x)?([0-9a-fA-F]{2})+$", "maxLength": 2 + 2 * MAX_TRANSACTION_BYTES},
    _check_transaction_hex,
)


#: A final height (``0`` is the genesis block).
HEIGHT = integer(minimum=0, maximum=MAX_HEIGHT)


def _check_asset(value: Any) -> str:
    text: str = STRING.check(value)
    problem = asset_id_problem(text)
    if problem is not None:
        raise ParamInvalid(problem, rule="invalid_asset_id")
    return text


#: An asset id such as ``NAC`` or ``NISHI-2031-01``.
ASSET = ParamType(
    {"type": "string", "pattern": "^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*$", "maxLength": MAX_ASSET_ID_LENGTH},
    _check_asset,
)


def height_param(description: str) -> Param:
    """An optional height: the state after that block; the head's when absent."""
    return Param("height", HEIGHT, description, required=False)


def limit_param(*, default: int = DEFAULT_PAGE, maximum: int = MAX_PAGE) -> Param:
    """How many items a page holds at most."""
    return Param(
        "limit", integer(minimum=1, maximum=maximum), f"Most items to return: 1 to {maximum}.",
        required=False, default=default,
    )


def cursor_param(check: Callable[[Any], Any], what: str) -> Param:
    """The ``next_cursor`` of the previous page; absent for the first page."""
    schema: dict[str, Any] = {"type": "string", "maxLength": 128}
    return Param(
        "cursor", ParamType(schema, check), f"The previous page's next_cursor ({what}); absent for the first page.",
        required=False,
    )


def _cursor_text(value: Any) -> str:
    text: str = STRING.check(value)
    if len(text) > 128:
        raise ParamInvalid(f"not a cursor this node returned: {len(text)} characters")
    return text


def address_cursor(prefix: str) -> Callable[[Any], bytes]:
    """The check of a cursor that is the last account of a page, converted to its public key."""

    def check(value: Any) -> bytes:
        text = _cursor_text(value)
        try:
            return decode_address(text, prefix)
        except Invalid as error:
            raise ParamInvalid(f"not a cursor this node returned: {error.message}") from None

    return check


def check_asset_cursor(value: Any) -> str:
    """A cursor that is the last asset id of a page."""
    text = _cursor_text(value)
    problem = asset_id_problem(text)
    if problem is not None:
        raise ParamInvalid(f"not a cursor this node returned: {problem}")
    return text


def check_transaction_cursor(value: Any) -> tuple[int, int]:
    """A cursor ``HEIGHT:INDEX``: where the last transaction of a page sits."""
    text = _cursor_text(value)
    match = _TRANSACTION_CURSOR.fullmatch(text)
    if match is None:
        raise ParamInvalid(f"not a cursor this node returned: expected HEIGHT:INDEX, got {text[:40]!r}")
    height, index = int(match.group(1)), int(match.group(2))
    if height > MAX_HEIGHT or index > _MAX_INDEX:
        raise ParamInvalid("not a cursor this node returned: height or index out of range")
    return height, index


def transaction_cursor(height: int, index: int) -> str:
    """The cursor ``check_transaction_cursor`` reads back."""
    return f"{height}:{index}"
