"""Joining by state sync over real networks: peers that serve snapshots of a real store, one of
them lying, and a joining node that checks everything and completes from the others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from mura.chain.block import CommitCertificate, commit_vote_payload
from mura.chain.governance import ValidatorRecord, ValidatorSet
from mura.chain.state_root import LatticeHash
from mura.chain.store import Store
from mura.consensus.serving import BlockServer
from mura.p2p.block_service import BlockService
from mura.p2p.network import Network
from mura.p2p.settings import PeerAddress
from mura.p2p.snapshot_service import SnapshotKeeper, SnapshotService
from mura.p2p.state_sync import SetChangeRefused, StateSync, SyncOutcome, SyncSettings, set_at, validator_history
from mura.p2p.sync_messages import (
    STATE_SYNC_KIND,
    Chunk,
    ManifestPage,
    Proof,
    SetChange,
    SetChanges,
    decode_sync_message,
    encode_sync_message,
    is_request,
)
from mura.tests.ledger_fixtures import CHAIN_ID, VALIDATORS, key
from mura.tests.p2p.conftest import FAST_LIMITS, HOST, wait_for
from mura.tests.snapshot_fixtures import extend, governed_store, populated_store

GENESIS_HASH = b"\x01" * 32
VALIDATOR_KEYS = [validator.public_key for validator in VALIDATORS]
#: Lies a serving peer may tell: each changes the payload of one kind of answer (None: none is sent).
Tamper = Callable[[Any], Any]
#: Validators 1 to 3 in key order: a joining node asks for accounts of H in key order, so a
#: liar at FIRST is asked before the honest peers.
FIRST, SECOND, THIRD = sorted(range(1, 4), key=lambda index: VALIDATOR_KEYS[index])


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A chain at height 2 whose state spans three ranges."""
    store = populated_store(tmp_path_factory.mktemp("source") / "data", holders=25_000, blocks=2)
    yield store
    store.close()


def honest(payload: Any) -> Any:
    return payload


def tampered_chunk(payload: Any) -> Any:
    """Every chunk with one value altered by a bit."""
    message = decode_sync_message(payload)
    if not isinstance(message, Chunk):
        return payload
    entries = list(message.entries)
    key_bytes, value = entries[0]
    entries[0] = (key_bytes, value[:-1] + bytes([value[-1] ^ 1]))
    return encode_sync_message(Chunk(message.height, message.index, tuple(entries)))


def manifest_not_adding_up(payload: Any) -> Any:
    message = decode_sync_message(payload)
    if not isinstance(message, ManifestPage):
        return payload
    return encode_sync_message(ManifestPage(message.height, message.total, message.first, message.ranges[1:] +
                                            message.ranges[:1]))


def forged_certificate(payload: Any) -> Any:
    """The proof's certificate signed by keys that are not the validators'."""
    message = decode_sync_message(payload)
    if not isinstance(message, Proof):
        return payload
    certificate = CommitCertificate.decode(message.certificate)
    vote = commit_vote_payload(CHAIN_ID, certificate.height, certificate.view, certificate.block_hash)
    forged = CommitCertificate(certificate.height, certificate.view, certificate.block_hash,
                               tuple((index, key(f"intruder-{index}").sign(vote)) for index in range(3)))
    return encode_sync_message(Proof(message.height, message.block, forged.encode(), message.parent))


def manifest_moving_lattice_sum(payload: Any) -> Any:
    """A manifest that still adds up: lattice sum moved from range 1 to range 0."""
    message = decode_sync_message(payload)
    if not isinstance(message, ManifestPage) or len(message.ranges) < 2:
        return payload
    moved = LatticeHash.of_entry(b"x", b"y")
    first, second, *rest = message.ranges
    ranges = (replace(first, lattice=first.lattice.add(moved)), replace(second, lattice=second.lattice.subtract(moved)),
              *rest)
    return encode_sync_message(ManifestPage(message.height, message.total, message.first, ranges))


def last_change_left_out(payload: Any) -> Any:
    message = decode_sync_message(payload)
    if not isinstance(message, SetChanges) or not message.changes:
        return payload
    return encode_sync_message(SetChanges(message.height, message.changes[:-1], True))


@dataclass
class Server:
    """A validator that serves the snapshot at the source's height."""

    network: Network
    service: SnapshotService
    keeper: SnapshotKeeper
    #: The store it serves from.
    keeper_store: Store

    @property
    def address(self) -> PeerAddress:
        return PeerAddress(self.network.public_key, HOST, self.network.listen_port)


