"""Snapshots: manifests that add up to the certified root, chunks checked on their own, and a
store filled by a state sync."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mura.chain.governance import ValidatorSet
from mura.chain.pending import balance_key
from mura.chain.snapshot import (
    MAX_RANGE_BYTES,
    MAX_RANGE_ENTRIES,
    ChunkMismatch,
    Manifest,
    ManifestMismatch,
    build_manifest,
    check_chunk,
    check_manifest,
    cut_ranges,
    entry_size,
    lattice_of,
)
from mura.chain.state_root import LatticeHash
from mura.chain.store import Store, StoreError
from mura.chain.transaction import Transfer, sign_transaction
from mura.tests.ledger_fixtures import ACCOUNTS, ASSET, CHAIN_ID, certify, seal
from mura.tests.snapshot_fixtures import SECOND_ASSET, holder, populated_store


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = populated_store(tmp_path_factory.mktemp("snapshot") / "data")
    yield store
    store.close()


@pytest.fixture(scope="module")
def manifest(source: Store) -> Manifest:
    view = source.open_state_view()
    try:
        return build_manifest(view.height, view.iterate_state())
    finally:
        view.close()


def chunk(source: Store, manifest: Manifest, index: int) -> list[tuple[bytes, bytes]]:
    """Range ``index``'s entries as an honest peer sends them."""
    state_range = manifest.ranges[index]
    view = source.open_state_view()
    try:
        return view.load_entries(state_range.first_key, state_range.entries)
    finally:
        view.close()


def test_manifest_adds_up_to_the_state_root_and_every_honest_chunk_checks(source: Store, manifest: Manifest) -> None:
    assert len(manifest.ranges) >= 2
    check_manifest(manifest, source.head.state_root)
    assert manifest.entries == sum(1 for _ in source.iterate_state())
    for index in range(len(manifest.ranges)):
        check_chunk(manifest, index, chunk(source, manifest, index))


def test_every_node_cuts_the_same_ranges_from_the_same_state(source: Store, manifest: Manifest) -> None:
    assert build_manifest(source.height, source.iterate_state()).digest == manifest.digest


