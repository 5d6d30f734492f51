"""Tests for p2p/channel.py: sealing and opening, one counter per direction."""

from __future__ import annotations

import pytest

from mura.p2p.channel import SEAL_OVERHEAD, FrameNotAuthentic, SecureChannel

TO_LISTENER, TO_DIALER = b"d" * 32, b"l" * 32


def pair() -> tuple[SecureChannel, SecureChannel]:
    return (SecureChannel(send_key=TO_LISTENER, receive_key=TO_DIALER),
            SecureChannel(send_key=TO_DIALER, receive_key=TO_LISTENER))


def test_frames_open_in_order_and_are_not_plaintext() -> None:
    dialer, listener = pair()
    sealed = [dialer.seal(b"frame %d" % index) for index in range(3)]
    assert all(b"frame" not in message and len(message) == 7 + SEAL_OVERHEAD for message in sealed)
    assert len(set(sealed[index][:7] for index in range(3))) == 3, "each counter gives another keystream"
    assert [listener.open(message) for message in sealed] == [b"frame 0", b"frame 1", b"frame 2"]
    assert (dialer.sealed, listener.opened) == (3, 3)
    assert dialer.open(listener.seal(b"back")) == b"back"


@pytest.mark.parametrize("attack", ["altered", "replayed", "reordered", "reflected", "truncated"])
def test_invalid_message_does_not_open(attack: str) -> None:
    dialer, listener = pair()
    first, second = dialer.seal(b"first"), dialer.seal(b"second")
    if attack == "altered":
        message = first[:-1] + bytes([first[-1] ^ 1])
    elif attack == "replayed":
        listener.open(first)
        message = first
    elif attack == "reordered":
        message = second
    elif attack == "reflected":
        message = listener.seal(b"first")  # the listener's own direction
    else:
        message = first[: SEAL_OVERHEAD - 1]
    with pytest.raises(FrameNotAuthentic):
        listener.open(message)
    opened = listener.opened
    assert listener.open(second if attack == "replayed" else first) and listener.opened == opened + 1


def test_invalid_keys() -> None:
    with pytest.raises(ValueError):
        SecureChannel(send_key=TO_LISTENER, receive_key=TO_LISTENER)
    with pytest.raises(ValueError):
        SecureChannel(send_key=b"short", receive_key=TO_DIALER)