@asynccontextmanager
async def serving(source: Store, index: int, tamper: Tamper, *, with_snapshot: bool = True) -> AsyncIterator[Server]:
    keeper = SnapshotKeeper(store=source, interval=source.height, keep=2)
    network: Network

    def send(peer: bytes, payload: Any) -> bool:
        tampered = tamper(payload)
        return tampered is None or network.send(peer, STATE_SYNC_KIND, tampered)

    service = SnapshotService(keeper=keeper, store=source, send=send)

    async def on_frame(peer: bytes, payload: Any) -> None:
        message = decode_sync_message(payload)
        if is_request(message):
            service.on_request(peer, message)

    network = Network(key=VALIDATORS[index], chain_id=CHAIN_ID, genesis_hash=GENESIS_HASH, listen_host=HOST,
                      listen_port=0, peers=[], admitted=VALIDATOR_KEYS, handlers={STATE_SYNC_KIND: on_frame},
                      limits=FAST_LIMITS)
    keeper.start()
    if with_snapshot:
        keeper.on_commit(source.head)
    try:
        await network.start()
        if with_snapshot:
            await wait_for(lambda: bool(keeper.ready), "the snapshot's manifest to be built")
        yield Server(network, service, keeper, source)
    finally:
        await network.stop()
        await service.stop()
        await keeper.stop()


async def join(servers: list[Server], data: Path, *, genesis_validators: ValidatorSet | None = None,
               settings: SyncSettings | None = None) -> tuple[SyncOutcome | None, Store, Network]:
    """Validator 0, with an empty store, joins by state sync from ``servers``."""
    if genesis_validators is None:
        genesis_validators = servers[0].keeper_store.load_validators_at(1)
    store = Store(data)
    sync: StateSync

    async def on_frame(peer: bytes, payload: Any) -> None:
        message = decode_sync_message(payload)
        if not is_request(message):
            sync.on_answer(peer, message)  # type: ignore[arg-type]

    def linked(peer: bytes, connected: bool) -> None:
        if connected:
            sync.peer_linked(peer)

    network = Network(key=VALIDATORS[0], chain_id=CHAIN_ID, genesis_hash=GENESIS_HASH, listen_host=HOST,
                      listen_port=0, peers=[server.address for server in servers], admitted=VALIDATOR_KEYS,
                      handlers={STATE_SYNC_KIND: on_frame}, on_peer_change=linked, limits=FAST_LIMITS)
    sync = StateSync(store=store, network=network, peers=[server.network.public_key for server in servers],
                     chain_id=CHAIN_ID, genesis_validators=genesis_validators, genesis_hash=GENESIS_HASH,
                     settings=settings or SyncSettings())
    await network.start()
    try:
        async with asyncio.timeout(30):
            outcome = await sync.run()
    finally:
        await network.stop()
    return outcome, store, network


def assert_same_state(joined: Store, source: Store) -> None:
    assert (joined.height, joined.kept_from, joined.head.hash) == (source.height, source.height, source.head.hash)
    assert list(joined.iterate_state()) == list(source.iterate_state())
    assert joined.recompute_lattice().root() == joined.head.state_root


async def test_a_joining_node_fetches_the_certified_state_from_its_peers(source: Store, tmp_path: Path) -> None:
    async with serving(source, 1, honest) as first, serving(source, 2, honest) as second:
        outcome, joined, _ = await join([first, second], tmp_path / "joined")
    try:
        assert outcome is not None and outcome.height == source.height
        assert (outcome.chunks, outcome.refused_chunks) == (3, 0)
        assert_same_state(joined, source)
        served = first.service.served["chunk"] + second.service.served["chunk"]
        assert served == 3
        # It holds block H and nothing below: a node catching up from below is told nothing.
        sent: list[bytes] = []

        async def send(peer: bytes, data: bytes) -> bool:
            sent.append(data)
            return True

        blocks = BlockService(source=joined, send=send, server=BlockServer())
        assert await blocks.serve(b"p" * 32, 1, 0) == 0
        assert blocks.server.refused["not_kept"] == 1
        assert await blocks.serve(b"p" * 32, joined.height, 0) == 1
    finally:
        joined.close()


async def test_a_tampered_chunk_is_refused_and_fetched_from_another_peer(source: Store, tmp_path: Path) -> None:
    async with serving(source, 1, honest) as first, serving(source, 2, tampered_chunk) as liar, \
            serving(source, 3, honest) as third:
        outcome, joined, network = await join([first, liar, third], tmp_path / "joined")
    try:
        assert outcome is not None
        # Three ranges, three peers: each was asked for one at once, the liar too.
        assert outcome.refused_chunks == 1
        assert outcome.penalized == {liar.network.public_key}
        assert network.stats.peers[liar.network.public_key].refused == 1
        assert liar.service.served["chunk"] == 1
        assert_same_state(joined, source)
    finally:
        joined.close()


