"""Tests of the consensus task's intake of peers' consensus frames: bounded per peer, relayed copies
dropped before decoding, block requests answered off the replica's queue."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mura.chain.keys import SignatureCache, load_key
from mura.chain.state import build_block
from mura.chain.transaction import Transaction, Transfer, sign_transaction
from mura.config import load_config
from mura.consensus.messages import BlockRequest, Prepare, PrePrepare, decode_message, encode_message
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


def proposal(
    layout: TestnetLayout, node: Node, *, signer: int, count: int = 40
) -> tuple[PrePrepare, list[Transaction]]:
    """A block for height 1 of ``count`` transfers no one has verified yet, proposed in
    view 0 and signed by validator ``signer`` (validator 0 is the primary of view 0)."""
    sender = load_key(layout.key_paths[-1])  # the treasury, funded in genesis
    transactions = [
        sign_transaction(sender, chain_id=node.rules.chain_id, nonce=nonce, body=Transfer(bytes(32), 1))
        for nonce in range(count)
    ]
    built = build_block(
        node.store, node.store.head, transactions, proposer=node.validators[0], timestamp_ms=1,
        rules=node.rules, signatures=SignatureCache(),
    )
    assert built.refused == []
    key = load_key(layout.key_paths[signer])
    return PrePrepare.sign(key, signer, node.rules.chain_id, 0, built.block), transactions


async def test_the_primarys_proposal_has_its_signatures_verified_before_the_replica_checks_it(
    layout: TestnetLayout, node: Node
) -> None:
    message, transactions = proposal(layout, node, signer=0)
    assert not any(transaction.hash in node.signatures for transaction in transactions)
    await node.consensus._verify_ahead(decode_message(encode_message(message)))
    assert all(transaction.hash in node.signatures for transaction in transactions)


async def test_a_proposal_not_signed_by_the_primary_costs_no_signature_check(
    layout: TestnetLayout, node: Node
) -> None:
    message, transactions = proposal(layout, node, signer=1)
    await node.consensus._verify_ahead(decode_message(encode_message(message)))
    assert not any(transaction.hash in node.signatures for transaction in transactions)
