"""Serving snapshots: which heights are kept, and what one joining peer may cost a node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mura.chain.store import Store, StoreError
from mura.p2p.snapshot_service import SnapshotKeeper, SnapshotService, SnapshotServingLimits
from mura.p2p.sync_messages import (
    Chunk,
    ChunkRequest,
    ManifestPage,
    ManifestRequest,
    Offers,
    OffersRequest,
    ProofRequest,
    Refusal,
    SetChanges,
    SetChangesRequest,
    SyncMessage,
    decode_sync_message,
)
from mura.tests.ledger_fixtures import certify, seal
from mura.tests.p2p.conftest import wait_for
from mura.tests.snapshot_fixtures import governed_store, populated_store

PEER = b"p" * 32
OTHER = b"q" * 32


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Store]:
    store = populated_store(tmp_path / "data", holders=15_000, blocks=2)
    yield store
    store.close()


class Wire:
    """What the service sent, decoded, by peer."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, SyncMessage]] = []

    def send(self, peer: bytes, payload: Any) -> bool:
        self.sent.append((peer, decode_sync_message(payload)))
        return True

    def last(self, peer: bytes = PEER) -> SyncMessage:
        return [message for to, message in self.sent if to == peer][-1]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def ready_keeper(source: Store, *, keep: int = 2) -> SnapshotKeeper:
    keeper = SnapshotKeeper(store=source, interval=source.height, keep=keep)
    keeper.start()
    keeper.on_commit(source.head)
    await wait_for(lambda: bool(keeper.ready), "the manifest to be built")
    return keeper


async def test_a_node_keeps_the_latest_snapshots_at_multiples_of_the_interval(source: Store) -> None:
    keeper = SnapshotKeeper(store=source, interval=1, keep=1)
    keeper.start()
    try:
        keeper.on_commit(source.head)
        await wait_for(lambda: keeper.heights() == (source.height,), "the snapshot at the head")
        first = keeper.ready[source.height]
        parent = source.load_block(source.height)
        assert parent is not None
        block, changes = seal(source, parent, [])
        source.save_block(block, certify(block), changes)
        keeper.on_commit(source.head)
        await wait_for(lambda: keeper.heights() == (source.height,), "the newer snapshot to replace it")
        assert first.retired
        with pytest.raises(StoreError, match="closed"):
            first.view.load_entries(b"", 1)
        # Only multiples of the interval are taken.
        every_tenth = SnapshotKeeper(store=source, interval=10, keep=1)
        every_tenth.on_commit(source.head)
        assert every_tenth._pending is None
    finally:
        await keeper.stop()


async def test_offers_manifest_and_chunks_are_served_from_the_snapshot(source: Store) -> None:
    keeper = await ready_keeper(source)
    wire = Wire()
    service = SnapshotService(keeper=keeper, store=source, send=wire.send)
    try:
        service.on_request(PEER, OffersRequest())
        assert wire.last() == Offers(source.height, (source.height,))
        service.on_request(PEER, ManifestRequest(source.height, 0))
        await wait_for(lambda: isinstance(wire.last(), ManifestPage), "the manifest page")
        page = wire.last()
        assert isinstance(page, ManifestPage) and page.total == len(page.ranges) == 2
        service.on_request(PEER, ChunkRequest(source.height, 1))
        await wait_for(lambda: isinstance(wire.last(), Chunk), "the chunk")
        chunk = wire.last()
        assert isinstance(chunk, Chunk) and len(chunk.entries) == page.ranges[1].entries
        assert (service.served["chunk"], service.served["manifestpage"], service.served["offers"]) == (1, 1, 1)
        service.on_request(PEER, ChunkRequest(source.height + 5, 0))
        await wait_for(lambda: isinstance(wire.last(), Refusal), "the refusal")
        assert wire.last() == Refusal(ChunkRequest.TAG, source.height + 5, "no_snapshot")
    finally:
        await service.stop()
        await keeper.stop()


async def test_one_request_of_a_peer_at_a_time_and_a_few_peers_at_once(source: Store) -> None:
    keeper = await ready_keeper(source)
    wire = Wire()
    service = SnapshotService(keeper=keeper, store=source, send=wire.send,
                              limits=SnapshotServingLimits(concurrent_peers=1))
    try:
        service.on_request(PEER, ChunkRequest(source.height, 0))
        service.on_request(PEER, ChunkRequest(source.height, 1))
        service.on_request(OTHER, ChunkRequest(source.height, 1))
        assert wire.sent == [(PEER, Refusal(ChunkRequest.TAG, source.height, "busy")),
                             (OTHER, Refusal(ChunkRequest.TAG, source.height, "busy"))]
        await wait_for(lambda: service.served["chunk"] == 1, "the first request's chunk")
        service.on_request(OTHER, ChunkRequest(source.height, 1))
        await wait_for(lambda: service.served["chunk"] == 2, "the other peer's chunk, once the first is done")
        assert service.refused["busy"] == 2
    finally:
        await service.stop()
        await keeper.stop()


