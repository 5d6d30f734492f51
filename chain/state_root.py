"""The state root: a lattice hash (LtHash) over every state entry.

The state is a set of ``(key, value)`` entries. Each entry is expanded by
SHAKE-256 into 1024 lanes of 16 bits; the lattice hash of the state is the
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

Lanes are kept 32 bits apart inside one Python integer so that a whole vector
is added with one big-integer addition and one mask.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mura.chain import codec
from mura.chain.errors import DecodeError
from mura.chain.keys import sha256

LANES = 1024
SIZE = LANES * 2
_SPREAD_SIZE = LANES * 4
_MASK = int.from_bytes(b"\xff\xff\x00\x00" * LANES, "little")
_LANE_MODULUS = int.from_bytes(b"\x00\x00\x01\x00" * LANES, "little")


def _spread(packed: bytes) -> int:
    spread = bytearray(_SPREAD_SIZE)
    spread[0::4] = packed[0::2]
    spread[1::4] = packed[1::2]
    return int.from_bytes(spread, "little")


def _pack(spread: int) -> bytes:
    wide = spread.to_bytes(_SPREAD_SIZE, "little")
    packed = bytearray(SIZE)
    packed[0::2] = wide[0::4]
    packed[1::2] = wide[1::4]
    return bytes(packed)


@dataclass(frozen=True, slots=True)
class LatticeHash:
    """A multiset hash that can add and remove entries in any order."""

    #: Lanes spread 32 bits apart, each below 2**16.
    lanes: int = 0

    @classmethod
    def of_entry(cls, key: bytes, value: bytes) -> LatticeHash:
        """The hash of the single entry ``key -> value``."""
        expansion = hashlib.shake_256(codec.encode([key, value])).digest(SIZE)
        return cls(_spread(expansion))

    def add(self, other: LatticeHash) -> LatticeHash:
        return LatticeHash((self.lanes + other.lanes) & _MASK)

    def subtract(self, other: LatticeHash) -> LatticeHash:
        return LatticeHash((self.lanes + _LANE_MODULUS - other.lanes) & _MASK)

    def to_bytes(self) -> bytes:
        return _pack(self.lanes)

    @classmethod
    def from_bytes(cls, data: bytes) -> LatticeHash:
        if len(data) != SIZE:
            raise DecodeError(f"lattice hash: expected {SIZE} bytes, got {len(data)}")
        return cls(_spread(data))

    def root(self) -> bytes:
        """The 32-byte state root that block headers carry."""
        return sha256(self.to_bytes())


def update_lattice(lattice: LatticeHash, changes: list[tuple[bytes, bytes | None, bytes | None]]) -> LatticeHash:
    """Apply ``(key, old value or None, new value or None)`` changes to ``lattice``.

    Expansions are summed without masking and reduced once per chunk: a lane
    holds up to 2**32, so a chunk of up to 30,000 changes (each adding and
    removing at most one entry) cannot carry into its neighbour.
    """
    lanes = lattice.lanes
    for start in range(0, len(changes), _CHUNK):
        added = removed = removed_count = 0
        for key, old, new in changes[start : start + _CHUNK]:
            if old == new:
                continue
            if old is not None:
                removed += LatticeHash.of_entry(key, old).lanes
                removed_count += 1
            if new is not None:
                added += LatticeHash.of_entry(key, new).lanes
        # Adding removed_count * 2**16 to every lane keeps each lane non-negative.
        lanes = (lanes + added + _LANE_MODULUS * removed_count - removed) & _MASK
    return LatticeHash(lanes)


_CHUNK = 30_000