def test_ranges_keep_within_the_entry_and_byte_caps() -> None:
    small = [(b"a" + index.to_bytes(4, "big"), b"v") for index in range(2 * MAX_RANGE_ENTRIES + 1)]
    assert [len(part) for part in cut_ranges(small)] == [MAX_RANGE_ENTRIES, MAX_RANGE_ENTRIES, 1]
    large = [(b"b" + bytes([index]), bytes(MAX_RANGE_BYTES // 3)) for index in range(4)]
    parts = list(cut_ranges(large))
    assert [len(part) for part in parts] == [2, 2]
    assert all(sum(entry_size(key, value) for key, value in part) <= MAX_RANGE_BYTES for part in parts)
    # An entry larger than the byte cap is a range of its own.
    huge = [(b"c", bytes(MAX_RANGE_BYTES)), (b"d", b"v")]
    assert [len(part) for part in cut_ranges(huge)] == [1, 1]


def test_a_view_is_the_state_of_its_block_whatever_comes_after(tmp_path: Path) -> None:
    store = populated_store(tmp_path / "data", holders=50, blocks=1)
    try:
        view = store.open_state_view()
        root = store.head.state_root
        parent = store.load_block(store.height)
        assert parent is not None
        transfer = sign_transaction(ACCOUNTS[1], chain_id=CHAIN_ID, nonce=0, body=Transfer(ASSET, holder(7), 5))
        block, changes = seal(store, parent, [transfer])
        store.save_block(block, certify(block), changes)
        assert store.head.state_root != root
        check_manifest(build_manifest(view.height, view.iterate_state()), root)
        view.close()
    finally:
        store.close()


# --- chunks that do not check ----------------------------------------------------------------


def test_invalid_chunk_with_a_tampered_value(source: Store, manifest: Manifest) -> None:
    entries = chunk(source, manifest, 1)
    key, value = entries[5]
    entries[5] = (key, value[:-1] + bytes([value[-1] ^ 1]))
    with pytest.raises(ChunkMismatch, match="lattice sum") as refused:
        check_chunk(manifest, 1, entries)
    assert refused.value.rule == "chunk_mismatch"
    assert refused.value.details == {"range": 1}


def test_invalid_chunk_missing_an_entry(source: Store, manifest: Manifest) -> None:
    entries = chunk(source, manifest, 0)
    del entries[len(entries) // 2]
    with pytest.raises(ChunkMismatch, match="holds 9999 entries, the manifest says 10000"):
        check_chunk(manifest, 0, entries)


def test_invalid_chunk_with_an_extra_entry(source: Store, manifest: Manifest) -> None:
    entries = chunk(source, manifest, 1)
    entries.append((entries[-1][0] + b"\x00", b"\x01"))
    with pytest.raises(ChunkMismatch, match="entries, the manifest says"):
        check_chunk(manifest, 1, entries)


def test_invalid_chunk_with_an_extra_entry_in_place_of_another(source: Store, manifest: Manifest) -> None:
    # Same count, in order, in range: only the lattice sum tells.
    entries = chunk(source, manifest, 1)
    entries[-1] = (entries[-1][0] + b"\x00", entries[-1][1])
    with pytest.raises(ChunkMismatch, match="lattice sum"):
        check_chunk(manifest, 1, entries)


def test_invalid_chunk_reordered(source: Store, manifest: Manifest) -> None:
    entries = chunk(source, manifest, 0)
    entries[3], entries[4] = entries[4], entries[3]
    with pytest.raises(ChunkMismatch, match=r"entry [34] is not after entry [23]"):
        check_chunk(manifest, 0, entries)


def test_invalid_chunk_with_a_duplicate_entry(source: Store, manifest: Manifest) -> None:
    entries = chunk(source, manifest, 0)
    entries[4] = entries[3]
    with pytest.raises(ChunkMismatch, match="not after"):
        check_chunk(manifest, 0, entries)


def test_invalid_chunk_with_a_key_out_of_its_range(source: Store, manifest: Manifest) -> None:
    entries = chunk(source, manifest, 0)
    following = manifest.ranges[1].first_key
    entries[-1] = (following, entries[-1][1])
    with pytest.raises(ChunkMismatch, match="at or after the next range's first key"):
        check_chunk(manifest, 0, entries)


def test_invalid_chunk_of_another_range(source: Store, manifest: Manifest) -> None:
    with pytest.raises(ChunkMismatch):
        check_chunk(manifest, 1, chunk(source, manifest, 0))


# --- manifests that do not check ------------------------------------------------------------


def test_invalid_manifest_not_adding_up(source: Store, manifest: Manifest) -> None:
    ranges = list(manifest.ranges)
    ranges[0] = replace(ranges[0], lattice=ranges[0].lattice.add(LatticeHash.of_entry(b"x", b"y")))
    with pytest.raises(ManifestMismatch, match="do not add up to the state root"):
        check_manifest(Manifest(manifest.height, tuple(ranges)), source.head.state_root)


def test_invalid_manifest_missing_a_range(source: Store, manifest: Manifest) -> None:
    with pytest.raises(ManifestMismatch, match="do not add up"):
        check_manifest(Manifest(manifest.height, manifest.ranges[:-1]), source.head.state_root)


def test_invalid_manifest_for_another_height(source: Store, manifest: Manifest) -> None:
    genesis_block = source.load_block(0)
    assert genesis_block is not None
    with pytest.raises(ManifestMismatch):
        check_manifest(manifest, genesis_block.header.state_root)


def test_invalid_manifest_out_of_order_or_empty(source: Store, manifest: Manifest) -> None:
    swapped = Manifest(manifest.height, tuple(reversed(manifest.ranges)))
    with pytest.raises(ManifestMismatch, match="does not start after"):
        check_manifest(swapped, source.head.state_root)
    empty_range = replace(manifest.ranges[0], entries=0)
    with pytest.raises(ManifestMismatch, match="is empty"):
        check_manifest(Manifest(manifest.height, (empty_range, *manifest.ranges[1:])), source.head.state_root)
    with pytest.raises(ManifestMismatch, match="0 ranges"):
        check_manifest(Manifest(manifest.height, ()), source.head.state_root)


def test_a_manifest_with_sums_moved_between_ranges_adds_up_but_honest_chunks_fail_it(
    source: Store, manifest: Manifest
) -> None:
    # What a lying peer can do cheaply: the joining node then finds no peer whose chunk checks for
    # those ranges, and tries another peer's manifest (see mura.p2p.state_sync).
    moved = LatticeHash.of_entry(b"x", b"y")
    first, second = manifest.ranges[0], manifest.ranges[1]
    forged = Manifest(manifest.height, (replace(first, lattice=first.lattice.add(moved)),
                                        replace(second, lattice=second.lattice.subtract(moved)),
                                        *manifest.ranges[2:]))
    check_manifest(forged, source.head.state_root)
    with pytest.raises(ChunkMismatch):
        check_chunk(forged, 0, chunk(source, manifest, 0))


# --- a store filled by a state sync -----------------------------------------------------------


def history_of(source: Store) -> list[tuple[int, ValidatorSet]]:
    return source.load_validator_changes(after=0, up_to=source.height + 1, limit=100)


def test_synced_store_holds_the_state_from_its_height_on(source: Store, manifest: Manifest, tmp_path: Path) -> None:
    store = Store(tmp_path / "joined")
    try:
        store.begin_state_sync()
        for index in range(len(manifest.ranges)):
            store.save_synced_entries(manifest.height, chunk(source, manifest, index))
        block, certificate = source.load_block(source.height), source.load_certificate(source.height)
        assert block is not None and certificate is not None
        assert store.sync_unfinished and not store.initialized
        store.finish_state_sync(block, certificate, manifest.lattice(), genesis_hash=b"g" * 32,
                                validator_sets=history_of(source), change_points=[])
        assert not store.sync_unfinished
        assert (store.height, store.kept_from, store.head.hash) == (source.height, source.height, source.head.hash)
        assert store.recompute_lattice().root() == store.head.state_root
        assert list(store.iterate_state()) == list(source.iterate_state())
        assert store.load_block(source.height - 1) is None
        # The history rows of every balance start at the synced height.
        assert store.load_balance_at(holder(5), SECOND_ASSET, store.height) == 6
        assert store.load_held_assets(holder(5)) == [SECOND_ASSET]
        assert store.load_votes(store.height + 1) == [] and not store.kept_votes
    finally:
        store.close()
    reopened = Store(tmp_path / "joined")
    try:
        assert (reopened.height, reopened.kept_from) == (source.height, source.height)
    finally:
        reopened.close()


def test_a_sync_that_did_not_finish_is_seen_and_discarded(source: Store, manifest: Manifest, tmp_path: Path) -> None:
    store = Store(tmp_path / "joined")
    store.begin_state_sync()
    store.save_synced_entries(manifest.height, chunk(source, manifest, 0))
    store.close()
    store = Store(tmp_path / "joined")
    try:
        assert store.sync_unfinished and not store.initialized
        store.abandon_state_sync()
        assert not store.sync_unfinished
        assert list(store.iterate_state()) == []
        assert store.load_entry(balance_key(SECOND_ASSET, holder(0))) is None
    finally:
        store.close()


def test_invalid_finish_with_a_lattice_not_the_blocks(source: Store, manifest: Manifest, tmp_path: Path) -> None:
    store = Store(tmp_path / "joined")
    try:
        store.begin_state_sync()
        block, certificate = source.load_block(source.height), source.load_certificate(source.height)
        assert block is not None and certificate is not None
        with pytest.raises(StoreError, match="does not have block"):
            store.finish_state_sync(block, certificate, lattice_of(chunk(source, manifest, 0)), genesis_hash=b"g" * 32,
                                    validator_sets=history_of(source), change_points=[])
        assert not store.initialized
    finally:
        store.close()


def test_invalid_state_sync_into_a_store_that_holds_a_chain(source: Store) -> None:
    with pytest.raises(StoreError, match="holds no chain yet"):
        source.begin_state_sync()