async def test_a_peer_over_its_request_or_byte_budget_is_refused_until_it_refills(source: Store) -> None:
    keeper = await ready_keeper(source)
    wire, clock = Wire(), Clock()
    limits = SnapshotServingLimits(requests_per_second=1.0, request_burst=3, bytes_per_second=100_000,
                                   burst_bytes=100_000)
    service = SnapshotService(keeper=keeper, store=source, send=wire.send, limits=limits, clock=clock)
    try:
        # A chunk of 10,000 entries is several times the byte bucket: the next request waits.
        service.on_request(PEER, ChunkRequest(source.height, 0))
        await wait_for(lambda: service.served["chunk"] == 1, "the chunk")
        service.on_request(PEER, ProofRequest(source.height))
        assert wire.last() == Refusal(ProofRequest.TAG, source.height, "over_budget")
        clock.now += 10.0  # the byte bucket refills (one second's rate is 100,000 bytes)
        service.on_request(PEER, OffersRequest())
        assert isinstance(wire.last(), Offers)
        # Requests: the bucket holds three, refilled one a second.
        for _ in range(3):
            service.on_request(OTHER, OffersRequest())
        service.on_request(OTHER, OffersRequest())
        assert wire.last(OTHER) == Refusal(OffersRequest.TAG, 0, "over_budget")
        clock.now += 1.0
        service.on_request(OTHER, OffersRequest())
        assert isinstance(wire.last(OTHER), Offers)
        assert service.refused["over_budget"] == 2
    finally:
        await service.stop()
        await keeper.stop()


async def test_a_proof_is_the_stored_block_and_certificate_and_nothing_above_the_head(source: Store) -> None:
    wire = Wire()
    service = SnapshotService(keeper=None, store=source, send=wire.send)
    service.on_request(PEER, ProofRequest(source.height))
    await wait_for(lambda: bool(wire.sent), "the proof")
    proof = wire.last()
    parent = source.load_block(source.height - 1)
    assert parent is not None
    assert proof == decode_sync_message([3, source.height, source.load_block_bytes(source.height),
                                         source.load_certificate_bytes(source.height), parent.header.to_fields()])
    service.on_request(PEER, ProofRequest(source.height + 1))
    await wait_for(lambda: isinstance(wire.last(), Refusal), "the refusal")
    assert wire.last() == Refusal(ProofRequest.TAG, source.height + 1, "not_kept")
    await service.stop()


async def test_set_changes_are_served_from_the_history_with_the_certified_header_before_each(tmp_path: Path) -> None:
    """Activation heights in (after, H + 1]: the change deciding 12 is served for H = 11, not for 10."""
    source = governed_store(tmp_path / "data", holders=10, height=14)
    wire = Wire()
    service = SnapshotService(keeper=None, store=source, send=wire.send)
    try:
        for height, after, expected in ((14, 0, [7, 12]), (11, 0, [7, 12]), (10, 0, [7]), (14, 7, [12]),
                                        (6, 0, [7]), (5, 0, [])):
            wire.sent.clear()
            service.on_request(PEER, SetChangesRequest(height, after))
            await wait_for(lambda: bool(wire.sent), "the changes")
            answer = wire.last()
            assert isinstance(answer, SetChanges) and answer.complete
            assert [change.activation_height for change in answer.changes] == expected, (height, after)
            for change in answer.changes:
                block = source.load_block(change.header.height)
                assert block is not None and change.header == block.header
                assert change.certificate == source.load_certificate(change.header.height)
                assert change.records == source.load_validators_at(change.activation_height)
        wire.sent.clear()
        service.on_request(PEER, SetChangesRequest(15, 0))
        await wait_for(lambda: bool(wire.sent), "the refusal")
        assert wire.last() == Refusal(SetChangesRequest.TAG, 15, "not_kept")
    finally:
        await service.stop()
        source.close()


async def test_set_changes_come_a_page_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mura.p2p.snapshot_service.MAX_CHANGES_PER_ANSWER", 1)
    source = governed_store(tmp_path / "data", holders=10, height=14)
    wire = Wire()
    service = SnapshotService(keeper=None, store=source, send=wire.send)
    try:
        pages = []
        for after in (0, 7):
            wire.sent.clear()
            service.on_request(PEER, SetChangesRequest(14, after))
            await wait_for(lambda: bool(wire.sent), "a page")
            answer = wire.last()
            assert isinstance(answer, SetChanges)
            pages.append(([change.activation_height for change in answer.changes], answer.complete))
        assert pages == [([7], False), ([12], True)]
    finally:
        await service.stop()
        source.close()
