"""Joining by state sync, with real validator processes on loopback.

Four validators make blocks while transfers flow; every node makes a snapshot
of its state every ``INTERVAL`` heights. One validator's data directory is
wiped and it comes back with ``sync.mode = "snapshot"``: it must take the
state of a recent certified height from its peers, refuse the chunk that one
of them (a validator that alters every chunk it serves) sends, fetch that
range from another, then follow the chain and end on the same state as the
validators that executed every block from genesis.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mura.chain.store import Store
from mura.tests.node.cluster import Cluster, RpcFailure, wait_for
from mura.tests.node.test_processes import TransactionFlow

pytestmark = pytest.mark.processes

INTERVAL = 10
TAMPERING_NODE = "mura.tests.node.tampering_node"
JOINED = re.compile(r"joined by state sync at height (\d+): (\d+) state entries in (\d+) chunks")


def assert_one_chain_from(cluster: Cluster, height: int) -> int:
    """Every node holds the same block at every height from ``height`` that they share, and a
    state whose recomputed lattice is its head's state root; returns the highest height."""
    cluster.close()
    stores = [Store(cluster.data_dir(index)) for index in range(len(cluster.names))]
    try:
        shared = min(store.height for store in stores)
        assert shared > height
        for at in range(height, shared + 1):
            hashes = {store.load_block(at).hash for store in stores}  # type: ignore[union-attr]
            assert len(hashes) == 1, f"nodes disagree at height {at}"
        for store in stores:
            assert store.recompute_lattice().root() == store.head.state_root
        return max(store.height for store in stores)
    finally:
        for store in stores:
            store.close()


def test_a_node_joining_by_state_sync_refuses_a_tampered_chunk_and_ends_on_the_replayed_state(
    tmp_path: Path,
) -> None:
    cluster = Cluster(tmp_path / "testnet", flags=["--sync-snapshot-interval", str(INTERVAL),
                                                   "--sync-snapshots-kept", "3"])
    keys = [validator.public_key for validator in cluster.layout.genesis.validators]
    joiner = 3
    # The joining node asks its peers for chunks in key order: the liar is the one asked first.
    liar = min(range(3), key=lambda index: keys[index])
    try:
        for index in range(4):
            cluster.start_with(index, module=TAMPERING_NODE if index == liar else "mura.node")
        for index in range(4):
            wait_for(lambda index=index: cluster.is_ours(index) and cluster.status(index)["peers"] == 3,
                     f"node {index} to connect")
        with TransactionFlow(cluster, nodes=[0, 1, 2]) as flow:
            wait_for(lambda: cluster.height(0) >= 2 * INTERVAL + 2, "two snapshots' worth of blocks", timeout=60)
            assert cluster.stop(joiner) == 0
            cluster.wipe(joiner)
            cluster.start_with(joiner, flags=["--sync-mode", "snapshot"])
            joined = wait_for(lambda: JOINED.search(cluster.log(joiner)), "the node to join by state sync",
                              timeout=60)
        height = int(joined.group(1))
        assert height >= INTERVAL and height % INTERVAL == 0
        log = cluster.log(joiner)
        assert f"refused what peer {keys[liar].hex()[:16]} sent (chunk_mismatch)" in log
        assert "replaying from genesis" not in log
        target = cluster.height(0)
        wait_for(lambda: cluster.height(joiner) >= target, "the joined node to follow the chain", timeout=60)
        for recipient, amount in flow.sent.items():
            wait_for(lambda recipient=recipient, amount=amount: cluster.balance(joiner, recipient) == amount,
                     "every transfer on the joined node")
        # Below the height it joined at, the node says it does not keep the blocks.
        with pytest.raises(RpcFailure) as refusal:
            cluster.call(joiner, "chain_getBlock", height - 1)
        assert refusal.value.error["code"] == -32040
        assert refusal.value.error["data"]["kept_from"] == height
        assert cluster.call(joiner, "chain_getBlock", height)["height"] == height
        # The liar's refused chunk was counted against it.
        assert "chunk_mismatch" in log
    finally:
        cluster.close()
    assert assert_one_chain_from(cluster, height) >= target
