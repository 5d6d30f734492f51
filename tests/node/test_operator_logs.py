"""What a real node logs and shows in /metrics when its chain cannot make progress.

One real ``Node`` (validator 0 of a four-validator testnet) runs in the test's
event loop; other validators are linked to it through real ``Network``s with
their real keys, but take no part in consensus. Alone, it has no quorum; with
two of them linked it has one, but no agreement.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mura.consensus.messages import ViewChange, encode_message
from mura.genesis.testnet import TestnetLayout
from mura.tests.node.validator_peers import ConnectPeer
from mura.tests.rpc.support import TestNode, start_test_node, wait_until


@pytest.fixture
async def node(testnet: TestnetLayout, tmp_path: Path) -> AsyncIterator[TestNode]:
    """Validator 0 alone, with a 200 ms view timeout and no double-sign check (its vote
    record is new, and the test's validators would otherwise move its first views)."""
    settings = {"consensus.base_timeout_ms": 200, "consensus.double_sign_check_heights": 0,
                "consensus.empty_block_interval_ms": 100}
    async with aiohttp.ClientSession() as session:
        started = await start_test_node(testnet, tmp_path / "node", session, settings)
        try:
            yield started
        finally:
            await started.node.stop()


async def scrape(node: TestNode) -> dict[str, float]:
    """The node's /metrics samples without labels, by name."""
    async with node.rpc.session.get(node.rpc.server.url + "metrics") as response:
        text = await response.text()
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if not sample.labels}


def messages(caplog: pytest.LogCaptureFixture, start: str, level: int = logging.INFO) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == "mura.node" and record.levelno == level and record.getMessage().startswith(start)]


async def test_a_node_without_a_quorum_says_whom_it_waits_for_then_why_it_still_cannot_agree(
    node: TestNode, connect_peer: ConnectPeer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mura.node")
    names = [validator.name for validator in node.node.genesis.validators]
    # Its view timer (200 ms) runs out and no quorum ever starts the next view.
    await wait_until(lambda: messages(caplog, "view change at height 1: view 0 -> 1 (its timer ran out)"),
                     "the view change to be logged")
    await wait_until(lambda: messages(caplog, "no quorum", logging.WARNING), "the no-quorum warning")
    assert messages(caplog, "no quorum", logging.WARNING)[0].startswith(
        f"no quorum: linked to 0 of 3 other validators, a block needs 3 of 4; waiting for 2 more "
        f"(not linked: {', '.join(names[1:])}); no final block for "
    )
    samples = await scrape(node)
    assert samples["mura_consensus_stalled"] == 1
    assert samples["mura_consensus_missing_validators"] == 3
    assert samples["process_resident_memory_bytes"] > 0 and samples["process_cpu_seconds_total"] > 0

    await connect_peer(1)
    await wait_until(lambda: len(messages(caplog, "no quorum", logging.WARNING)) == 2, "the change to be said")
    assert "waiting for 1 more (not linked: " in messages(caplog, "no quorum", logging.WARNING)[1]
    await connect_peer(2)
    await wait_until(lambda: messages(caplog, "no agreement", logging.WARNING), "the stall to change its kind")
    assert messages(caplog, "no agreement", logging.WARNING)[0].startswith("no agreement: no final block for ")
    assert "though linked to 2 of 3 other validators (a block needs 3 of 4)" in messages(
        caplog, "no agreement", logging.WARNING)[0]
    # Said once per change, not once per check (every second).
    assert len(messages(caplog, "no quorum", logging.WARNING)) == 2
    assert not messages(caplog, "final block") and not messages(caplog, "progress resumed")


async def test_a_view_change_others_pull_the_node_into_is_said_with_their_names(
    node: TestNode, connect_peer: ConnectPeer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mura.node")
    names = [validator.name for validator in node.node.genesis.validators]
    await wait_until(lambda: messages(caplog, "view change at height 1: view 0 -> 1 (its timer ran out)"),
                     "the node's own view change")
    for index in (1, 2):
        peer = await connect_peer(index)
        change = ViewChange.sign(peer.key, index, node.node.rules.chain_id, 3, 1, None, None)
        await peer.send_consensus(node, encode_message(change))
    await wait_until(lambda: messages(caplog, "view change at height 1: view 1 -> 3"), "the pull-along")
    assert messages(caplog, "view change at height 1: view 1 -> 3") == [
        f"view change at height 1: view 1 -> 3 (pulled along by 2 validators asking for view 3 or later: "
        f"{names[1]}, {names[2]}), primary now {names[3]}"
    ]


async def test_a_restart_into_the_view_it_voted_in_is_a_view_change_with_its_reason(
    node: TestNode, testnet: TestnetLayout, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mura.node")
    names = [validator.name for validator in node.node.genesis.validators]
    await wait_until(lambda: messages(caplog, "view change at height 1: view 0 -> 1 (its timer ran out)"),
                     "a VIEW-CHANGE for view 1 in the vote record")
    await node.node.stop()
    caplog.clear()
    async with aiohttp.ClientSession() as session:
        settings = {"consensus.base_timeout_ms": 60_000, "consensus.max_timeout_ms": 60_000,
                    "consensus.double_sign_check_heights": 0}
        again = await start_test_node(testnet, tmp_path / "node", session, settings)
        try:
            assert messages(caplog, "view change") == [
                "view change at height 1: view 0 -> 1 (restart: resuming the view this validator last voted in "
                f"here), primary now {names[1]}"
            ]
        finally:
            await again.node.stop()
