"""An observer among four real validator processes: it follows every final block, answers
reads, forwards transactions, says how far behind it is, and never signs anything."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mura.chain.keys import SigningKey
from mura.chain.transaction import Transfer
from mura.genesis.testnet import KEYS_DIRECTORY
from mura.tests.node.cluster import Cluster, RpcFailure, check_one_chain, wait_for
from mura.tests.node.test_processes import ASSET, TransactionFlow, metrics

pytestmark = pytest.mark.processes

VALIDATORS = 4
#: The observer's node number (validators come first).
OBSERVER = VALIDATORS


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path / "testnet", validators=VALIDATORS, observers=1)
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.close()


def ready(cluster: Cluster, index: int) -> tuple[int, dict[str, Any]]:
    """GET /ready: the HTTP status and the body."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{cluster.rpc_ports[index]}/ready", timeout=5) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def check_every_certificate(cluster: Cluster) -> int:
    """Every node's store holds the same blocks and the same state root, and every commit
    certificate verifies against the validators that decide its height; returns the height
    every node reached."""
    cluster.close()
    return check_one_chain(cluster, list(range(len(cluster.names))))


def test_observer_follows_answers_forwards_and_never_signs(cluster: Cluster) -> None:
    status = cluster.status(OBSERVER)
    assert (status["role"], status["voting"], status["peers"]) == ("observer", False, VALIDATORS)
    assert "an observer" in cluster.log(OBSERVER) and "never votes" in cluster.log(OBSERVER)
    # A transfer submitted to the observer is checked there, forwarded, and final everywhere.
    recipient = SigningKey.generate().public_key
    submitted = cluster.submit(OBSERVER, cluster.sign(cluster.treasury, Transfer(ASSET, recipient, 4_321)))
    final = cluster.call(OBSERVER, "tx_wait", submitted, 30)
    assert final["hash"] == submitted
    for index in range(VALIDATORS + 1):
        wait_for(lambda index=index: cluster.balance(index, recipient) == 4_321, f"the balance on node {index}")
    # A transfer no validator would admit is refused by the observer with the same rule.
    poor = SigningKey.generate()
    with pytest.raises(RpcFailure) as refusal:
        cluster.submit(OBSERVER, cluster.sign(poor, Transfer(ASSET, recipient, 5)))
    assert refusal.value.error["data"]["rule"] == "insufficient_balance"
    # Blocks flow to it while transfers go to the validators.
    with TransactionFlow(cluster, nodes=[0, 1, OBSERVER]) as flow:
        start = cluster.height(0)
        wait_for(lambda: cluster.height(OBSERVER) >= start + 5, "the observer to follow five more blocks")
    for sent_to, amount in flow.sent.items():
        wait_for(lambda sent_to=sent_to, amount=amount: cluster.balance(OBSERVER, sent_to) == amount,
                 "every transfer on the observer")
    # It reports how far behind it is, and is ready with its validator links.
    wait_for(lambda: cluster.status(OBSERVER)["height"] >= cluster.height(0), "the observer to be level")
    status = cluster.status(OBSERVER)
    assert status["blocks_behind"] == status["highest_known_height"] - status["height"] <= 2
    assert ready(cluster, OBSERVER)[0] == 200
    figures = metrics(cluster, OBSERVER)
    assert figures["mura_consensus_voting"] == 0
    assert figures["mura_consensus_missing_validators"] == 0
    for index in range(VALIDATORS):
        validator = metrics(cluster, index)
        assert validator["mura_consensus_voting"] == 1
        # Each final block went once to the one observer linked to it.
        assert 0 < validator["mura_p2p_final_blocks_pushed_total"] <= validator["mura_chain_height"]
    # It never kept a vote record.
    assert not (cluster.directory / KEYS_DIRECTORY / f"{cluster.names[OBSERVER]}.votes").exists()
    assert check_every_certificate(cluster) >= start + 5


def test_observer_restarted_behind_catches_up_and_is_ready_again(cluster: Cluster) -> None:
    wait_for(lambda: cluster.height(OBSERVER) >= 2, "the observer to follow the first blocks")
    assert cluster.stop(OBSERVER) == 0
    recipient = SigningKey.generate().public_key
    for _ in range(3):
        cluster.submit(0, cluster.sign(cluster.treasury, Transfer(ASSET, recipient, 7)))
    stopped_at = cluster.height(0)
    wait_for(lambda: cluster.height(0) >= stopped_at + 10 and cluster.balance(0, recipient) == 21,
             "ten blocks while the observer is down")
    cluster.start(OBSERVER)
    target = cluster.height(0)
    # What it knows of the network's height covers the blocks it missed, as soon as it hears.
    wait_for(lambda: cluster.status(OBSERVER)["highest_known_height"] >= target, "the observer to hear the height")
    wait_for(lambda: cluster.status(OBSERVER)["height"] >= target, "the observer to catch up")
    wait_for(lambda: ready(cluster, OBSERVER)[0] == 200, "the observer to be ready")
    assert cluster.balance(OBSERVER, recipient) == 21
    # With no validator to follow it stalls, and its log and /ready say so.
    for index in range(VALIDATORS):
        cluster.stop(index)
    body = wait_for(lambda: (answer := ready(cluster, OBSERVER))[0] == 503 and answer[1], "the observer not ready")
    assert body["peers"] == 0
    assert check_every_certificate(cluster) >= target
