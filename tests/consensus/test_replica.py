"""Rules of the replica's normal case, signing, restarts, buffers and catching up."""

from __future__ import annotations

from dataclasses import replace

from mura.chain.block import Block, CommitCertificate, verify_certificate
from mura.consensus.actions import (
    Broadcast,
    CommitBlock,
    Misbehaviour,
    PersistVote,
    Relay,
    ReportEquivocation,
    Send,
    ServeBlocks,
)
from mura.consensus.config import ReplicaConfig
from mura.consensus.evidence import SignedProposal
from mura.consensus.messages import (
    BlockRequest,
    Commit,
    FinalBlock,
    Prepare,
    PrePrepare,
    ViewChange,
)
from mura.sim.ledger import CHAIN_ID, checked
from mura.tests.consensus.replica_cluster import Cluster, commit_from, prepare_from, proposal_for

# --- the normal case ---------------------------------------------------------------------


def test_normal_case_makes_a_block_final_everywhere() -> None:
    cluster = Cluster()
    cluster.start()
    cluster.advance(100)
    assert cluster.heights() == [1, 1, 1, 1]
    hashes = {ledger.head.hash for ledger in cluster.ledgers}
    assert len(hashes) == 1


def test_commit_certificate_verifies() -> None:
    cluster = Cluster()
    cluster.start()
    cluster.advance(100)
    final = cluster.ledgers[2].load_final_block(1)
    assert final is not None
    validators = cluster.genesis.validators
    block_hash = final.block.hash
    verify_certificate(final.certificate, chain_id=CHAIN_ID, height=1, block_hash=block_hash, validators=validators)
    assert len(final.certificate.signatures) >= 3


def test_heights_follow_one_another_and_the_log_is_dropped() -> None:
    cluster = Cluster()
    cluster.start()
    cluster.advance(1_000)
    assert min(cluster.heights()) >= 5
    replica = cluster.replicas[1]
    assert replica.log.height == replica.height == cluster.ledgers[1].final_height() + 1
    # Votes are kept a few heights below (a wiped replica may meet them again), no further.
    retention = cluster.config.vote_retention_heights
    assert cluster.records[1].load_votes(replica.height - 1)
    assert all(not cluster.records[1].load_votes(height) for height in range(1, replica.height - retention))


def test_persist_before_speak() -> None:
    cluster = Cluster()
    cluster.start()
    cluster.advance(500)
    for history in cluster.history:
        for _, actions in history:
            persisted: set[tuple[int, int]] = set()
            for action in actions:
                if isinstance(action, PersistVote):
                    persisted.add((action.vote.view, int(action.vote.phase)))
                if isinstance(action, Broadcast) and isinstance(action.message, (Prepare, Commit)):
                    assert (action.message.view, int(action.message.phase)) in persisted


def test_commit_block_is_the_last_action() -> None:
    cluster = Cluster()
    cluster.start()
    cluster.advance(300)
    lists = [actions for history in cluster.history for _, actions in history]
    with_commit = [actions for actions in lists if any(isinstance(action, CommitBlock) for action in actions)]
    assert with_commit
    assert all(isinstance(actions[-1], CommitBlock) for actions in with_commit)


def test_invalid_pre_prepare_from_a_non_primary() -> None:
    cluster = Cluster()
    proposal = proposal_for(cluster, view=0, signer=2)
    assert cluster.deliver(1, proposal) == []
    assert cluster.replicas[1].rejected["not_primary"] == 1


def test_invalid_pre_prepare_signature() -> None:
    cluster = Cluster()
    proposal = proposal_for(cluster)
    forged = replace(proposal, signature=bytes(64))
    assert cluster.deliver(1, forged) == []
    assert cluster.replicas[1].rejected["bad_message_signature"] == 1


def test_invalid_block_is_not_prepared() -> None:
    cluster = Cluster()
    proposal = proposal_for(cluster)
    header = replace(proposal.block.header, state_root=bytes(32))
    bad = PrePrepare.sign(cluster.keys[0], 0, CHAIN_ID, 0, Block(header, checked(proposal.block).transactions))
    assert cluster.deliver(1, bad) == []
    assert cluster.replicas[1].rejected["state_root_mismatch"] == 1


def test_proposal_timestamp_within_the_clock_drift_is_prepared() -> None:
    cluster = Cluster()
    drift = cluster.config.max_clock_drift_ms
    actions = cluster.deliver(1, proposal_for(cluster, timestamp_ms=cluster.now + drift))
    assert any(isinstance(action, Broadcast) and isinstance(action.message, Prepare) for action in actions)


def test_invalid_proposal_timestamp_in_the_future() -> None:
    cluster = Cluster()
    drift = cluster.config.max_clock_drift_ms
    assert cluster.deliver(1, proposal_for(cluster, timestamp_ms=cluster.now + drift + 1)) == []
    assert cluster.replicas[1].rejected["timestamp_in_future"] == 1


