"""Tests for p2p/frames.py: the ``[kind, payload]`` encoding and its size cap."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from mura.chain import codec
from mura.chain.errors import DecodeError
from mura.p2p.frames import MAX_KIND_LENGTH, Frame, FrameTooLarge, decode_frame, encode_frame


@pytest.mark.parametrize("payload", [b"", b"\x00" * 100, [b"a", [1, 2], "text", True, None], 2**64 - 1])
def test_frame_round_trip(payload: Any) -> None:
    assert decode_frame(encode_frame("data", payload)) == Frame("data", payload)


def test_frame_is_canonical_msgpack_of_kind_and_payload() -> None:
    assert encode_frame("data", (b"x", 1)) == codec.encode(["data", [b"x", 1]])


def test_invalid_frame_too_large_to_send() -> None:
    with pytest.raises(FrameTooLarge):
        encode_frame("data", b"x" * 100, max_size=100)


@pytest.mark.parametrize("kind", ["", "k" * (MAX_KIND_LENGTH + 1), b"data", 7])
def test_invalid_frame_kind_to_send(kind: Any) -> None:
    with pytest.raises(ValueError):
        encode_frame(kind, b"")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xc1garbage", id="not msgpack"),
        pytest.param(codec.encode(b"just bytes"), id="not an array"),
        pytest.param(codec.encode(["data"]), id="one field"),
        pytest.param(codec.encode(["data", b"", b""]), id="three fields"),
        pytest.param(codec.encode([b"data", b""]), id="kind is bytes"),
        pytest.param(codec.encode(["", b""]), id="empty kind"),
        pytest.param(codec.encode(["k" * (MAX_KIND_LENGTH + 1), b""]), id="long kind"),
        pytest.param(msgpack.packb(["data", {"a": 1}]), id="map payload"),
        pytest.param(msgpack.packb(["data", 1.5]), id="float payload"),
        pytest.param(codec.encode(["data", b""]) + b"\x00", id="trailing bytes"),
    ],
)
def test_invalid_frame_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_frame(data)


def test_invalid_frame_above_the_receive_cap() -> None:
    data = encode_frame("data", b"x" * 1000)
    with pytest.raises(DecodeError, match="limit"):
        decode_frame(data, max_size=len(data) - 1)
