"""Four real validator processes on loopback: finality, crashes, restarts, wipes, intruders.

Each test runs its own testnet in a temporary directory on free ports, drives
it only through JSON-RPC, signals and the data directories, and at the end
opens every node's LevelDB to check that all of them hold one chain.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mura.chain.keys import SigningKey
from mura.chain.store import Store
from mura.chain.transaction import Transfer
from mura.genesis.format import genesis_block
from mura.p2p.client import open_link
from mura.p2p.frames import encode_frame
from mura.p2p.handshake import HandshakeFailed, Identity
from mura.tests.node.cluster import Cluster, RpcFailure, wait_for

pytestmark = pytest.mark.processes

#: The testnet's coin, issued by its treasury.
ASSET = "NAC"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path / "testnet")
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.close()


def assert_one_chain(cluster: Cluster) -> int:
    """Every node's store holds the same block at every height they share; returns the highest."""
    cluster.close()
    stores = [Store(cluster.data_dir(index)) for index in range(len(cluster.names))]
    try:
        shared = min(store.height for store in stores)
        for height in range(1, shared + 1):
            hashes = {store.load_block(height).hash for store in stores}  # type: ignore[union-attr]
            assert len(hashes) == 1, f"nodes disagree at height {height}"
        for store in stores:
            assert store.recompute_lattice().root() == store.head.state_root
        return max(store.height for store in stores)
    finally:
        for store in stores:
            store.close()


