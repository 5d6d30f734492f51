"""A node set to join by state sync when nobody offers a snapshot, and one that finds a sync
that did not finish in its data directory."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from mura.chain.keys import SigningKey, sha256
from mura.chain.store import Store
from mura.config import ConfigError
from mura.genesis.format import genesis_block
from mura.genesis.testnet import TestnetLayout, generate_testnet
from mura.p2p.network import Network
from mura.p2p.sync_messages import STATE_SYNC_KIND, Offers, OffersRequest, decode_sync_message, encode_sync_message
from mura.tests.rpc.support import start_test_node, wait_until


@pytest.fixture(scope="module")
def lone_validator(tmp_path_factory: pytest.TempPathFactory) -> TestnetLayout:
    return generate_testnet(tmp_path_factory.mktemp("testnet1"), validators=1)


async def test_with_no_snapshot_offered_a_node_starts_from_genesis(lone_validator: TestnetLayout,
                                                                    tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as session:
        started = await start_test_node(lone_validator, tmp_path / "data", session, {"sync.mode": "snapshot"})
        try:
            await wait_until(lambda: started.height >= 2, "blocks from genesis")
            assert started.node.store.kept_from == 0
            assert started.node.store.load_block(1) is not None
        finally:
            await started.node.stop()


async def test_a_sync_that_did_not_finish_is_discarded_by_a_node_that_replays(lone_validator: TestnetLayout,
                                                                             tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    store.begin_state_sync()
    store.save_synced_entries(20, [(b"a" + bytes(32), b"\x92\x00\x00")])
    store.close()
    async with aiohttp.ClientSession() as session:
        started = await start_test_node(lone_validator, tmp_path / "data", session, {"sync.mode": "full"})
        try:
            await wait_until(lambda: started.height >= 1, "a block from genesis")
            store = started.node.store
            assert not store.sync_unfinished and store.kept_from == 0
            assert store.recompute_lattice().root() == store.head.state_root
        finally:
            await started.node.stop()


async def test_a_joining_node_links_to_the_peers_it_is_given_though_genesis_does_not_name_them(
        lone_validator: TestnetLayout, tmp_path: Path) -> None:
    """Today's validators, named in p2p.peers, may have been added by governance since genesis."""
    today = SigningKey.from_private_bytes(sha256(b"a validator added after genesis"))
    asked: list[bytes] = []
    genesis_hash = genesis_block(lone_validator.genesis)[0].hash

    async def on_sync_frame(peer: bytes, payload: object) -> None:
        if isinstance(decode_sync_message(payload), OffersRequest):
            asked.append(peer)
            current.send(peer, STATE_SYNC_KIND, encode_sync_message(Offers(0, ())))

    joiner = lone_validator.genesis.validators[0].public_key
    current = Network(key=today, chain_id=lone_validator.genesis.chain_id, genesis_hash=genesis_hash,
                      listen_host="127.0.0.1", listen_port=0, peers=[], admitted=[joiner],
                      handlers={STATE_SYNC_KIND: on_sync_frame})
    await current.start()
    try:
        settings = {"sync.mode": "snapshot", "sync.snapshot_wait_seconds": 30,
                    "p2p.peers": [f"{today.public_key.hex()}@127.0.0.1:{current.listen_port}"]}
        async with aiohttp.ClientSession() as session:
            started = await start_test_node(lone_validator, tmp_path / "data", session, settings)
            await started.node.stop()
    finally:
        await current.stop()
    assert asked == [joiner]


async def test_a_joining_node_given_its_own_key_as_a_peer_says_so(lone_validator: TestnetLayout,
                                                                   tmp_path: Path) -> None:
    own = lone_validator.genesis.validators[0].public_key
    settings = {"sync.mode": "snapshot", "p2p.peers": [f"{own.hex()}@127.0.0.1:7999"]}
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConfigError, match=r"p2p\.peers: .* own key"):
            await start_test_node(lone_validator, tmp_path / "data", session, settings)
