"""Frames: the unit nodes exchange over a link.

On the wire a frame is the canonical msgpack array ``[kind, payload]``: ``kind``
is a short text tag that selects the receiver's handler, ``payload`` any value
the canonical codec encodes (usually bytes or arrays of them). Whether a kind
is known is the receiver's business; this module only checks the shape and
the size cap, on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mura.chain import codec
from mura.chain.errors import DecodeError

#: Largest encoded frame a node sends or accepts unless configured otherwise.
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024

#: Longest kind tag, in characters.
MAX_KIND_LENGTH = 32


class FrameTooLarge(ValueError):
    """This node tried to send a frame above the size cap: a bug in the caller,
    not a peer's fault, so it is not an ``Invalid``."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame."""

    #: The tag that selects the handler, e.g. ``transactions``.
    kind: str
    #: The decoded payload; its handler checks its shape.
    payload: Any


def encode_frame(kind: str, payload: Any, *, max_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """The wire bytes of ``[kind, payload]``; refuses a bad kind or an oversized frame."""
    if not isinstance(kind, str) or not 0 < len(kind) <= MAX_KIND_LENGTH:
        raise ValueError(f"a frame kind is 1 to {MAX_KIND_LENGTH} characters of text, got {kind!r}")
    data = codec.encode([kind, payload])
    if len(data) > max_size:
        raise FrameTooLarge(f"a {kind!r} frame of {len(data)} bytes exceeds the {max_size}-byte cap")
    return data


def decode_frame(data: bytes, *, max_size: int = DEFAULT_MAX_FRAME_SIZE) -> Frame:
    """Decode untrusted bytes into a ``Frame``; anything malformed is a ``DecodeError``."""
    kind, payload = codec.read_fields(codec.decode(data, max_size=max_size), "frame", 2)
    kind = codec.read_str(kind, "frame.kind", max_length=MAX_KIND_LENGTH)
    if not kind:
        raise DecodeError("frame.kind: empty")
    return Frame(kind, payload)