def test_valid_pre_prepare_is_prepared_after_recording() -> None:
    cluster = Cluster()
    actions = cluster.deliver(1, proposal_for(cluster))
    assert isinstance(actions[0], PersistVote) and isinstance(actions[1], Broadcast)
    assert isinstance(actions[1].message, Prepare)


def test_equivocating_primary_is_reported_and_not_followed() -> None:
    cluster = Cluster()
    first = proposal_for(cluster, timestamp_ms=100)
    second = proposal_for(cluster, timestamp_ms=101)
    assert first.block_hash != second.block_hash
    cluster.deliver(1, first, sender=0)
    actions = cluster.deliver(1, second, sender=0)
    assert [type(action) for action in actions] == [ReportEquivocation, Misbehaviour]
    assert actions[1] == Misbehaviour(0, "equivocation")
    evidence = cluster.replicas[1].evidence[0]
    assert (evidence.validator, evidence.height, evidence.view) == (0, 1, 0)
    # Kept as what was signed: the block hash stands for each block.
    assert (evidence.first, evidence.second) == (SignedProposal.of(first), SignedProposal.of(second))


def test_votes_count_once_per_validator() -> None:
    cluster = Cluster()
    proposal = proposal_for(cluster)
    cluster.deliver(1, proposal)
    # The first copy counts (and is passed on); repeats do nothing.
    first = cluster.deliver(1, prepare_from(cluster, 2, proposal), sender=2)
    assert first == [Relay(prepare_from(cluster, 2, proposal), frozenset({1, 2}))]
    for _ in range(2):
        assert cluster.deliver(1, prepare_from(cluster, 2, proposal), sender=2) == []
    assert cluster.replicas[1].signed.signed(Commit.phase, 0) is None
    actions = cluster.deliver(1, prepare_from(cluster, 3, proposal))
    assert any(isinstance(action, Broadcast) and isinstance(action.message, Commit) for action in actions)


def test_quorum_of_commits_makes_final() -> None:
    cluster = Cluster()
    proposal = proposal_for(cluster)
    cluster.deliver(1, proposal)
    cluster.deliver(1, commit_from(cluster, 0, proposal))
    actions = cluster.deliver(1, commit_from(cluster, 2, proposal))
    assert not any(isinstance(action, CommitBlock) for action in actions)
    actions = cluster.deliver(1, commit_from(cluster, 3, proposal))
    assert isinstance(actions[-1], CommitBlock)
    assert [index for index, _ in actions[-1].certificate.signatures] == [0, 2, 3]


def test_invalid_vote_outside_the_view_window() -> None:
    cluster = Cluster()
    far = cluster.config.view_window + 1
    vote = Prepare.sign(cluster.keys[2], 2, CHAIN_ID, far, 1, bytes(32))
    assert cluster.deliver(1, vote) == []
    assert cluster.replicas[1].rejected["outside_window"] == 1


def test_invalid_bytes_are_counted_not_raised() -> None:
    cluster = Cluster()
    assert cluster.replicas[0].receive_bytes(b"\xc1not msgpack", 0) == []
    assert cluster.replicas[0].receive_bytes(b"", 0) == []
    assert cluster.replicas[0].rejected["malformed"] == 2


# --- restarts --------------------------------------------------------------------------------


def test_restarted_replica_refuses_a_conflicting_vote() -> None:
    cluster = Cluster()
    cluster.deliver(1, proposal_for(cluster, timestamp_ms=100))
    cluster.replicas[1] = cluster.boot(1)
    actions = cluster.deliver(1, proposal_for(cluster, timestamp_ms=105))
    assert not any(isinstance(action, Broadcast) for action in actions)
    assert cluster.replicas[1].rejected["conflicting_vote_refused"] == 1


def test_restarted_replica_repeats_the_same_vote() -> None:
    cluster = Cluster()
    proposal = proposal_for(cluster)
    first = cluster.deliver(1, proposal)
    cluster.replicas[1] = cluster.boot(1)
    again = cluster.deliver(1, proposal)
    assert first == again


def test_restarted_replica_keeps_its_prepared_certificate_and_block() -> None:
    cluster = Cluster()
    proposal = proposal_for(cluster)
    cluster.deliver(1, proposal)
    cluster.deliver(1, prepare_from(cluster, 0, proposal))
    cluster.deliver(1, prepare_from(cluster, 2, proposal))
    cluster.replicas[1] = cluster.boot(1)
    cluster.replicas[1].start(0)
    actions = cluster.replicas[1].timeout(cluster.first_timeout_ms)
    changes = [action.message for action in actions if isinstance(action, Broadcast)]
    assert isinstance(changes[0], ViewChange)
    assert changes[0].prepared is not None and changes[0].prepared.block_hash == proposal.block_hash
    assert changes[0].prepared_block == proposal.block


def test_restarted_primary_does_not_propose_again_in_its_view() -> None:
    cluster = Cluster()
    cluster.start()
    cluster.down = {1, 2, 3}
    cluster.advance(100)
    assert len(cluster.sent(0, PrePrepare)) == 1
    cluster.replicas[0] = cluster.boot(0)
    cluster.execute(0, cluster.replicas[0].start(cluster.now))
    cluster.advance(250)
    assert len(cluster.sent(0, PrePrepare)) == 1
    assert cluster.replicas[0].rejected["conflicting_vote_refused"] == 1


