"""Rules of view change: timeouts, pull-along, NEW-VIEW construction and checking."""

from __future__ import annotations

from mura.consensus.actions import Broadcast, PersistVote, ScheduleTimeout, Send
from mura.consensus.config import ReplicaConfig, view_timeout_ms
from mura.consensus.messages import (
    Commit,
    NewView,
    Phase,
    Prepare,
    PreparedCertificate,
    PrePrepare,
    ViewChange,
    encode_message,
)
from mura.sim.ledger import CHAIN_ID, checked
from mura.tests.consensus.replica_cluster import Cluster, prepare_from, proposal_for


def prepared_certificate(
    cluster: Cluster, proposal: PrePrepare, signers: tuple[int, ...] = (0, 2, 3)
) -> PreparedCertificate:
    signatures = tuple((index, prepare_from(cluster, index, proposal).signature) for index in signers)
    return PreparedCertificate(proposal.view, proposal.height, proposal.block_hash, proposal.signature, signatures)


def view_change(cluster: Cluster, sender: int, view: int, prepared: PreparedCertificate | None = None) -> ViewChange:
    return ViewChange.sign(cluster.keys[sender], sender, CHAIN_ID, view, 1, prepared, None)


def test_timeouts_double_per_failed_view_and_are_capped() -> None:
    config = ReplicaConfig(chain_id=CHAIN_ID, base_timeout_ms=1_000, max_timeout_ms=30_000)
    timeouts = [view_timeout_ms(config, failed) for failed in range(7)]
    assert timeouts == [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]
    assert view_timeout_ms(config, 10_000) == 30_000
    assert view_timeout_ms(ReplicaConfig(chain_id=CHAIN_ID), 100) == 30_000


def test_timeout_starts_a_recorded_view_change() -> None:
    cluster = Cluster()
    replica = cluster.replicas[1]
    replica.start(0)
    actions = replica.timeout(cluster.first_timeout_ms)
    assert isinstance(actions[1], PersistVote) and actions[1].vote.phase is Phase.VIEW_CHANGE
    assert isinstance(actions[2], Broadcast) and isinstance(actions[2].message, ViewChange)
    assert (replica.view, replica.active, actions[2].message.view) == (1, False, 1)


def test_early_timeout_does_nothing() -> None:
    cluster = Cluster()
    replica = cluster.replicas[1]
    replica.start(0)
    assert replica.timeout(cluster.first_timeout_ms - 1) == []


def test_view_change_waits_for_a_quorum_before_its_timer_runs() -> None:
    cluster = Cluster()
    replica = cluster.replicas[1]
    replica.start(0)
    replica.timeout(cluster.first_timeout_ms)
    assert replica.view_deadline_ms is None
    actions = replica.timeout(10_000)
    assert replica.view == 1
    assert [type(action) for action in actions] == [Broadcast, ScheduleTimeout]
    cluster.deliver(1, view_change(cluster, 2, 1))
    cluster.deliver(1, view_change(cluster, 3, 1))
    assert replica.view_deadline_ms is not None


def test_silent_primary_is_replaced() -> None:
    cluster = Cluster()
    cluster.down = {0}
    cluster.start()
    cluster.advance(2_000 + 500)
    assert [replica.view for replica in cluster.replicas[1:]] == [1, 1, 1]
    assert min(cluster.heights()[1:]) >= 2
    assert cluster.sent(1, NewView)


def test_weak_quorum_pulls_a_replica_along() -> None:
    cluster = Cluster()
    cluster.replicas[1].start(0)
    cluster.deliver(1, view_change(cluster, 2, 3))
    assert cluster.replicas[1].view == 0
    actions = cluster.deliver(1, view_change(cluster, 3, 5))
    assert cluster.replicas[1].view == 3
    sent = [action.message for action in actions if isinstance(action, Broadcast)]
    assert isinstance(sent[0], ViewChange) and sent[0].view == 3


def test_invalid_pull_along_by_f_validators() -> None:
    cluster = Cluster()
    cluster.deliver(1, view_change(cluster, 2, 7))
    cluster.deliver(1, view_change(cluster, 2, 9))
    assert cluster.replicas[1].view == 0


def test_new_view_re_proposes_the_prepared_block() -> None:
    cluster = Cluster(lose=lambda sender, receiver, message: isinstance(message, Commit))
    cluster.start()
    cluster.advance(100)
    prepared = [replica.prepared for replica in cluster.replicas]
    assert all(certificate is not None for certificate in prepared) and cluster.heights() == [0, 0, 0, 0]
    cluster.lose = lambda sender, receiver, message: False
    # The view's timer started afresh when each replica PREPAREd (before 100 ms).
    cluster.advance(2_100)
    assert cluster.heights() == [1, 1, 1, 1]
    final = cluster.ledgers[0].load_final_block(1)
    assert final is not None and prepared[0] is not None
    assert (final.block.hash, final.certificate.view) == (prepared[0].block_hash, 1)


