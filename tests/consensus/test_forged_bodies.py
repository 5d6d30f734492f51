"""A block's body is bound to its header wherever a replica meets one.

A block hash covers the header, and the header covers the transactions only
through its transaction root. These are the attacks of a dishonest validator
that keeps a genuine header (and so genuine signatures and certificates) and
swaps the body under it, and the proposer rule for fresh proposals.
"""

from __future__ import annotations

from mura.chain import codec
from mura.chain.block import Block, CommitCertificate, UncheckedBlock, merkle_root
from mura.consensus.actions import Broadcast, CommitBlock, Misbehaviour
from mura.consensus.buffer import FutureBuffer
from mura.consensus.messages import FinalBlock, NewView, Prepare, PrePrepare, ViewChange
from mura.sim.ledger import CHAIN_ID, checked
from mura.tests.consensus.replica_cluster import Cluster, commit_from, proposal_for
from mura.tests.consensus.test_view_change import prepared_certificate


def swapped(block: Block) -> UncheckedBlock:
    """``block``'s header over its transactions in another order: the same transfers,
    so even the state root is unchanged; only the transaction root tells."""
    transactions = list(block.transactions)
    assert len(transactions) >= 2
    transactions[0], transactions[1] = transactions[1], transactions[0]
    data = codec.encode([block.header.to_fields(), [transaction.encoded for transaction in transactions]])
    return UncheckedBlock(block.header, data)


def certificate_for(cluster: Cluster, proposal: PrePrepare, signers: tuple[int, ...] = (0, 2, 3)) -> CommitCertificate:
    signatures = tuple((index, commit_from(cluster, index, proposal).signature) for index in signers)
    return CommitCertificate(proposal.height, proposal.view, proposal.block_hash, signatures)


def committed_bodies_match(cluster: Cluster) -> bool:
    return all(
        merkle_root([tx.hash for tx in block.transactions]) == block.header.transaction_root
        for ledger in cluster.ledgers
        for block in ledger.final_blocks()
    )


def test_invalid_final_block_with_a_swapped_body_after_the_proposal_was_validated() -> None:
    """Replica 1 validated the honest proposal; a FinalBlock with the genuine header and
    certificate but a swapped body must not be committed in its place."""
    cluster = Cluster()
    proposal = proposal_for(cluster)
    cluster.deliver(1, proposal, sender=0)
    forged = FinalBlock(swapped(checked(proposal.block)), certificate_for(cluster, proposal))
    actions = cluster.deliver(1, forged, sender=3)
    assert not any(isinstance(action, CommitBlock) for action in actions)
    assert actions == [Misbehaviour(3, "transaction_root_mismatch")]
    assert cluster.heights()[1] == 0
    # The genuine one still commits.
    actions = cluster.deliver(1, FinalBlock(proposal.block, certificate_for(cluster, proposal)), sender=2)
    assert isinstance(actions[0], CommitBlock) and actions[0].block.transactions == checked(proposal.block).transactions
    assert committed_bodies_match(cluster)


def test_lagging_replica_given_a_swapped_body_first_still_takes_the_genuine_block() -> None:
    """A replica that never saw the proposal gets a swapped body under a valid
    certificate first: it refuses that, not the block, and takes the genuine one."""
    cluster = Cluster()
    proposal = proposal_for(cluster)
    certificate = certificate_for(cluster, proposal)
    assert cluster.deliver(3, FinalBlock(swapped(checked(proposal.block)), certificate), sender=1) == [
        Misbehaviour(1, "transaction_root_mismatch")
    ]
    actions = cluster.deliver(3, FinalBlock(proposal.block, certificate), sender=2)
    assert isinstance(actions[0], CommitBlock)
    assert cluster.heights()[3] == 1 and committed_bodies_match(cluster)


def test_invalid_new_view_re_proposing_a_prepared_header_with_a_forged_body() -> None:
    """The primary of view 1 re-proposes the block prepared in view 0 (its header, so its
    hash, is the one the view changes force) with a forged body: no replica prepares
    it, enters the view on it, or hands it on."""
    cluster = Cluster()
    proposal = proposal_for(cluster)
    for index in (0, 2, 3):
        cluster.deliver(index, proposal, sender=0)
    prepared = prepared_certificate(cluster, proposal)
    changes = tuple(
        ViewChange.sign(cluster.keys[index], index, CHAIN_ID, 1, 1, prepared if index != 3 else None, None)
        for index in (1, 2, 3)
    )
    forged = PrePrepare.sign(cluster.keys[1], 1, CHAIN_ID, 1, checked(proposal.block))
    forged = PrePrepare(1, swapped(checked(proposal.block)), 1, forged.signature)
    for index in (0, 2, 3):
        replica = cluster.replicas[index]
        actions = cluster.deliver(index, NewView(1, 1, changes, forged), sender=1)
        assert actions == [Misbehaviour(1, "transaction_root_mismatch")]
        assert replica.view == 0 and 1 not in replica.view_changes.new_views
        assert not any(isinstance(action, Broadcast) for action in actions)
    # The same NEW-VIEW with the genuine body is followed.
    genuine = PrePrepare.sign(cluster.keys[1], 1, CHAIN_ID, 1, checked(proposal.block))
    actions = cluster.deliver(2, NewView(1, 1, changes, genuine), sender=1)
    prepares = [action.message for action in actions if isinstance(action, Broadcast)]
    assert any(isinstance(message, Prepare) and message.view == 1 for message in prepares)


