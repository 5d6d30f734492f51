"""What node.py does with frames a validator peer should not send: consensus
payloads that do not decode get the peer banned, and a ``BlockRequest`` that
names another validator as its requester is refused (the answer would go to
that validator, so only it may ask). The node goes on serving peers and RPC.

One real ``Node`` (validator 0 of a four-validator testnet) runs in the test's
event loop; the test speaks to it as other validators of that testnet, with
their real keys, over a real ``Network``.
"""

from __future__ import annotations

import pytest

from mura.consensus.messages import BlockRequest, encode_message
from mura.tests.node.validator_peers import MALFORMED_THRESHOLD, ConnectPeer, network_of, traffic
from mura.tests.rpc.support import TestNode, wait_until


async def assert_answers_rpc(node: TestNode, *, peers: int) -> None:
    status = await node.rpc.result("chain_status")
    assert status["height"] == 0  # one validator of four makes no blocks
    assert status["peers"] == peers


async def test_a_validator_sending_undecodable_consensus_frames_is_banned_and_the_node_goes_on(
    node: TestNode, connect_peer: ConnectPeer
) -> None:
    garbler = await connect_peer(1)
    for index in range(MALFORMED_THRESHOLD + 1):
        await garbler.send_consensus(node, b"\xff not a consensus message %d" % index)

    await wait_until(lambda: traffic(node, garbler).bans == 1, "the node to ban the validator")
    assert traffic(node, garbler).malformed == MALFORMED_THRESHOLD + 1
    await wait_until(lambda: traffic(node, garbler).disconnects == 1, "the node to close the banned validator's link")
    # Its dialer comes back, and while the ban lasts the node refuses it in the handshake,
    # as soon as its proof verifies: no link is opened.
    await wait_until(
        lambda: garbler.network.stats.handshake_failures >= 1, "the banned validator to be refused again"
    )
    assert traffic(node, garbler).disconnects == 1
    assert garbler.public_key not in network_of(node).connected_peers()
    await assert_answers_rpc(node, peers=0)

    honest = await connect_peer(2)
    await wait_until(lambda: honest.received, "consensus traffic from the node to a validator that behaves")
    assert (traffic(node, honest).malformed, traffic(node, honest).bans) == (0, 0)
    await assert_answers_rpc(node, peers=1)
    assert network_of(node).connected_peers() == [honest.public_key]


async def test_a_consensus_payload_that_is_not_bytes_counts_as_malformed(
    node: TestNode, connect_peer: ConnectPeer
) -> None:
    peer = await connect_peer(1)
    await peer.send_consensus(node, [1, 2, 3])
    await wait_until(lambda: traffic(node, peer).malformed == 1, "the frame to count as malformed")
    assert traffic(node, peer).bans == 0
    assert peer.public_key in network_of(node).connected_peers()


@pytest.mark.parametrize(("requester", "who"), [(2, "another validator"), (0, "the node itself"), (None, "nobody")])
async def test_a_block_request_is_answered_by_its_link_whatever_it_names(
    node: TestNode, connect_peer: ConnectPeer, requester: int | None, who: str
) -> None:
    """The answer goes back by the link the request came by, and proves itself: the place
    a request names (its sender's in the set of its own height, which may differ from
    this node's) is no reason to refuse it."""
    peer = await connect_peer(1)
    before = traffic(node, peer)
    await peer.send_consensus(node, encode_message(BlockRequest(height=1, requester=peer.index)))
    await peer.send_consensus(node, encode_message(BlockRequest(height=1, requester=requester)))
    await peer.send_consensus(node, encode_message(BlockRequest(height=1, requester=peer.index)))
    await wait_until(lambda: traffic(node, peer).frames_in >= before.frames_in + 3, "the node to read the requests")

    after = traffic(node, peer)
    assert after.malformed == before.malformed, f"a block request naming {who} is not refused"
    assert after.bans == 0
    await assert_answers_rpc(node, peers=1)
