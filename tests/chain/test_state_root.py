"""Tests for chain/state_root.py: the lattice hash behind the state root."""

from __future__ import annotations

import hashlib
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mura.chain import codec
from mura.chain.errors import DecodeError
from mura.chain.keys import sha256
from mura.chain.state_root import LANES, SIZE, LatticeHash, update_lattice

Entries = dict[bytes, bytes]


def _lanes(lattice: LatticeHash) -> tuple[int, ...]:
    return struct.unpack(f"<{LANES}H", lattice.to_bytes())


def _from_scratch(entries: Entries) -> LatticeHash:
    lattice = LatticeHash()
    for key, value in entries.items():
        lattice = lattice.add(LatticeHash.of_entry(key, value))
    return lattice


def test_entry_is_the_shake128_expansion_of_its_encoding() -> None:
    expansion = hashlib.shake_128(codec.encode([b"a\x01", b"value"])).digest(SIZE)
    assert LatticeHash.of_entry(b"a\x01", b"value").to_bytes() == expansion


def test_add_is_lane_wise_modulo_2_16() -> None:
    first, second = LatticeHash.of_entry(b"k1", b"v1"), LatticeHash.of_entry(b"k2", b"v2")
    expected = tuple((a + b) % 65536 for a, b in zip(_lanes(first), _lanes(second), strict=True))
    assert _lanes(first.add(second)) == expected
    assert any(a + b >= 65536 for a, b in zip(_lanes(first), _lanes(second), strict=True))  # the wrap is exercised


def test_subtract_is_lane_wise_modulo_2_16() -> None:
    first, second = LatticeHash.of_entry(b"k1", b"v1"), LatticeHash.of_entry(b"k2", b"v2")
    expected = tuple((a - b) % 65536 for a, b in zip(_lanes(first), _lanes(second), strict=True))
    assert _lanes(first.subtract(second)) == expected


def test_empty_root() -> None:
    assert LatticeHash().to_bytes() == bytes(SIZE)
    assert LatticeHash().root() == sha256(bytes(SIZE))


def test_root_is_sha256_of_the_lanes() -> None:
    lattice = LatticeHash.of_entry(b"k", b"v")
    assert lattice.root() == sha256(lattice.to_bytes())
    assert len(lattice.root()) == 32


def test_order_independent() -> None:
    entries = [LatticeHash.of_entry(bytes([i]), bytes([i]) * i) for i in range(12)]
    forward = LatticeHash()
    for entry in entries:
        forward = forward.add(entry)
    shuffled = entries[:]
    random.Random(7).shuffle(shuffled)
    backward = LatticeHash()
    for entry in shuffled:
        backward = backward.add(entry)
    assert forward == backward
    assert forward.root() == backward.root()


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.binary(max_size=8), st.binary(max_size=8), max_size=10), st.randoms(use_true_random=False))
def test_order_independent_any_entries(entries: Entries, shuffler: random.Random) -> None:
    items = list(entries.items())
    shuffler.shuffle(items)
    assert _from_scratch(dict(items)) == _from_scratch(entries)


def test_add_then_subtract_returns_to_the_start() -> None:
    start = _from_scratch({b"a": b"1", b"b": b"2"})
    entry = LatticeHash.of_entry(b"c", b"3")
    assert start.add(entry).subtract(entry) == start
    assert start.subtract(entry).add(entry) == start
    assert start.add(entry) != start
    assert LatticeHash().subtract(start).add(start) == LatticeHash()


def test_to_bytes_from_bytes_round_trip() -> None:
    lattice = _from_scratch({b"a": b"1", b"b": b"2", b"c": b"3"})
    assert LatticeHash.from_bytes(lattice.to_bytes()) == lattice
    assert LatticeHash.from_bytes(bytes(SIZE)) == LatticeHash()


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=SIZE, max_size=SIZE))
def test_from_bytes_to_bytes_round_trip(data: bytes) -> None:
    assert LatticeHash.from_bytes(data).to_bytes() == data


@pytest.mark.parametrize("size", [0, SIZE - 1, SIZE + 1])
def test_invalid_from_bytes_length(size: int) -> None:
    with pytest.raises(DecodeError, match="lattice hash"):
        LatticeHash.from_bytes(bytes(size))


def test_distinct_single_entries_give_distinct_roots() -> None:
    entries = [(b"a", b"1"), (b"a", b"2"), (b"b", b"1"), (b"a1", b""), (b"a", b"1\x00"), (b"", b"a1")]
    roots = {_from_scratch({key: value}).root() for key, value in entries}
    assert len(roots) == len(entries)
    assert LatticeHash().root() not in roots


# --- update_lattice ------------------------------------------------------------------


def _changes(before: Entries, after: Entries) -> list[tuple[bytes, bytes | None, bytes | None]]:
    return [(key, before.get(key), after.get(key)) for key in sorted(before.keys() | after.keys())]


def test_update_lattice_adds_changes_and_removes() -> None:
    before = {b"a": b"1", b"b": b"2", b"c": b"3"}
    after = {b"a": b"1", b"b": b"20", b"d": b"4"}
    assert update_lattice(_from_scratch(before), _changes(before, after)) == _from_scratch(after)


def test_update_lattice_ignores_unchanged_entries() -> None:
    start = _from_scratch({b"a": b"1"})
    assert update_lattice(start, [(b"a", b"1", b"1"), (b"z", None, None)]) == start
    assert update_lattice(start, []) == start


values = st.binary(max_size=6)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.binary(max_size=4), values, max_size=12),
    st.dictionaries(st.binary(max_size=4), st.none() | values, max_size=12),
)
def test_update_lattice_equals_recomputing(before: Entries, updates: dict[bytes, bytes | None]) -> None:
    after = dict(before)
    for key, value in updates.items():
        if value is None:
            after.pop(key, None)
        else:
            after[key] = value
    # Include entries that do not change, as a block that reads an account does.
    changes = [(key, before.get(key), after.get(key)) for key in before.keys() | updates.keys()]
    assert update_lattice(_from_scratch(before), changes) == _from_scratch(after)


def test_update_lattice_across_the_chunk_boundary() -> None:
    # Past 30,000 changes update_lattice reduces its running sums once per chunk:
    # the first chunk is all additions, the second removes and replaces.
    before = {b"old-%d" % index: b"v" for index in range(40)}
    after = {b"new-%d" % index: b"x" * (index % 7) for index in range(30_000)}
    after.update({b"old-%d" % index: b"w" for index in range(20)})  # 20 changed, 20 removed
    changes: list[tuple[bytes, bytes | None, bytes | None]] = [
        (key, None, after[key]) for key in after if key.startswith(b"new-")
    ]
    changes += [(key, value, after.get(key)) for key, value in before.items()]
    assert len(changes) > 30_000
    assert update_lattice(_from_scratch(before), changes) == _from_scratch(after)