def test_invalid_proposal_with_a_swapped_body() -> None:
    cluster = Cluster()
    proposal = proposal_for(cluster)
    forged = PrePrepare(0, swapped(checked(proposal.block)), 0, proposal.signature)
    assert cluster.deliver(1, forged, sender=3) == [Misbehaviour(3, "transaction_root_mismatch")]
    # Refusing the forged copy does not refuse the block: the genuine one is prepared.
    actions = cluster.deliver(1, proposal, sender=0)
    assert any(isinstance(action, Broadcast) and isinstance(action.message, Prepare) for action in actions)


def test_view_change_keeps_counting_when_the_block_it_carries_was_swapped() -> None:
    """A view change's signature does not cover the block it carries: a swapped body is
    dropped and held against whoever delivered it, and the view change still counts."""
    cluster = Cluster()
    proposal = proposal_for(cluster)
    prepared = prepared_certificate(cluster, proposal)
    genuine = ViewChange.sign(cluster.keys[2], 2, CHAIN_ID, 1, 1, prepared, checked(proposal.block))
    carried = ViewChange(1, 1, prepared, swapped(checked(proposal.block)), 2, genuine.signature)
    actions = cluster.deliver(1, carried, sender=3)
    assert Misbehaviour(3, "transaction_root_mismatch") in actions
    replica = cluster.replicas[1]
    assert replica.view_changes.by_sender[2].prepared == prepared
    assert proposal.block_hash not in replica.log.blocks


def test_invalid_fresh_proposal_naming_another_proposer() -> None:
    """A fresh block must name the primary of the view it is proposed in."""
    cluster = Cluster()
    other = proposal_for(cluster, signer=2)  # built by validator 2: it names 2 as proposer
    stolen = PrePrepare.sign(cluster.keys[0], 0, CHAIN_ID, 0, other.block.check())
    assert cluster.deliver(1, stolen, sender=0) == [Misbehaviour(0, "wrong_proposer")]
    assert cluster.replicas[1].rejected["wrong_proposer"] == 1


def test_re_proposed_block_keeps_its_first_proposer() -> None:
    """A NEW-VIEW re-proposes the prepared block of view 0 in view 1: its proposer is
    validator 0, not the primary of view 1, and it is accepted."""
    cluster = Cluster()
    proposal = proposal_for(cluster)
    prepared = prepared_certificate(cluster, proposal)
    changes = tuple(ViewChange.sign(cluster.keys[index], index, CHAIN_ID, 1, 1, prepared, None) for index in (1, 2, 3))
    again = PrePrepare.sign(cluster.keys[1], 1, CHAIN_ID, 1, proposal.block.check())
    actions = cluster.deliver(2, NewView(1, 1, changes, again), sender=1)
    assert any(isinstance(action, Broadcast) and isinstance(action.message, Prepare) for action in actions)
    assert cluster.replicas[2].rejected["wrong_proposer"] == 0


def test_forged_copies_of_a_signed_proposal_use_up_the_forgers_share_not_the_signers() -> None:
    """Held for a later height, a proposal is kept unchecked: copies of an honest primary's
    signed proposal around forged bodies count against the validator that delivered them,
    so the genuine proposal still finds room."""
    cluster = Cluster()
    proposal = proposal_for(cluster)
    buffer = FutureBuffer(per_sender=3, heights=4)
    fields = proposal.block.header.to_fields()
    for salt in range(10):
        body = UncheckedBlock(proposal.block.header, codec.encode([fields, [bytes([salt])]]))
        buffer.hold(PrePrepare(0, body, 0, proposal.signature), origin=3)
    assert (len(buffer), buffer.dropped) == (3, 7)
    assert buffer.hold(proposal, origin=0)
    assert buffer.take(proposal.height) is not None and len(buffer) == 3
