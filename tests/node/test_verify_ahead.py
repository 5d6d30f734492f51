"""Tests of the consensus task's verification of a proposal's transaction signatures
before the replica checks it: only for a block the replica is about to validate, so
that a dishonest validator cannot have this node verify blocks it would never check."""

from __future__ import annotations

from mura.chain.block import Block, CommitCertificate, Header, UncheckedBlock, transaction_root
from mura.chain.keys import SigningKey, load_key
from mura.chain.transaction import Transaction, Transfer, sign_transaction
from mura.consensus.messages import FinalBlock, PrePrepare
from mura.genesis.testnet import TestnetLayout
from mura.node import Node

#: Enough transactions that the node hands them to its verifier's threads.
TRANSACTIONS = 32
#: The testnet's coin.
ASSET = "NAC"


def validator_key(layout: TestnetLayout, index: int) -> SigningKey:
    return load_key(layout.directory / "keys" / f"{layout.genesis.validators[index].name}.key")


def transactions(node: Node, sender: SigningKey, *, first_nonce: int = 0) -> list[Transaction]:
    recipient = bytes(32)
    return [
        sign_transaction(sender, chain_id=node.rules.chain_id, nonce=nonce, body=Transfer(ASSET, recipient, 1))
        for nonce in range(first_nonce, first_nonce + TRANSACTIONS)
    ]


def proposal(
    node: Node, primary: SigningKey, view: int, body: list[Transaction], *, timestamp_ms: int = 1, height_ahead: int = 0
) -> PrePrepare:
    """A proposal for the node's height (or ``height_ahead`` later) in ``view``, signed by
    ``primary``, as it arrives from the network (its body unchecked)."""
    head = node.store.head
    header = Header(
        chain_id=node.rules.chain_id,
        height=head.height + 1 + height_ahead,
        parent_hash=head.hash,
        timestamp_ms=head.timestamp_ms + timestamp_ms,
        proposer=primary.public_key,
        transaction_root=transaction_root(body),
        state_root=bytes(32),
        next_validators_hash=bytes(32),
    )
    block = Block(header, tuple(body))
    signed = PrePrepare.sign(primary, node.validators.index(primary.public_key), node.rules.chain_id, view, block)
    return PrePrepare(view, UncheckedBlock.decode(block.encode()), signed.sender, signed.signature)


def verified(node: Node, body: list[Transaction]) -> int:
    return sum(transaction.hash in node.signatures for transaction in body)


async def test_the_current_views_proposal_is_verified_ahead(testnet: TestnetLayout, built_node: Node) -> None:
    primary = validator_key(testnet, built_node.replica.validators.primary(built_node.replica.view))
    body = transactions(built_node, validator_key(testnet, 2))
    await built_node.consensus._verify_ahead(proposal(built_node, primary, built_node.replica.view, body))
    assert verified(built_node, body) == TRANSACTIONS


async def test_a_proposal_for_a_far_later_view_is_not_verified(testnet: TestnetLayout, built_node: Node) -> None:
    """The replica keeps no block of a view far ahead, let alone checks it: a validator
    signing proposals for every view it is the primary of must not have this node
    verify each one's transactions."""
    validators = len(built_node.validators)
    body = transactions(built_node, validator_key(testnet, 2))
    for step in range(1, 4):
        view = built_node.replica.view + 1 + step * validators
        primary = validator_key(testnet, built_node.replica.validators.primary(view))
        await built_node.consensus._verify_ahead(proposal(built_node, primary, view, body, timestamp_ms=step))
    assert verified(built_node, body) == 0


async def test_the_next_heights_first_proposal_in_this_view_is_verified_ahead(
    testnet: TestnetLayout, built_node: Node
) -> None:
    """A proposal for the next height, come before this node made its height final (a
    primary with a backlog proposes at once), is held by the replica and validated as
    soon as the height is final: it is verified ahead too, once per height and view,
    rather than one signature at a time on the event loop then."""
    view = built_node.replica.view
    primary = validator_key(testnet, built_node.replica.validators.primary(view))
    body = transactions(built_node, validator_key(testnet, 2))
    ahead = proposal(built_node, primary, view, body, height_ahead=1)
    await built_node.consensus._verify_ahead(ahead)
    assert verified(built_node, body) == TRANSACTIONS
    again = transactions(built_node, validator_key(testnet, 3))
    await built_node.consensus._verify_ahead(proposal(built_node, primary, view, again, height_ahead=1, timestamp_ms=2))
    assert verified(built_node, again) == 0


async def test_a_second_proposal_in_a_view_is_not_verified(testnet: TestnetLayout, built_node: Node) -> None:
    """A primary's second proposal in its view is equivocation the replica reports
    without checking the block: it is not verified either."""
    view = built_node.replica.view
    primary = validator_key(testnet, built_node.replica.validators.primary(view))
    now_ms = built_node.store.head.timestamp_ms + 10
    empty = built_node.application.build_proposal(1, proposer=primary.public_key, timestamp_ms=now_ms).block
    sender = built_node.replica.validators.primary(view)
    first = PrePrepare.sign(primary, sender, built_node.rules.chain_id, view, empty)
    built_node.replica.receive(first, now_ms, origin=first.sender)
    assert built_node.replica.log.proposals.get(view) is not None
    body = transactions(built_node, validator_key(testnet, 3))
    await built_node.consensus._verify_ahead(proposal(built_node, primary, view, body, timestamp_ms=2))
    assert verified(built_node, body) == 0


async def test_a_final_block_whose_certificate_does_not_verify_is_not_verified(
    testnet: TestnetLayout, built_node: Node
) -> None:
    """With certified blocks checked too (sync.verify_signatures), the certificate is
    checked before the block's signatures: a forged one costs this node one check."""
    built_node.consensus.verify_certified_signatures = True
    body = transactions(built_node, validator_key(testnet, 2))
    block = proposal(built_node, validator_key(testnet, 1), 1, body).block
    # Signatures that are not the validators': the certificate does not verify.
    certificate = CommitCertificate(block.height, 1, block.hash, tuple((index, bytes(64)) for index in range(3)))
    await built_node.consensus._verify_ahead(FinalBlock(block, certificate))
    assert verified(built_node, body) == 0


async def test_a_proposal_not_signed_by_the_primary_is_not_verified(testnet: TestnetLayout, built_node: Node) -> None:
    view = built_node.replica.view
    primary = built_node.replica.validators.primary(view)
    other = next(index for index in range(len(built_node.validators)) if index != primary)
    body = transactions(built_node, validator_key(testnet, 2))
    await built_node.consensus._verify_ahead(proposal(built_node, validator_key(testnet, other), view, body))
    assert verified(built_node, body) == 0
