"""State snapshots: the state at a certified height, cut into ranges that each check on their own.

A node that joins late fetches the state as of a final height H instead of
replaying every block. Nothing a peer sends is trusted: what makes the state
checkable piece by piece is that the state root is a lattice hash, a sum of
one vector per entry (see ``state_root``), so any part of the state has a sum
of its own and the parts' sums add up to the whole.

The *manifest* of the snapshot at H lists the state's keys in order cut into
ranges, each with its first key, its number of entries and its entries'
lattice sum. Ranges are cut by one rule from the state alone (a range closes
before the entry that would take it past ``MAX_RANGE_ENTRIES`` entries or
``MAX_RANGE_BYTES`` bytes of keys and values), so every honest node makes the
same manifest for the same height, and a range is asked for by its index.

What is checked, and when:

- a manifest: ranges whose first keys strictly increase, none empty or above
  the caps, and whose lattice sums add up to the lattice whose SHA-256 is the
  state root of header H (which the caller has checked against its commit
  certificate). A manifest that does not add up is refused whole
  (``ManifestMismatch``);
- a chunk (the entries of one range): as many entries as the manifest says,
  the first under the range's first key, keys strictly increasing and below
  the next range's first key, within the byte cap, and their lattice sum equal
  to the range's (``ChunkMismatch``). A chunk that passes is part of the
  certified state: making other entries with a chosen lattice sum is the
  short-vector problem ``state_root`` relies on.

Once every range's chunk has passed, the entries' sum is the manifest's total,
which is the certified lattice: the state is the one header H commits to.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mura.chain import codec
from mura.chain.errors import DecodeError, Invalid
from mura.chain.keys import sha256
from mura.chain.state_root import SIZE, LatticeHash, update_lattice

#: Most entries in one range (and so in one chunk).
MAX_RANGE_ENTRIES = 10_000
#: Most bytes of keys and values in one range; an entry larger than this is a range of its own.
MAX_RANGE_BYTES = 1024 * 1024
#: Largest state key and value a chunk may carry.
MAX_KEY_BYTES = 1024
MAX_VALUE_BYTES = MAX_RANGE_BYTES
#: Most ranges a manifest may list (about 650 million entries).
MAX_RANGES = 65_536
#: Ranges per manifest page on the wire (about 540 KB).
MANIFEST_PAGE_RANGES = 256


class SnapshotInvalid(Invalid):
    """Snapshot data from a peer that does not check."""

    rule = "invalid_snapshot"


class ManifestMismatch(SnapshotInvalid):
    """A manifest whose ranges are out of order, over the caps, or whose lattice sums do not
    add up to the certified state root."""

    rule = "manifest_mismatch"


class ChunkMismatch(SnapshotInvalid):
    """A chunk whose entries are not exactly those of its range in the manifest: a count,
    an order, a key outside the range, or a lattice sum that differs."""

    rule = "chunk_mismatch"


@dataclass(frozen=True, slots=True)
class StateRange:
    """One range of a manifest."""

    #: The key of the range's first entry; the range runs up to the next range's first key.
    first_key: bytes
    #: How many entries the range holds.
    entries: int
    #: The lattice sum of the range's entries.
    lattice: LatticeHash

    def to_fields(self) -> list[Any]:
        return [self.first_key, self.entries, self.lattice.to_bytes()]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> StateRange:
        first_key, entries, lattice = codec.read_fields(value, what, 3)
        return cls(
            codec.read_bytes(first_key, f"{what}.first_key", max_length=MAX_KEY_BYTES),
            codec.read_int(entries, f"{what}.entries", maximum=MAX_RANGE_ENTRIES),
            LatticeHash.from_bytes(codec.read_bytes(lattice, f"{what}.lattice", length=SIZE)),
        )


@dataclass(frozen=True, slots=True)
class Manifest:
    """The ranges of the state at ``height``."""

    height: int
    ranges: tuple[StateRange, ...]
    #: SHA-256 of the manifest's encoding: two peers' manifests are the same if these are (derived).
    digest: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        encoded = codec.encode([self.height, [state_range.to_fields() for state_range in self.ranges]])
        object.__setattr__(self, "digest", sha256(encoded))

    @property
    def entries(self) -> int:
        return sum(state_range.entries for state_range in self.ranges)

    def end_of(self, index: int) -> bytes | None:
        """The first key after range ``index`` (None for the last range)."""
        return self.ranges[index + 1].first_key if index + 1 < len(self.ranges) else None

    def lattice(self) -> LatticeHash:
        """The sum of every range's lattice sum: the whole state's, if the manifest is true."""
        total = LatticeHash()
        for state_range in self.ranges:
            total = total.add(state_range.lattice)
        return total

    def page(self, first: int) -> list[list[Any]]:
        """The wire fields of up to ``MANIFEST_PAGE_RANGES`` ranges from index ``first``."""
        return [state_range.to_fields() for state_range in self.ranges[first : first + MANIFEST_PAGE_RANGES]]


def entry_size(key: bytes, value: bytes) -> int:
    """What an entry counts towards ``MAX_RANGE_BYTES``."""
    return len(key) + len(value)


def cut_ranges(entries: Iterable[tuple[bytes, bytes]]) -> Iterator[list[tuple[bytes, bytes]]]:
    """The state's entries, in key order, cut into ranges by the manifest's rule."""
    current: list[tuple[bytes, bytes]] = []
    size = 0
    for key, value in entries:
        added = entry_size(key, value)
        if current and (len(current) == MAX_RANGE_ENTRIES or size + added > MAX_RANGE_BYTES):
            yield current
            current, size = [], 0
        current.append((key, value))
        size += added
    if current:
        yield current


def lattice_of(entries: Sequence[tuple[bytes, bytes]]) -> LatticeHash:
    """The lattice sum of ``entries``."""
    return update_lattice(LatticeHash(), [(key, None, value) for key, value in entries])


def build_manifest(height: int, entries: Iterable[tuple[bytes, bytes]]) -> Manifest:
    """The manifest of the state whose entries, in key order, are ``entries``."""
    ranges = tuple(StateRange(part[0][0], len(part), lattice_of(part)) for part in cut_ranges(entries))
    return Manifest(height, ranges)


def check_manifest(manifest: Manifest, state_root: bytes) -> None:
    """Raise ``ManifestMismatch`` unless ``manifest`` is well formed and adds up to ``state_root``."""
    ranges = manifest.ranges
    if not 0 < len(ranges) <= MAX_RANGES:
        raise ManifestMismatch(f"a manifest of {len(ranges)} ranges (1 to {MAX_RANGES})", ranges=len(ranges))
    for index, state_range in enumerate(ranges):
        if state_range.entries < 1:
            raise ManifestMismatch(f"range {index} of the manifest is empty", range=index)
    for index, (earlier, later) in enumerate(itertools.pairwise(ranges)):
        if later.first_key <= earlier.first_key:
            raise ManifestMismatch(f"range {index + 1} of the manifest does not start after range {index}",
                                   range=index + 1)
    if manifest.lattice().root() != state_root:
        raise ManifestMismatch(
            f"the manifest's {len(ranges)} ranges do not add up to the state root of block {manifest.height}",
            height=manifest.height,
        )


def check_chunk(manifest: Manifest, index: int, entries: Sequence[tuple[bytes, bytes]]) -> None:
    """Raise ``ChunkMismatch`` unless ``entries`` are exactly range ``index`` of ``manifest``."""
    state_range = manifest.ranges[index]
    what = f"chunk {index} of the snapshot at {manifest.height}"
    if len(entries) != state_range.entries:
        raise ChunkMismatch(f"{what} holds {len(entries)} entries, the manifest says {state_range.entries}",
                            range=index)
    if entries[0][0] != state_range.first_key:
        raise ChunkMismatch(f"{what} does not start at its range's first key", range=index)
    for position, (earlier, later) in enumerate(itertools.pairwise(entries)):
        if later[0] <= earlier[0]:
            raise ChunkMismatch(f"{what}: entry {position + 1} is not after entry {position} in key order",
                                range=index)
    end = manifest.end_of(index)
    if end is not None and entries[-1][0] >= end:
        raise ChunkMismatch(f"{what} holds a key at or after the next range's first key", range=index)
    size = sum(entry_size(key, value) for key, value in entries)
    if len(entries) > 1 and size > MAX_RANGE_BYTES:
        raise ChunkMismatch(f"{what} holds {size} bytes, more than a range may", range=index)
    if lattice_of(entries) != state_range.lattice:
        raise ChunkMismatch(f"{what}: its entries' lattice sum is not the manifest's", range=index)


def read_entries(value: Any, what: str) -> list[tuple[bytes, bytes]]:
    """A chunk's entries from the wire: ``[[key, value], ...]``, within the caps."""
    items = codec.read_list(value, what, max_length=MAX_RANGE_ENTRIES)
    entries = []
    for position, item in enumerate(items):
        key, entry_value = codec.read_fields(item, f"{what}[{position}]", 2)
        entries.append((
            codec.read_bytes(key, f"{what}[{position}].key", max_length=MAX_KEY_BYTES),
            codec.read_bytes(entry_value, f"{what}[{position}].value", max_length=MAX_VALUE_BYTES),
        ))
    if not entries:
        raise DecodeError(f"{what}: a chunk holds at least one entry")
    return entries


def read_ranges(value: Any, what: str) -> list[StateRange]:
    """A manifest page's ranges from the wire."""
    items = codec.read_list(value, what, max_length=MANIFEST_PAGE_RANGES)
    return [StateRange.from_fields(item, f"{what}[{position}]") for position, item in enumerate(items)]
