"""Joining by state sync, with real validator processes on loopback.

Four validators make blocks while transfers flow; every node makes a snapshot
of its state every ``INTERVAL`` heights. One validator's data directory is
wiped and it comes back with ``sync.mode = "snapshot"``: it must take the
state of a recent certified height from its peers, refuse the chunk that one
of them (a validator that alters every chunk it serves) sends, fetch that
range from another, then follow the chain and end on the same state as the
validators that executed every block from genesis.

On a chain whose validator set changed by governance before the snapshot
(five validators, one removed), the joining node checks the change, checks
the certificates of the blocks after H against the set of their height, and
answers the set of every height as the others do.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mura.chain.governance import RemoveValidator
from mura.chain.keys import load_key
from mura.chain.store import Store
from mura.chain.transaction import Approve, Propose, Transaction
from mura.tests.node.cluster import Cluster, RpcFailure, wait_for
from mura.tests.node.test_processes import TransactionFlow

pytestmark = pytest.mark.processes

INTERVAL = 10
TAMPERING_NODE = "mura.tests.node.tampering_node"
JOINED = re.compile(r"joined by state sync at height (\d+): (\d+) state entries in (\d+) chunks")


FETCHING = re.compile(r"fetching the state at height (\d+) \(\d+ entries in \d+ ranges, (\d+) validator set changes\)")


def assert_one_chain_from(cluster: Cluster, height: int, nodes: list[int] | None = None) -> int:
    """Every node (of ``nodes``, default all) holds the same block at every height from ``height``
    that they share, and a state whose recomputed lattice is its head's state root; returns the
    highest height."""
    cluster.close()
    indexes = range(len(cluster.names)) if nodes is None else nodes
    stores = [Store(cluster.data_dir(index)) for index in indexes]
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


def finalize(cluster: Cluster, index: int, transaction: Transaction) -> None:
    """Submit ``transaction`` to node ``index`` and wait until it is final."""
    transaction_hash = cluster.submit(index, transaction)
    wait_for(lambda: cluster.call(index, "tx_wait", transaction_hash, 2), "the transaction to be final")


def test_a_node_joins_by_state_sync_after_a_validator_set_change(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "testnet", validators=5,
                      flags=["--sync-snapshot-interval", str(INTERVAL), "--sync-snapshots-kept", "3"])
    keys = [load_key(cluster.directory / "keys" / f"{name}.key") for name in cluster.names]
    removed, joiner = 4, 3
    try:
        cluster.start_all()
        finalize(cluster, 0, cluster.sign(keys[0], Propose(RemoveValidator(keys[removed].public_key))))
        for approver in (1, 2, 3):
            finalize(cluster, approver, cluster.sign(keys[approver], Approve(1)))
        approved = cluster.call(0, "governance_getProposals", "approved")["proposals"]
        activation = approved[0]["activation_height"]
        wait_for(lambda: cluster.height(0) >= activation, "the change to decide heights")
        # Out of the set, the removed validator is not needed: the four go on without it.
        assert cluster.stop(removed) == 0
        with TransactionFlow(cluster, nodes=[0, 1, 2]) as flow:
            wait_for(lambda: cluster.height(0) >= activation + INTERVAL + 2, "a snapshot after the change",
                     timeout=60)
            assert cluster.stop(joiner) == 0
            cluster.wipe(joiner)
            cluster.start_with(joiner, flags=["--sync-mode", "snapshot"])
            joined = wait_for(lambda: JOINED.search(cluster.log(joiner)), "the node to join by state sync",
                              timeout=60)
        height = int(joined.group(1))
        fetching = FETCHING.search(cluster.log(joiner))
        assert fetching is not None and int(fetching.group(1)) == height
        # The change (and only it) was served, checked, and is the one the chain made.
        assert height >= activation and int(fetching.group(2)) == 1
        assert "replaying from genesis" not in cluster.log(joiner)
        target = cluster.height(0)
        wait_for(lambda: cluster.height(joiner) >= target, "the joined node to follow the chain", timeout=60)
        for recipient, amount in flow.sent.items():
            wait_for(lambda recipient=recipient, amount=amount: cluster.balance(joiner, recipient) == amount,
                     "every transfer on the joined node")
        head = cluster.height(joiner)
        for at in (1, activation - 1, activation, height, height + 1, head, head + 2):
            assert cluster.call(joiner, "chain_validators", at) == cluster.call(0, "chain_validators", at), at
        assert len(cluster.call(joiner, "chain_validators", height)["validators"]) == 4
        assert cluster.call(joiner, "chain_validators", activation - 1)["validators"][removed]["public_key"] == \
            "0x" + keys[removed].public_key.hex()
    finally:
        cluster.close()
    assert assert_one_chain_from(cluster, height, nodes=[0, 1, 2, joiner]) >= target
