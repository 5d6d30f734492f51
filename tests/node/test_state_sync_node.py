"""A node set to join by state sync when nobody offers a snapshot, and one that finds a sync
that did not finish in its data directory."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from mura.chain.store import Store
from mura.genesis.testnet import TestnetLayout, generate_testnet
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
