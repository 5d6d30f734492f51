"""Tests of the consensus task's intake of peers' consensus frames: bounded per peer, relayed copies
dropped before decoding, block requests answered off the replica's queue."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mura.config import load_config
from mura.consensus.messages import BlockRequest, Prepare, encode_message
from mura.consensus_runner import InvalidMessageSender
from mura.genesis.testnet import TestnetLayout, generate_testnet, node_config_path
from mura.node import Node
from mura.p2p.inbox import InboxLimits


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> TestnetLayout:
    return generate_testnet(tmp_path_factory.mktemp("testnet"), validators=4)


@pytest.fixture
async def node(layout: TestnetLayout) -> AsyncIterator[Node]:
    """A validator built but not started: its consensus task does not take the queue."""
    node = Node(load_config(node_config_path(layout.directory, layout.genesis.validators[0].name)))
    yield node
    await node.stop()


def vote(view: int) -> bytes:
    return encode_message(Prepare(view, 1, bytes(32), 1, bytes(64)))


async def test_one_peer_gets_at_most_its_share_and_the_others_still_get_theirs(
    layout: TestnetLayout, node: Node
) -> None:
    share = InboxLimits().max_per_peer
    flooder, honest = layout.genesis.validator_keys()[1:3]
    message = Prepare(0, 1, bytes(32), 1, bytes(64))
    for _ in range(share + 5):
        node.consensus.post_message(flooder, message, 100)
    node.consensus.post_message(honest, message, 100)
    assert node.consensus.inbox.dropped["full"] == 5
    assert node.consensus.events.qsize() == share + 1
    queued = [node.consensus.events.get_nowait() for _ in range(node.consensus.events.qsize())]
    assert queued[-1] == ("message", (honest, message, 100))


async def test_relayed_copies_are_queued_once(layout: TestnetLayout, node: Node) -> None:
    peers = layout.genesis.validator_keys()[1:]
    for peer in peers:
        await node.consensus.on_frame(peer, vote(3))
    await node.consensus.on_frame(peers[0], vote(4))
    assert node.consensus.events.qsize() == 2
    assert node.consensus.inbox.dropped["repeated"] == len(peers) - 1


async def test_invalid_block_request_naming_another_requester(layout: TestnetLayout, node: Node) -> None:
    peer = layout.genesis.validator_keys()[1]
    with pytest.raises(InvalidMessageSender):
        await node.consensus.on_frame(peer, encode_message(BlockRequest(1, 2)))
    assert node.consensus.events.qsize() == 0
