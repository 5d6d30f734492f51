"""Tests for p2p/slots.py: handshake slots in total, per source (known sources
included), kept for known peers, and taken back from the largest holder."""

from __future__ import annotations

import functools

import pytest

from mura.p2p.slots import HandshakeSlots, Slot, normalize_address, source_of

KEY_D, KEY_B, KEY_C = b"d" * 32, b"b" * 32, b"c" * 32


def test_strangers_are_capped_per_source_and_share_the_unreserved_slots() -> None:
    slots = HandshakeSlots(total=6, per_source=2, reserved=3, known_peers=[(KEY_D, "10.0.0.1")])
    first = [slots.take("192.0.2.1") for _ in range(3)]
    assert first[2] is None and all(first[:2]), "a third handshake from one stranger is turned away"
    assert slots.take("192.0.2.2") is not None
    assert slots.take("192.0.2.3") is None, "three slots are kept for known peers"
    known = [slots.take("10.0.0.1") for _ in range(4)]
    assert all(known[:3]) and known[3] is None, "known peers have the rest, and their own cap (2 + 1 key) too"
    first[0].release()  # type: ignore[union-attr]
    first[0].release()  # type: ignore[union-attr]
    assert slots.pending == 5
    assert slots.take("192.0.2.3") is not None


def test_a_known_source_is_capped_at_its_keys_plus_the_stranger_allowance() -> None:
    """A dishonest validator from its own configured address once took every slot."""
    slots = HandshakeSlots(total=16, per_source=4, reserved=8, known_peers=[(KEY_D, "10.0.0.4"), (KEY_B, "10.0.0.2")])
    held = [slot for slot in (slots.take("10.0.0.4") for _ in range(16)) if slot is not None]
    assert len(held) == 5 == slots.cap("10.0.0.4") and slots.pending == 5
    assert slots.take("10.0.0.2") is not None


def test_validators_sharing_a_host_each_have_room() -> None:
    """Seven validators on 127.0.0.1: a node's six peers all get in at once after a restart."""
    peers = [(bytes([index]) * 32, "127.0.0.1") for index in range(6)]
    slots = HandshakeSlots(total=16, per_source=4, reserved=8, known_peers=peers)
    assert slots.cap("127.0.0.1") == 10
    assert all(slots.take("127.0.0.1") is not None for _ in range(10)) and slots.take("127.0.0.1") is None


def test_a_known_peer_takes_the_slot_of_the_oldest_handshake_of_the_largest_holder() -> None:
    evicted: list[str] = []
    slots = HandshakeSlots(total=8, per_source=2, reserved=4,
                           known_peers=[(KEY_D, "10.0.0.4"), (KEY_B, "10.0.0.2"), (KEY_C, "10.0.0.3")])
    strangers = [slots.take("192.0.2.1", on_evict=lambda: evicted.append("stranger")) for _ in range(2)]
    dishonest = [slots.take("10.0.0.4", on_evict=functools.partial(evicted.append, f"d{n}")) for n in range(3)]
    others = [slots.take("10.0.0.3", on_evict=lambda: evicted.append("c")) for _ in range(3)]
    assert all(strangers + dishonest + others) and slots.pending == 8
    assert slots.take("192.0.2.9") is None, "a stranger never takes a slot away"
    honest = slots.take("10.0.0.2")
    assert honest is not None and evicted == ["d0"], "the oldest of the largest holders (3 each) goes first"
    assert dishonest[0].evicted and not dishonest[0]._held  # type: ignore[union-attr]
    assert slots.take("10.0.0.2") is not None and evicted == ["d0", "c"]
    assert slots.take("10.0.0.2") is not None and evicted[-1] == "stranger", "strangers give way to any known peer"
    assert slots.take("10.0.0.2") is None, "10.0.0.2 is at its cap (2 + 1 key)"
    assert slots.take("10.0.0.4") is not None and evicted[-1] == "stranger"
    assert slots.take("10.0.0.4") is None, "10.0.0.4 is at its cap"
    assert slots.take("10.0.0.3") is None, "no one holds two more than 10.0.0.3 (2) now"
    assert slots.pending == 8 and len(evicted) == 4


def test_a_holder_with_one_more_slot_than_the_newcomer_keeps_it() -> None:
    slots = HandshakeSlots(total=4, per_source=2, reserved=2, known_peers=[(KEY_D, "10.0.0.4"), (KEY_B, "10.0.0.2")])
    held = [slots.take("10.0.0.4"), slots.take("10.0.0.4"), slots.take("10.0.0.2"), slots.take("10.0.0.2")]
    assert all(held) and slots.pending == 4
    assert slots.take("10.0.0.2") is None and slots.take("10.0.0.4") is None
    assert not any(slot.evicted for slot in held if isinstance(slot, Slot))


def test_addresses_become_known_by_reaching_or_authenticating_a_peer() -> None:
    slots = HandshakeSlots(total=2, per_source=1, reserved=1)
    assert slots.take("192.0.2.9") is not None and slots.take("192.0.2.8") is None
    slots.learn(b"peer", "::ffff:192.0.2.8")
    assert slots.is_known("192.0.2.8") and slots.take("192.0.2.8") is not None
    assert slots.cap("192.0.2.8") == 2, "one key expected there"
    for index in range(5):
        slots.learn(b"peer", f"198.51.100.{index}", keep=4)
    assert not slots.is_known("192.0.2.8") and slots.is_known("198.51.100.4"), "only the latest four per peer"
    assert slots.cap("192.0.2.8") == 1


def test_an_ipv6_source_is_its_64() -> None:
    assert source_of("2001:db8:1:2:aaaa::1") == source_of("[2001:db8:1:2:ffff::9]") == "2001:db8:1:2::/64"
    assert source_of("2001:db8:1:3::1") != source_of("2001:db8:1:2::1")
    assert source_of("::ffff:192.0.2.1") == "192.0.2.1"
    slots = HandshakeSlots(total=8, per_source=2, reserved=0)
    assert slots.take("2001:db8::1") and slots.take("2001:db8::2") and slots.take("2001:db8::3") is None


def test_normalize_address() -> None:
    assert normalize_address("::ffff:127.0.0.1") == "127.0.0.1"
    assert normalize_address("[::1]") == "::1"
    assert normalize_address("Validator.Example") == "validator.example"


def test_invalid_slot_limits() -> None:
    with pytest.raises(ValueError):
        HandshakeSlots(total=4, per_source=1, reserved=4)
