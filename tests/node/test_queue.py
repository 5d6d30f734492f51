"""Tests of the consensus task's intake of peers' consensus frames: bounded per peer, relayed copies
dropped before decoding, block requests answered off the replica's queue."""

from __future__ import annotations

import pytest

from mura.chain.keys import SigningKey
from mura.consensus.messages import BlockRequest, Prepare, encode_message
from mura.genesis.testnet import TestnetLayout
from mura.node import Node
from mura.p2p.inbox import InboxLimits


def vote(view: int) -> bytes:
    return encode_message(Prepare(view, 1, bytes(32), 1, bytes(64)))


async def test_one_peer_gets_at_most_its_share_and_the_others_still_get_theirs(
    testnet: TestnetLayout, built_node: Node
) -> None:
    share = InboxLimits().max_per_peer
    flooder, honest = testnet.genesis.validator_keys()[1:3]
    message = Prepare(0, 1, bytes(32), 1, bytes(64))
    for _ in range(share + 5):
        built_node.consensus.post_message(flooder, message, 100)
    built_node.consensus.post_message(honest, message, 100)
    assert built_node.consensus.inbox.dropped["full"] == 5
    assert built_node.consensus.events.qsize() == share + 1
    queued = [built_node.consensus.events.get_nowait() for _ in range(built_node.consensus.events.qsize())]
    assert queued[-1] == ("message", (honest, message, 100))


async def test_relayed_copies_are_queued_once(testnet: TestnetLayout, built_node: Node) -> None:
    peers = testnet.genesis.validator_keys()[1:]
    for peer in peers:
        await built_node.consensus.on_frame(peer, vote(3))
    await built_node.consensus.on_frame(peers[0], vote(4))
    assert built_node.consensus.events.qsize() == 2
    assert built_node.consensus.inbox.dropped["repeated"] == len(peers) - 1


async def test_block_request_naming_another_requester_is_answered_off_the_queue(
    testnet: TestnetLayout, built_node: Node
) -> None:
    """Answered by its link whatever place it names (the blocks prove themselves), in the
    link's task: it never waits in the replica's queue."""
    peer = testnet.genesis.validator_keys()[1]
    await built_node.consensus.on_frame(peer, encode_message(BlockRequest(1, 2)))
    assert built_node.consensus.events.qsize() == 0


async def test_votes_from_a_peer_that_is_no_validator_here_are_dropped_without_blame(built_node: Node) -> None:
    """An admitted peer that is no validator of the heights in progress here (an observer,
    or a validator of a later set while this node is behind): its votes are dropped
    before they are decoded, and nothing is held against it."""
    stranger = SigningKey.generate().public_key
    await built_node.consensus.on_frame(stranger, vote(3))
    assert built_node.consensus.events.qsize() == 0
    assert built_node.consensus.inbox.dropped["not_a_validator_here"] == 1


async def test_a_stopped_node_is_not_started_again(built_node: Node) -> None:
    await built_node.stop()
    with pytest.raises(RuntimeError, match="not started again"):
        await built_node.start()