class TransactionFlow:
    """Transfers from the treasury, submitted round-robin to some nodes until stopped."""

    def __init__(self, cluster: Cluster, nodes: list[int]) -> None:
        self.cluster = cluster
        self.nodes = nodes
        self.recipients = [SigningKey.generate().public_key for _ in range(5)]
        self.sent: dict[bytes, int] = dict.fromkeys(self.recipients, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TransactionFlow:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        chooser = random.Random(7)
        while not self._stop.is_set():
            recipient = chooser.choice(self.recipients)
            amount = chooser.randint(1, 100)
            transaction = self.cluster.sign(self.cluster.treasury, Transfer(ASSET, recipient, amount))
            self.cluster.submit(self.nodes[len(self.sent) % len(self.nodes)], transaction)
            self.sent[recipient] += amount
            self._stop.wait(0.02)


def metrics(cluster: Cluster, index: int) -> dict[str, float]:
    """Node ``index``'s /metrics samples without labels, by name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.rpc_ports[index]}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if not sample.labels}


def test_transfer_becomes_final_and_visible_on_every_node(cluster: Cluster) -> None:
    recipient = SigningKey.generate().public_key
    cluster.submit(0, cluster.sign(cluster.treasury, Transfer(ASSET, recipient, 12_345)))
    for index in range(4):
        wait_for(lambda index=index: cluster.balance(index, recipient) == 12_345, f"the balance on node {index}")
    assert cluster.balance(2, cluster.treasury.public_key) == 100_000_000 - 12_345
    # One INFO line for the block with the transfer on each node; none for the empty ones.
    final = re.compile(r"INFO +mura\.node: final block \d+: 1 transactions, view \d+, "
                       r"(\d+ ms after its proposal|fetched from a peer)$", re.MULTILINE)
    for index in range(4):
        wait_for(lambda index=index: final.search(cluster.log(index)), f"the final block's line on node {index}")
        assert len(final.findall(cluster.log(index))) == 1
        assert "final block" not in final.sub("", cluster.log(index)), "an empty block was logged"
    assert assert_one_chain(cluster) >= 1


def test_invalid_transfer_is_refused_with_its_rule_and_the_node_keeps_going(cluster: Cluster) -> None:
    poor = SigningKey.generate()
    with pytest.raises(RpcFailure) as refusal:
        cluster.submit(1, cluster.sign(poor, Transfer(ASSET, cluster.treasury.public_key, 5)))
    assert refusal.value.error["data"]["rule"] == "insufficient_balance"
    height = cluster.height(1)
    wait_for(lambda: cluster.height(1) > height, "a block after the refusal")


def test_killed_validator_restarts_and_catches_up_while_transactions_flow(cluster: Cluster) -> None:
    with TransactionFlow(cluster, nodes=[0, 1, 2]) as flow:
        start = cluster.height(0)
        wait_for(lambda: cluster.height(0) >= start + 3, "blocks before the kill")
        cluster.kill(3)
        after_kill = cluster.height(0)
        for index in range(3):
            wait_for(lambda index=index: cluster.height(index) >= after_kill + 5,
                     f"node {index} to go on without node 3")
        cluster.start(3)
        wait_for(lambda: cluster.status(3)["peers"] == 3, "node 3 to reconnect")
    target = cluster.height(0)
    wait_for(lambda: cluster.height(3) >= target, "node 3 to catch up", timeout=60)
    for recipient, amount in flow.sent.items():
        wait_for(lambda recipient=recipient, amount=amount: cluster.balance(3, recipient) == amount,
                 "every transfer on node 3")
    # Restarted on the vote record it kept beside its key, not a new one.
    assert "highest height voted" in cluster.log(3)
    assert assert_one_chain(cluster) >= target


def stored_height(cluster: Cluster, index: int) -> int:
    """The last final height in a stopped node's store."""
    store = Store(cluster.data_dir(index))
    try:
        return store.height
    finally:
        store.close()


def heights_after_a_failed_view(cluster: Cluster, survivors: list[int]) -> list[int] | None:
    """The survivors' heights once each, linked only to the others, has given up a view at
    its height (it is in a view past the one that certified its last block); None before."""
    heights: list[int] = []
    for index in survivors:
        status = cluster.status(index)
        if status["peers"] != len(survivors) - 1:
            return None
        certified_in = cluster.call(index, "chain_getCertificate", status["height"])["view"]
        if status["view"] <= certified_in:
            return None
        heights.append(status["height"])
    return heights


def test_two_of_four_stopped_halts_finality_until_one_returns(cluster: Cluster) -> None:
    wait_for(lambda: cluster.height(0) >= 3, "the first blocks")
    # Healthy: every validator is heard voting (a certificate holds only a quorum of 3), once
    # each has its double-sign check behind it.
    for index in range(4):
        wait_for(lambda index=index: metrics(cluster, index)["mura_consensus_missing_validators"] == 0,
                 f"node {index} to hear every validator vote")
        assert metrics(cluster, index)["process_resident_memory_bytes"] > 0
    assert cluster.stop(2) == 0
    assert cluster.stop(3) == 0
    # A quorum is three, so every block from now on needs a commit node 2 or 3 cast before it
    # stopped, and they voted at most one block past the highest they hold.
    last_voted = max(stored_height(cluster, 2), stored_height(cluster, 3)) + 1
    # Observe until each survivor's view timed out at its height and no quorum took it to the
    # next: a whole view timeout without progress, however slow the machine.
    halted = wait_for(lambda: heights_after_a_failed_view(cluster, [0, 1]), "both survivors to give up a view")
    assert max(halted) <= last_voted, f"finality went on to {halted} with two of four validators"
    # Each survivor says at WARNING whom it waits for, within a few view timeouts (0.6 s each).
    stopped = f"{cluster.names[2]}, {cluster.names[3]}"
    for index in (0, 1):
        wait_for(lambda index=index: "no quorum: linked to 1 of 3 other validators, a block needs 3 of 4; waiting for "
                 f"1 more (not linked: {stopped})" in cluster.log(index), f"node {index}'s no-quorum line", timeout=10)
        assert metrics(cluster, index)["mura_consensus_stalled"] == 1
    cluster.start(2)
    wait_for(lambda: cluster.height(0) > max(halted) and cluster.height(2) > max(halted), "finality to resume",
             timeout=60)
    resumed = re.compile(r"INFO +mura\.node: progress resumed at height \d+ after \d+ s without a final block$",
                         re.MULTILINE)
    for index in (0, 1):
        wait_for(lambda index=index: resumed.search(cluster.log(index)), f"node {index}'s line that progress resumed")
    assert assert_one_chain(cluster) > max(halted)


def test_wiped_node_resyncs_to_the_same_state(cluster: Cluster) -> None:
    recipient = SigningKey.generate().public_key
    for _ in range(5):
        cluster.submit(0, cluster.sign(cluster.treasury, Transfer(ASSET, recipient, 10)))
    wait_for(lambda: cluster.balance(0, recipient) == 50, "the transfers")
    wait_for(lambda: cluster.height(0) >= 10, "enough blocks that a resync is a catch-up")
    assert cluster.stop(3) == 0
    cluster.wipe(3)
    cluster.start(3)
    target = cluster.height(0)
    wait_for(lambda: cluster.height(3) >= target, "the wiped node to resync", timeout=60)
    assert cluster.balance(3, recipient) == 50
    # A line as it starts and one when it is done, rather than a line per block fetched.
    wait_for(lambda: "caught up at height" in cluster.log(3), "the line that the wiped node caught up")
    restarted = cluster.log(3).rpartition("starting ")[2]
    assert re.search(r"catching up from height \d+ to ~\d+ \(\d+ blocks behind\)", restarted)
    assert assert_one_chain(cluster) >= target


def test_intruder_key_is_refused_and_garbage_does_not_stop_a_node(cluster: Cluster) -> None:
    genesis, _ = genesis_block(cluster.layout.genesis)
    intruder = Identity(
        SigningKey.generate(), cluster.chain_id, genesis.hash, frozenset(cluster.layout.genesis.validator_keys())
    )
    validator = cluster.layout.genesis.validators[0]
    peer_port = int(validator.peer_address.rpartition(":")[2])

    async def intrude() -> str:
        url = f"http://127.0.0.1:{peer_port}/p2p"
        try:
            link = await open_link(url, intruder, expected_public_key=validator.public_key, timeout=5)
        except HandshakeFailed as error:
            refusal = str(error)
        else:
            await link.close()
            refusal = ""
        async with aiohttp.ClientSession() as session:
            for junk in (b"\x00garbage", encode_frame("hello", [1, 2, 3]), bytes(range(256))):
                async with session.ws_connect(f"http://127.0.0.1:{peer_port}/p2p") as websocket:
                    await websocket.send_bytes(junk)
                    await websocket.receive(timeout=5)
        return refusal

    refusal = asyncio.run(intrude())
    assert refusal, "the node completed a handshake with a key that is not in genesis"
    wait_for(lambda: "not admitted" in cluster.log(0), "the refusal in node 0's log")
    height = cluster.height(0)
    wait_for(lambda: cluster.height(0) > height + 2, "node 0 to keep finalizing")
    assert cluster.status(0)["peers"] == 3


def test_a_new_network_whose_validators_start_one_after_another_makes_blocks(tmp_path: Path) -> None:
    """Seven validators, every vote record new: four start and sign at height 1 without a
    quorum (they give up view 0); the other three start later, hear them signing there,
    keep out of those views and join from the next, and the chain starts."""
    cluster = Cluster(tmp_path / "testnet", validators=7)
    try:
        for index in range(4):
            cluster.start(index)
        wait_for(lambda: cluster.is_ours(0) and cluster.status(0)["view"] >= 1, "the first four to give up view 0")
        assert cluster.height(0) == 0
        for index in range(4, 7):
            cluster.start(index)
        for index in range(7):
            wait_for(lambda index=index: cluster.height(index) >= 2, f"node {index} to finalize blocks", timeout=60)
        # The first of the three to start hears the four signing at height 1 and keeps out of
        # their views; a later one may find height 1 final already (four and one are a quorum).
        assert any("signing nothing there before view" in cluster.log(index) for index in range(4, 7))
    finally:
        cluster.close()
    assert assert_one_chain(cluster) >= 2
