"""Four real validator processes: what the mempool refuses and drops, seen from every node.

One network runs through the cases in turn: a mint past the largest supply is refused
and its sender is not blocked; a transaction parked behind a missing nonce expires from
every node's mempool; and of two transactions racing for one nonce from two nodes, one
becomes final and the other reads as dropped on every node, none of which keeps it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mura.chain.keys import SigningKey
from mura.chain.transaction import Body, Mint, Transaction, Transfer, sign_transaction
from mura.tests.node.cluster import Cluster, RpcFailure, wait_for

pytestmark = pytest.mark.processes

EXPIRE_AFTER_SECONDS = 3
RECIPIENT = SigningKey.from_private_bytes(bytes(range(32))).public_key
#: The testnet's coin, issued by its treasury.
ASSET = "NAC"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(
        tmp_path / "testnet",
        flags=["--mempool-expire-after-seconds", str(EXPIRE_AFTER_SECONDS), "--mempool-rebroadcast-after-ms", "600"],
    )
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.close()


def signed(cluster: Cluster, nonce: int, body: Body) -> Transaction:
    return sign_transaction(cluster.treasury, chain_id=cluster.chain_id, nonce=nonce, body=body)


def lookup(cluster: Cluster, index: int, transaction: Transaction) -> dict[str, Any]:
    """``chain_getTransaction`` on node ``index``: the result, or the error object."""
    try:
        return {"result": cluster.call(index, "chain_getTransaction", "0x" + transaction.hash.hex())}
    except RpcFailure as failure:
        return {"error": failure.error}


def dropped_everywhere(cluster: Cluster, transaction: Transaction, rules: set[str]) -> bool:
    for index in range(len(cluster.names)):
        error = lookup(cluster, index, transaction).get("error", {})
        if error.get("code") != -32023 or error["data"]["rule"] not in rules:
            return False
    return True


def test_unincludable_transactions_leave_every_mempool_with_a_reason(cluster: Cluster) -> None:
    nodes = range(len(cluster.names))

    # The case: admitted, it would have blocked the treasury for good.
    with pytest.raises(RpcFailure) as refusal:
        cluster.submit(0, signed(cluster, 0, Mint(ASSET, RECIPIENT, 2**64 - 1)))
    assert (refusal.value.error["code"], refusal.value.error["data"]["rule"]) == (-32010, "supply_overflow")
    first = signed(cluster, 0, Transfer(ASSET, RECIPIENT, 1))
    cluster.submit(1, first)
    final = cluster.call(3, "tx_wait", "0x" + first.hash.hex(), 20)
    assert final["nonce"] == 0

    # Parked behind a nonce nobody sends: gossiped to every node, and expired from each.
    parked = signed(cluster, 2, Transfer(ASSET, RECIPIENT, 1))
    cluster.submit(0, parked)
    wait_for(lambda: all(lookup(cluster, index, parked)["error"]["data"]["pending"] for index in nodes),
             "the parked transaction to reach every mempool")
    wait_for(lambda: dropped_everywhere(cluster, parked, {"expired"}), "the parked transaction to expire everywhere",
             timeout=EXPIRE_AFTER_SECONDS + 15)
    with pytest.raises(RpcFailure) as expired:
        cluster.call(2, "tx_wait", "0x" + parked.hash.hex(), 5)
    assert expired.value.error["data"]["rule"] == "expired"

    # Two versions of nonce 1 race from two nodes; each node keeps at most one, and once one is
    # final the other is pending nowhere: dropped (as replaced, or as a used nonce) wherever it
    # was admitted, unknown where it arrived only after the winner was final.
    versions = [signed(cluster, 1, Transfer(ASSET, RECIPIENT, amount)) for amount in (10, 20)]
    admitted: dict[int, bool] = {}

    def submit(index: int, version: Transaction) -> None:
        try:
            cluster.submit(index, version)
            admitted[index] = True
        except RpcFailure:
            admitted[index] = False

    submitters = [
        threading.Thread(target=submit, args=(index, version))
        for index, version in zip((0, 2), versions, strict=False)
    ]
    for submitter in submitters:
        submitter.start()
    for submitter in submitters:
        submitter.join(timeout=10)
    assert admitted[0] or admitted[2]
    wait_for(lambda: any("result" in lookup(cluster, 1, version) for version in versions), "one version to be final")
    winner, loser = versions if "result" in lookup(cluster, 1, versions[0]) else versions[::-1]
    wait_for(lambda: all("result" in lookup(cluster, index, winner) for index in nodes), "the winner on every node")
    wait_for(lambda: all(cluster.call(index, "mempool_status")["transactions"] == 0 for index in nodes),
             "every mempool to be empty")
    submitted_at = 0 if loser is versions[0] else 2
    for index in nodes:
        error = lookup(cluster, index, loser)["error"]
        if index == submitted_at and admitted[index]:
            assert error["code"] == -32023
        if error["code"] == -32023:
            assert error["data"]["rule"] in {"replaced", "nonce_used"}
        else:
            assert (error["code"], error["data"]["pending"]) == (-32021, False)
    # The same nonce again is a nonce already used, from any node.
    with pytest.raises(RpcFailure) as reused:
        cluster.submit(3, loser)
    assert reused.value.error["data"]["rule"] == "nonce_too_low"

    # Each node said what it dropped in one summary line, and no node took a gossiped
    # version for a peer's misbehaviour.
    logs = [cluster.log(index) for index in nodes]
    assert all("dropped 1 pending transaction: expired 1" in log for log in logs)
    assert not any("refused a frame from peer" in log for log in logs)