async def test_a_manifest_that_does_not_add_up_is_refused_and_another_peers_taken(
    source: Store, tmp_path: Path
) -> None:
    async with serving(source, FIRST, manifest_not_adding_up) as liar, \
            serving(source, SECOND, honest) as honest_peer, serving(source, THIRD, honest) as third:
        outcome, joined, network = await join([liar, honest_peer, third], tmp_path / "joined")
    try:
        assert outcome is not None
        assert network.stats.peers[liar.network.public_key].refused == 1
        assert liar.service.served["chunk"] == 0
        assert_same_state(joined, source)
    finally:
        joined.close()


async def test_a_certificate_not_signed_by_the_validators_is_refused(source: Store, tmp_path: Path) -> None:
    async with serving(source, FIRST, forged_certificate) as liar, serving(source, SECOND, honest) as honest_peer, \
            serving(source, THIRD, honest) as third:
        outcome, joined, network = await join([liar, honest_peer, third], tmp_path / "joined")
    try:
        assert outcome is not None
        assert network.stats.peers[liar.network.public_key].refused == 1
        assert liar.service.served["manifestpage"] == 0
        assert_same_state(joined, source)
    finally:
        joined.close()


async def test_with_no_snapshot_offered_the_node_is_told_to_replay(source: Store, tmp_path: Path) -> None:
    async with serving(source, 1, honest, with_snapshot=False) as first, \
            serving(source, 2, honest, with_snapshot=False) as second:
        outcome, joined, _ = await join([first, second], tmp_path / "joined")
    try:
        assert outcome is None
        assert not joined.initialized and not joined.sync_unfinished
    finally:
        joined.close()


async def test_with_only_liars_the_sync_gives_up_without_a_partial_chain(source: Store, tmp_path: Path) -> None:
    async with serving(source, 1, tampered_chunk) as liar:
        outcome, joined, _ = await join([liar], tmp_path / "joined")
    try:
        assert outcome is None
        assert not joined.initialized
    finally:
        joined.close()


# --- a lying manifest that adds up ----------------------------------------------------------


async def test_a_manifest_that_adds_up_but_lies_blames_no_one_and_the_vouched_one_is_taken(
    source: Store, tmp_path: Path
) -> None:
    async with serving(source, FIRST, manifest_moving_lattice_sum) as liar, \
            serving(source, SECOND, honest) as second, serving(source, THIRD, honest) as third:
        outcome, joined, network = await join([liar, second, third], tmp_path / "joined")
    try:
        assert outcome is not None
        # No chunk was checked against the liar's manifest: no honest chunk failed, no peer was blamed.
        assert (outcome.refused_chunks, outcome.penalized) == (0, set())
        assert all(stats.refused == 0 for stats in network.stats.peers.values())
        assert second.service.served["manifestpage"] == third.service.served["manifestpage"] == 1
        assert_same_state(joined, source)
    finally:
        joined.close()


async def test_without_f_plus_1_alike_the_sync_gives_up_blaming_no_one(source: Store, tmp_path: Path) -> None:
    async with serving(source, FIRST, manifest_moving_lattice_sum) as liar, \
            serving(source, SECOND, honest) as honest_peer:
        outcome, joined, network = await join([liar, honest_peer], tmp_path / "joined")
    try:
        assert outcome is None
        assert not joined.initialized
        assert all(stats.refused == 0 for stats in network.stats.peers.values())
        assert liar.service.served["chunk"] == honest_peer.service.served["chunk"] == 0
    finally:
        joined.close()


