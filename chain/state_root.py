"""The state root: a lattice hash (LtHash) over every state entry.

The state is a set of ``(key, value)`` entries. Each entry is expanded by
SHAKE-128 into 1024 lanes of 16 bits; the lattice hash of the state is the
lane-wise sum of its entries modulo 2**16, and the state root is the SHA-256 of
that sum. Changing an entry subtracts its old expansion and adds its new one,
so the cost of a block is a few microseconds per touched entry whatever the
number of accounts, and nothing but the 2 KiB sum is stored. Finding two
states with one root is a short-vector problem in a 1024-dimensional lattice
(Bellare and Micciancio 1997; Lewi et al. 2019; Solana's accounts hash).

What it does not give is a proof that one account holds a balance: that would
need a Merkle structure and costs O(log n) hashes and reads per touched account.
The root's job here is that two validators whose states differ refuse each
other's blocks instead of forking silently.

The even and the odd lanes are each kept 32 bits apart inside one Python
integer, so a whole vector is added with two big-integer additions and masks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mura.chain import codec
from mura.chain.errors import DecodeError
from mura.chain.keys import sha256

LANES = 1024
SIZE = LANES * 2
#: Every other 16-bit lane of a packed vector, each in a 32-bit slot: sums of up to
#: 2**16 expansions fit in a slot without carrying into the next lane.
_MASK = int.from_bytes(b"\xff\xff\x00\x00" * (LANES // 2), "little")
_LANE_MODULUS = int.from_bytes(b"\x00\x00\x01\x00" * (LANES // 2), "little")


def _split(packed: bytes) -> tuple[int, int]:
    """The even and the odd lanes of a packed little-endian vector, each 32 bits apart."""
    number = int.from_bytes(packed, "little")
    return number & _MASK, (number >> 16) & _MASK


@dataclass(frozen=True, slots=True)
class LatticeHash:
    """A multiset hash that can add and remove entries in any order."""

    #: Lanes 0, 2, 4, ... each in its own 32-bit slot, each below 2**16.
    even: int = 0
    #: Lanes 1, 3, 5, ... likewise.
    odd: int = 0

    @classmethod
    def of_entry(cls, key: bytes, value: bytes) -> LatticeHash:
        """The hash of the single entry ``key -> value``."""
        return cls(*_split(hashlib.shake_128(codec.encode([key, value])).digest(SIZE)))

    def add(self, other: LatticeHash) -> LatticeHash:
        return LatticeHash((self.even + other.even) & _MASK, (self.odd + other.odd) & _MASK)

    def subtract(self, other: LatticeHash) -> LatticeHash:
        return LatticeHash(
            (self.even + _LANE_MODULUS - other.even) & _MASK, (self.odd + _LANE_MODULUS - other.odd) & _MASK
        )

    def to_bytes(self) -> bytes:
        return (self.even | self.odd << 16).to_bytes(SIZE, "little")

    @classmethod
    def from_bytes(cls, data: bytes) -> LatticeHash:
        if len(data) != SIZE:
            raise DecodeError(f"lattice hash: expected {SIZE} bytes, got {len(data)}")
        return cls(*_split(data))

    def root(self) -> bytes:
        """The 32-byte state root that block headers carry."""
        return sha256(self.to_bytes())


def update_lattice(lattice: LatticeHash, changes: list[tuple[bytes, bytes | None, bytes | None]]) -> LatticeHash:
    """Apply ``(key, old value or None, new value or None)`` changes to ``lattice``.

    Expansions are summed without masking and reduced once per chunk: a lane
    holds up to 2**32, so a chunk of up to 30,000 changes (each adding and
    removing at most one entry) cannot carry into its neighbour.
    """
    even, odd = lattice.even, lattice.odd
    for start in range(0, len(changes), _CHUNK):
        added_even = added_odd = removed_even = removed_odd = removed_count = 0
        for key, old, new in changes[start : start + _CHUNK]:
            if old == new:
                continue
            if old is not None:
                entry = LatticeHash.of_entry(key, old)
                removed_even += entry.even
                removed_odd += entry.odd
                removed_count += 1
            if new is not None:
                entry = LatticeHash.of_entry(key, new)
                added_even += entry.even
                added_odd += entry.odd
        # Adding removed_count * 2**16 to every lane keeps each lane non-negative.
        offset = _LANE_MODULUS * removed_count
        even = (even + added_even + offset - removed_even) & _MASK
        odd = (odd + added_odd + offset - removed_odd) & _MASK
    return LatticeHash(even, odd)


_CHUNK = 30_000