# --- bounds and catching up -----------------------------------------------------------------------


def test_future_height_messages_are_held_per_sender() -> None:
    config = ReplicaConfig(chain_id=CHAIN_ID, held_per_sender=5, proposal_delay_ms=100)
    cluster = Cluster(config=config)
    for view in range(20):
        cluster.deliver(1, Prepare.sign(cluster.keys[2], 2, CHAIN_ID, view, 2, bytes(32)))
    assert len(cluster.replicas[1].held) == 5
    assert cluster.replicas[1].held.dropped == 15


def test_repeated_future_height_messages_do_not_use_up_the_share() -> None:
    config = ReplicaConfig(chain_id=CHAIN_ID, held_per_sender=5, proposal_delay_ms=100)
    cluster = Cluster(config=config)
    repeated = Prepare.sign(cluster.keys[2], 2, CHAIN_ID, 0, 2, bytes(32))
    for _ in range(20):
        cluster.deliver(1, repeated)
    for view in range(1, 5):
        cluster.deliver(1, Prepare.sign(cluster.keys[2], 2, CHAIN_ID, view, 2, bytes(32)))
    assert len(cluster.replicas[1].held) == 5
    assert cluster.replicas[1].held.dropped == 0


def test_invalid_far_future_height_is_not_held() -> None:
    cluster = Cluster()
    height = 2 + cluster.config.height_window
    actions = cluster.deliver(1, Prepare.sign(cluster.keys[2], 2, CHAIN_ID, 0, height, bytes(32)))
    assert len(cluster.replicas[1].held) == 0
    assert cluster.replicas[1].rejected["outside_window"] == 1
    assert actions == [Send(2, BlockRequest(1, 1))]


def test_lagging_replica_catches_up_with_certified_blocks() -> None:
    cluster = Cluster()
    cluster.start()
    cluster.down = {3}
    cluster.advance(600)
    assert cluster.heights()[3] == 0 and min(cluster.heights()[:3]) >= 3
    cluster.down = set()
    cluster.advance(cluster.now + 400)
    assert cluster.heights()[3] >= cluster.heights()[0] - 1
    requests = cluster.sent(3, BlockRequest)
    assert requests and requests[0].height == 1


def test_invalid_final_block_certificate() -> None:
    cluster = Cluster()
    proposal = proposal_for(cluster)
    signatures = ((0, bytes(64)), (1, bytes(64)), (2, bytes(64)))
    final = FinalBlock(proposal.block, CommitCertificate(1, 0, proposal.block_hash, signatures))
    assert cluster.deliver(3, final) == []
    assert cluster.replicas[3].rejected["invalid_certificate"] == 1
    assert cluster.heights()[3] == 0


def test_final_block_with_a_valid_certificate_commits() -> None:
    cluster = Cluster()
    proposal = proposal_for(cluster)
    signatures = tuple(
        (index, commit_from(cluster, index, proposal).signature) for index in (0, 1, 2)
    )
    final = FinalBlock(proposal.block, CommitCertificate(1, 0, proposal.block_hash, signatures))
    actions = cluster.deliver(3, final)
    assert isinstance(actions[0], CommitBlock)
    assert cluster.heights()[3] == 1


def test_block_request_is_left_to_the_driver_to_serve() -> None:
    """The replica only says who is behind and from where: the driver serves stored
    blocks within that peer's budget (``serving.py``), off the replica's path."""
    cluster = Cluster()
    cluster.start()
    cluster.advance(300)
    assert cluster.replicas[0].receive(BlockRequest(1, 3), cluster.now, origin=3) == [ServeBlocks(3, 1)]
    final = cluster.heights()[0]
    assert cluster.replicas[0].receive(BlockRequest(final + 1, 3), cluster.now, origin=3) == []
    assert cluster.replicas[0].receive(BlockRequest(1, 0), cluster.now, origin=0) == []
    # The blocks go to the validator that delivered the request, whatever place it names
    # (its own in the set of its height); from a node that is no validator here, the
    # driver answers by the link it came by.
    assert cluster.replicas[0].receive(BlockRequest(1, None), cluster.now, origin=3) == [ServeBlocks(3, 1)]
    assert cluster.replicas[0].receive(BlockRequest(1, 3), cluster.now, origin=2) == [ServeBlocks(2, 1)]
    assert cluster.replicas[0].receive(BlockRequest(1, 3), cluster.now) == []


def test_view_change_from_a_replica_behind_is_answered_with_blocks() -> None:
    cluster = Cluster()
    cluster.start()
    cluster.advance(300)
    behind = ViewChange.sign(cluster.keys[3], 3, CHAIN_ID, 1, 1, None, None)
    assert cluster.replicas[0].receive(behind, cluster.now, origin=3) == [ServeBlocks(3, 1)]