def test_new_view_with_a_fresh_block_when_nothing_was_prepared() -> None:
    cluster = Cluster()
    replica = cluster.replicas[1]
    replica.start(0)
    replica.timeout(cluster.first_timeout_ms)
    cluster.deliver(1, view_change(cluster, 2, 1))
    actions = cluster.deliver(1, view_change(cluster, 3, 1))
    sent = [action.message for action in actions if isinstance(action, Broadcast)]
    new_views = [message for message in sent if isinstance(message, NewView)]
    assert len(new_views) == 1 and [change.sender for change in new_views[0].view_changes] == [1, 2, 3]
    persisted = [action for action in actions if isinstance(action, PersistVote)]
    assert persisted[0].vote.phase is Phase.PRE_PREPARE
    assert actions.index(persisted[0]) < actions.index(next(a for a in actions if isinstance(a, Broadcast)))


def forged_new_view(cluster: Cluster, changes: tuple[ViewChange, ...], timestamp_ms: int = 999) -> NewView:
    fresh = proposal_for(cluster, view=1, timestamp_ms=timestamp_ms)
    return NewView(1, 1, changes, fresh)


def test_invalid_new_view_choice() -> None:
    cluster = Cluster()
    old = proposal_for(cluster, view=0, timestamp_ms=100)
    certificate = prepared_certificate(cluster, old)
    changes = (view_change(cluster, 0, 1), view_change(cluster, 2, 1, certificate), view_change(cluster, 3, 1))
    assert cluster.deliver(3, forged_new_view(cluster, changes)) == []
    assert cluster.replicas[3].rejected["new_view_choice_mismatch"] == 1
    right = NewView(1, 1, changes, PrePrepare.sign(cluster.keys[1], 1, CHAIN_ID, 1, checked(old.block)))
    actions = cluster.deliver(3, right)
    assert cluster.replicas[3].view == 1 and cluster.replicas[3].active
    assert any(isinstance(action, Broadcast) for action in actions)


def test_invalid_new_view_without_a_quorum() -> None:
    cluster = Cluster()
    changes = (view_change(cluster, 0, 1), view_change(cluster, 2, 1))
    assert cluster.deliver(3, forged_new_view(cluster, changes)) == []
    assert cluster.replicas[3].rejected["invalid_new_view"] == 1


def test_invalid_new_view_counting_a_validator_twice() -> None:
    cluster = Cluster()
    twice = view_change(cluster, 2, 1)
    changes = (view_change(cluster, 0, 1), twice, twice)
    assert cluster.deliver(3, forged_new_view(cluster, changes)) == []
    assert cluster.replicas[3].rejected["invalid_new_view"] == 1


def test_invalid_view_change_with_a_stripped_certificate() -> None:
    cluster = Cluster()
    certificate = prepared_certificate(cluster, proposal_for(cluster))
    signed = view_change(cluster, 2, 1, certificate)
    stripped = ViewChange(signed.view, signed.height, None, None, signed.sender, signed.signature)
    assert cluster.deliver(3, stripped) == []
    assert cluster.replicas[3].rejected["bad_message_signature"] == 1


def test_invalid_prepared_certificate_without_a_quorum() -> None:
    cluster = Cluster()
    certificate = prepared_certificate(cluster, proposal_for(cluster), signers=(0, 2))
    assert cluster.deliver(3, view_change(cluster, 2, 1, certificate)) == []
    assert cluster.replicas[3].rejected["invalid_prepared_certificate"] == 1


def test_two_view_changes_for_one_view_are_equivocation() -> None:
    cluster = Cluster()
    certificate = prepared_certificate(cluster, proposal_for(cluster))
    cluster.deliver(3, view_change(cluster, 2, 1))
    cluster.deliver(3, view_change(cluster, 2, 1, certificate))
    assert cluster.replicas[3].evidence[0].phase is Phase.VIEW_CHANGE


def test_replica_in_a_new_view_helps_a_late_one() -> None:
    cluster = Cluster(lose=lambda sender, receiver, message: isinstance(message, Prepare))
    cluster.down = {0}
    cluster.start()
    cluster.advance(cluster.first_timeout_ms)
    new_view = cluster.sent(1, NewView)[0]
    assert cluster.replicas[2].active and cluster.replicas[2].view == 1
    late = view_change(cluster, 0, 1)
    actions = cluster.replicas[2].receive(late, cluster.now)
    sent = [(action.to, encode_message(action.message)) for action in actions if isinstance(action, Send)]
    assert sent == [(0, encode_message(new_view))]
    assert cluster.replicas[2].receive(late, cluster.now) == []