# --- a chain whose validator set changed ------------------------------------------------------


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A chain at height 14 whose set grew to 5 (from 7) and shrank to 4 (from 12)."""
    store = governed_store(tmp_path_factory.mktemp("governed") / "data", holders=12_000, height=14)
    yield store
    store.close()


def assert_same_validators(joined: Store, source: Store) -> None:
    """The joined node's history of sets is the source's: every change, and the set of every
    height up to two past its head."""
    assert joined.load_validator_changes(after=0, up_to=joined.height + 1, limit=100) == \
        source.load_validator_changes(after=0, up_to=joined.height + 1, limit=100)
    for height in range(1, joined.height + 3):
        assert joined.load_validators_at(height) == source.load_validators_at(height), height


async def test_a_node_joins_a_chain_whose_set_changed_and_serves_the_changes_to_the_next(
    governed: Store, tmp_path: Path
) -> None:
    async with serving(governed, SECOND, honest) as second, serving(governed, THIRD, honest) as third:
        outcome, joined, _ = await join([second, third], tmp_path / "joined")
    try:
        assert outcome is not None and outcome.height == governed.height
        assert_same_state(joined, governed)
        assert_same_validators(joined, governed)
        # The certified headers before each change are kept, though their blocks are not.
        for activation in (7, 12):
            assert joined.load_block(activation - 1) is None
            point = joined.load_change_point(activation - 1)
            stored = governed.load_change_point(activation - 1)
            assert point is not None and stored is not None and point[0] == stored[0]
        # The joined node and the source go on alike; a node joining later takes the
        # snapshot at 16 from both, and they vouch for the same account of it.
        for store in (joined, governed):
            extend(store)
            extend(store)
        async with serving(joined, SECOND, honest) as synced, serving(governed, THIRD, honest) as full:
            later, second_joiner, _ = await join([synced, full], tmp_path / "later",
                                                 genesis_validators=governed.load_validators_at(1))
        try:
            assert later is not None and later.height == 16
            assert_same_state(second_joiner, governed)
            assert_same_validators(second_joiner, governed)
            assert synced.service.served["setchanges"] == 1
        finally:
            second_joiner.close()
    finally:
        joined.close()


async def test_a_change_deciding_the_height_after_the_snapshot_is_taken(tmp_path: Path) -> None:
    """At 11 the change approved in block 10 is still ahead (it decides 12): header 11 binds it."""
    source = governed_store(tmp_path / "source", holders=100, height=11)
    try:
        async with serving(source, SECOND, honest) as second, serving(source, THIRD, honest) as third:
            outcome, joined, _ = await join([second, third], tmp_path / "joined")
        try:
            assert outcome is not None and outcome.height == 11
            assert [height for height, _ in joined.load_validator_changes(after=0, up_to=20, limit=10)] == [1, 7, 12]
            assert_same_validators(joined, source)
        finally:
            joined.close()
    finally:
        source.close()


async def test_a_change_left_out_is_refused_and_the_sync_completes_from_the_others(
    governed: Store, tmp_path: Path
) -> None:
    async with serving(governed, FIRST, last_change_left_out) as liar, serving(governed, SECOND, honest) as second, \
            serving(governed, THIRD, honest) as third:
        outcome, joined, network = await join([liar, second, third], tmp_path / "joined")
    try:
        assert outcome is not None
        assert network.stats.peers[liar.network.public_key].refused == 1
        assert all(network.stats.peers[peer.network.public_key].refused == 0 for peer in (second, third))
        assert liar.service.served["proof"] == 1 and liar.service.served["manifestpage"] == 0
        assert_same_validators(joined, governed)
    finally:
        joined.close()


# --- trust in the validator set of H ---------------------------------------------------------


def records_of(keys: list[bytes]) -> tuple[ValidatorRecord, ...]:
    return tuple(ValidatorRecord(public_key, f"v-{index}", "127.0.0.1:1") for index, public_key in enumerate(keys))


def change_at(source: Store, height: int, records: tuple[ValidatorRecord, ...], *,
              certificate: CommitCertificate | None = None) -> SetChange:
    """A claimed change of the set from ``height + 1``, with the stored header and certificate of ``height``."""
    block = source.load_block(height)
    stored = source.load_certificate(height)
    assert block is not None and stored is not None
    return SetChange(block.header, certificate or stored, records)


def test_a_set_change_whose_header_does_not_bind_the_set_given_is_refused(source: Store) -> None:
    intruders = records_of([key(f"intruder-{index}").public_key for index in range(4)])
    with pytest.raises(SetChangeRefused, match="does not bind the set given"):
        validator_history(records_of(VALIDATOR_KEYS), [change_at(source, 1, intruders)], chain_id=CHAIN_ID,
                          height=2)


def test_a_set_change_not_certified_by_the_set_trusted_before_it_is_refused(source: Store) -> None:
    block = source.load_block(1)
    assert block is not None
    vote = commit_vote_payload(CHAIN_ID, 1, 0, block.hash)
    forged = CommitCertificate(1, 0, block.hash, tuple((index, key(f"intruder-{index}").sign(vote))
                                                       for index in range(3)))
    records = records_of(VALIDATOR_KEYS)
    with pytest.raises(SetChangeRefused, match="the header before the change at 2"):
        validator_history(records, [change_at(source, 1, records, certificate=forged)], chain_id=CHAIN_ID, height=2)


def test_set_changes_out_of_order_or_above_the_height_are_refused(governed: Store) -> None:
    genesis_set = governed.load_validators_at(1)
    added = change_at(governed, 6, governed.load_validators_at(7))
    removed = change_at(governed, 11, governed.load_validators_at(12))
    with pytest.raises(SetChangeRefused, match="out of order"):
        validator_history(genesis_set, [removed, added], chain_id=CHAIN_ID, height=14)
    with pytest.raises(SetChangeRefused, match="out of order"):
        validator_history(genesis_set, [added, removed], chain_id=CHAIN_ID, height=10)
    history = validator_history(genesis_set, [added, removed], chain_id=CHAIN_ID, height=11)
    assert [activation for activation, _ in history] == [1, 7, 12]
    assert set_at(history, 11) == governed.load_validators_at(11)
    assert set_at(history, 12) == governed.load_validators_at(12)
