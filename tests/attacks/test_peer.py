"""The attacker's peer client against real nodes: it speaks protocol 2 as a validator,
fails handshakes the ways it says, and its keyless relay is refused in every variant."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mura.consensus.messages import decode_message
from mura.tests.attacks.peer import (
    CONSENSUS_KIND,
    HANDSHAKE_FAILURES,
    RELAY_VARIANTS,
    Refused,
    connect,
    fail_handshake,
    frame_payload,
    relay_impersonation,
)
from mura.tests.attacks.testnet import ATTACKER, AttackCluster, start_cluster

pytestmark = pytest.mark.processes

#: Where the relay connects from, so the nodes' logs tell it apart.
RELAY_HOST = "127.0.0.2"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttackCluster]:
    running = start_cluster(Path(tmp_path_factory.mktemp("peer")))
    try:
        yield running
    finally:
        running.close()


async def first_consensus_message(cluster: AttackCluster) -> object:
    link = await connect(cluster.endpoint(0), key=cluster.key(ATTACKER), testnet=cluster.testnet)
    try:
        while True:  # the node sends what it broadcasts from now on; a vote comes within a block
            frame = await link.receive(timeout=10)
            assert frame is not None, "the node sent nothing on the link within 10 s"
            payload = frame_payload(frame, CONSENSUS_KIND)
            if isinstance(payload, bytes):
                return decode_message(payload)
    finally:
        await link.close()


def test_a_link_as_the_attackers_validator_key_carries_the_nodes_consensus_messages(cluster: AttackCluster) -> None:
    message = asyncio.run(first_consensus_message(cluster))
    # At an idle height (nothing signed yet) the first is the node's height, as to any peer whose link opens.
    kinds = {"PrePrepare", "Prepare", "Commit", "ViewChange", "NewView", "BlockRequest", "Status"}
    assert type(message).__name__ in kinds


def test_each_handshake_failure_is_refused_for_its_own_reason(cluster: AttackCluster) -> None:
    async def fail_each() -> dict[str, str]:
        return {variant: await fail_handshake(cluster.endpoint(0), variant, testnet=cluster.testnet)
                for variant in HANDSHAKE_FAILURES}

    endings = asyncio.run(fail_each())
    assert "malformed hello" in endings["random_bytes"]
    assert "wrong chain id" in endings["wrong_chain_id"]
    assert "is not admitted" in endings["unknown_key"]


def test_the_keyless_relay_is_refused_in_every_variant_and_bans_no_one(cluster: AttackCluster) -> None:
    async def relay(variant: str) -> str:
        try:
            link = await relay_impersonation(cluster.endpoint(0), cluster.endpoint(1), testnet=cluster.testnet,
                                             variant=variant, source_host=RELAY_HOST)
        except Refused as refusal:
            return str(refusal)
        await link.close()
        return "admitted"

    refusals = {variant: asyncio.run(relay(variant)) for variant in RELAY_VARIANTS}
    # Each variant is stopped where protocol 2 says it must be.
    assert "does not open under this connection's key" in refusals["forward"]  # the signer, at the "AUTH"
    assert "does not open under this connection's key" in refusals["forward_back"]  # the victim, at the "AUTH"
    assert "signature" in refusals["substitute"] and "does not verify" in refusals["substitute"]
    for index in (0, 1):
        log = cluster.log(index)
        assert not re.search(rf"connected to peer \w+ at {re.escape(RELAY_HOST)}:", log)
        assert "banning peer" not in log
    assert cluster.status(0)["peers"] == 2
