"""Tests for p2p/slots.py: handshake slots in total, per source, and kept for known peers."""

from __future__ import annotations

import pytest

from mura.p2p.slots import HandshakeSlots, normalize_address


def test_strangers_are_capped_per_source_and_share_the_unreserved_slots() -> None:
    slots = HandshakeSlots(total=6, per_source=2, reserved=3, known_sources=["10.0.0.1"])
    first = [slots.take("192.0.2.1") for _ in range(3)]
    assert first[2] is None and all(first[:2]), "a third handshake from one stranger is turned away"
    assert slots.take("192.0.2.2") is not None
    assert slots.take("192.0.2.3") is None, "three slots are kept for known peers"
    known = [slots.take("10.0.0.1") for _ in range(4)]
    assert all(known[:3]) and known[3] is None, "known peers have the rest, and the total caps them too"
    first[0].release()  # type: ignore[union-attr]
    first[0].release()  # type: ignore[union-attr]
    assert slots.pending == 5
    assert slots.take("192.0.2.3") is not None


def test_addresses_become_known_by_reaching_or_authenticating_a_peer() -> None:
    slots = HandshakeSlots(total=2, per_source=1, reserved=1)
    assert slots.take("192.0.2.9") is not None and slots.take("192.0.2.8") is None
    slots.learn(b"peer", "::ffff:192.0.2.8")
    assert slots.is_known("192.0.2.8") and slots.take("192.0.2.8") is not None
    for index in range(5):
        slots.learn(b"peer", f"198.51.100.{index}", keep=4)
    assert not slots.is_known("192.0.2.8") and slots.is_known("198.51.100.4"), "only the latest four per peer"


def test_normalize_address() -> None:
    assert normalize_address("::ffff:127.0.0.1") == "127.0.0.1"
    assert normalize_address("[::1]") == "::1"
    assert normalize_address("Validator.Example") == "validator.example"


def test_invalid_slot_limits() -> None:
    with pytest.raises(ValueError):
        HandshakeSlots(total=4, per_source=1, reserved=4)
