"""An idle chain: the primary waits the idle interval before an empty block, or less
when an automatic step of the state falls due; every view timer allows for that wait,
and arriving transactions bring both forward."""

from __future__ import annotations

from functools import partial

import pytest

from mura.consensus.actions import Broadcast, ScheduleTimeout, Send
from mura.consensus.config import ReplicaConfig
from mura.consensus.messages import PrePrepare, Status
from mura.sim.ledger import CHAIN_ID
from mura.tests.consensus.replica_cluster import Cluster

INTERVAL = 10_000
TIMEOUT = 1_000
GATHER = 100


def idle_cluster() -> tuple[Cluster, list[bool]]:
    """Four replicas whose mempools are empty until a test fills one (``pending[i]``)."""
    config = ReplicaConfig(
        chain_id=CHAIN_ID,
        base_timeout_ms=TIMEOUT,
        max_timeout_ms=4 * TIMEOUT,
        proposal_delay_ms=GATHER,
        empty_proposal_delay_ms=INTERVAL,
    )
    cluster = Cluster(config=config)
    pending = [False] * cluster.size
    for index, ledger in enumerate(cluster.ledgers):
        ledger.pending = partial(pending.__getitem__, index)
        # No automatic step falls due (the simulator's genesis has a voucher that expires).
        ledger.next_due_ms = lambda: None  # type: ignore[method-assign]
    return cluster, pending


def arrive(cluster: Cluster, pending: list[bool], *indexes: int) -> None:
    """Transactions reach the mempools of ``indexes``, which were empty (as the node reports it)."""
    for index in indexes:
        pending[index] = True
        cluster.execute(index, cluster.replicas[index].transactions_arrived(cluster.now))
    cluster.flow()


def start_without(cluster: Cluster, down: int) -> None:
    cluster.down.add(down)
    for index, replica in enumerate(cluster.replicas):
        if index != down:
            cluster.execute(index, replica.start(cluster.now))


def view_changes(cluster: Cluster) -> list[int]:
    return [replica.view_changes_started for replica in cluster.replicas]


def test_an_idle_chain_makes_an_empty_block_each_interval_without_view_changes() -> None:
    cluster, _ = idle_cluster()
    cluster.start()
    cluster.advance(INTERVAL - 1)
    assert cluster.heights() == [0, 0, 0, 0]
    cluster.advance(5 * INTERVAL)
    assert cluster.heights() == [5, 5, 5, 5]
    assert view_changes(cluster) == [0, 0, 0, 0]
    blocks = cluster.ledgers[2].final_blocks()
    assert all(not block.transactions for block in blocks)
    # Each empty block carries the time it was proposed: the chain's clock lags by at most the interval.
    assert [block.header.timestamp_ms for block in blocks] == [INTERVAL * height for height in range(1, 6)]


def test_the_first_view_timer_allows_for_the_primary_s_wait() -> None:
    cluster, _pending = idle_cluster()
    cluster.start()
    assert {replica.view_deadline_ms for replica in cluster.replicas} == {INTERVAL + TIMEOUT}
    busy, _ = idle_cluster()
    busy.ledgers[1].pending = lambda: True
    busy.start()
    assert busy.replicas[1].view_deadline_ms == GATHER + TIMEOUT
    assert busy.replicas[2].view_deadline_ms == INTERVAL + TIMEOUT


def test_arriving_transactions_cut_the_primary_s_wait_short() -> None:
    cluster, pending = idle_cluster()
    cluster.start()
    cluster.advance(50)
    pending[:] = [True] * 4
    actions = cluster.replicas[0].transactions_arrived(cluster.now)
    assert actions == [ScheduleTimeout(50 + GATHER), ScheduleTimeout(50 + GATHER + TIMEOUT)]
    cluster.execute(0, actions)
    cluster.advance(50 + GATHER - 1)
    assert cluster.heights() == [0, 0, 0, 0]
    cluster.advance(50 + GATHER)
    assert cluster.heights() == [1, 1, 1, 1]
    assert len(cluster.ledgers[0].final_blocks()[0].transactions) > 0
    # Arriving again changes nothing once the wait is already short.
    assert cluster.replicas[0].transactions_arrived(cluster.now) == []


def test_a_failed_primary_of_an_idle_chain_is_replaced_within_the_interval_and_a_timeout() -> None:
    cluster, _ = idle_cluster()
    start_without(cluster, 0)
    cluster.advance(INTERVAL + TIMEOUT - 1)
    assert cluster.heights() == [0, 0, 0, 0] and view_changes(cluster) == [0, 0, 0, 0]
    cluster.advance(INTERVAL + TIMEOUT)
    # The NEW-VIEW's primary proposes at once: no idle wait once the view changed.
    assert cluster.heights() == [0, 1, 1, 1]
    assert [replica.view for replica in cluster.replicas[1:]] == [1, 1, 1]
    # The next heights start in view 1, whose primary is running: idle again, no view change.
    cluster.advance(INTERVAL + TIMEOUT + 3 * INTERVAL)
    assert cluster.heights() == [0, 4, 4, 4]
    assert view_changes(cluster) == [0, 1, 1, 1]


def test_transactions_reaching_the_backups_bring_a_failed_primary_s_replacement_forward() -> None:
    cluster, pending = idle_cluster()
    start_without(cluster, 0)
    cluster.advance(3_000)
    arrive(cluster, pending, 1, 2, 3)
    cluster.advance(3_000 + GATHER + TIMEOUT - 1)
    assert cluster.heights() == [0, 0, 0, 0]
    cluster.advance(3_000 + GATHER + TIMEOUT)
    assert cluster.heights() == [0, 1, 1, 1]
    assert len(cluster.ledgers[1].final_blocks()[0].transactions) > 0


def test_transactions_a_quorum_has_and_the_primary_lacks_cost_it_its_view() -> None:
    cluster, pending = idle_cluster()
    cluster.start()
    cluster.advance(50)
    arrive(cluster, pending, 1, 2, 3)
    cluster.advance(50 + GATHER + TIMEOUT)
    assert cluster.heights() == [1, 1, 1, 1]
    assert [replica.view for replica in cluster.replicas] == [1, 1, 1, 1]
    assert len(cluster.ledgers[0].final_blocks()[0].transactions) > 0


def test_transactions_a_minority_has_change_no_view_of_the_others() -> None:
    cluster, pending = idle_cluster()
    cluster.start()
    cluster.advance(50)
    arrive(cluster, pending, 3)
    cluster.advance(INTERVAL - 1)
    # Validator 3 alone asked for view 1; nobody followed (f+1 are needed).
    assert view_changes(cluster) == [0, 0, 0, 1]
    assert cluster.heights() == [0, 0, 0, 0]
    cluster.advance(INTERVAL)
    # The primary's empty block, committed in view 0, is final at validator 3 too.
    assert cluster.heights() == [1, 1, 1, 1]


def test_a_backup_restarted_within_an_idle_height_still_allows_for_the_interval() -> None:
    cluster, _ = idle_cluster()
    cluster.start()
    cluster.advance(INTERVAL // 2)
    cluster.restart(2)
    assert cluster.replicas[2].view_deadline_ms == INTERVAL // 2 + INTERVAL + TIMEOUT
    cluster.advance(INTERVAL)
    assert cluster.heights() == [1, 1, 1, 1]
    assert view_changes(cluster) == [0, 0, 0, 0]


def test_a_primary_restarted_within_an_idle_height_costs_at_most_one_view_change() -> None:
    """It cannot know how long the height has run, so it waits the interval afresh; the
    others' timers, armed when the height began, replace it first."""
    cluster, _ = idle_cluster()
    cluster.start()
    cluster.advance(INTERVAL // 2)
    cluster.restart(0)
    cluster.advance(INTERVAL + TIMEOUT)
    assert cluster.heights() == [1, 1, 1, 1]
    assert [replica.view for replica in cluster.replicas] == [1, 1, 1, 1]
    cluster.advance(INTERVAL + TIMEOUT + 2 * INTERVAL)
    assert cluster.heights() == [3, 3, 3, 3]
    # One view left, once by each (the restarted primary follows the others along).
    assert view_changes(cluster) == [1, 1, 1, 1]
    assert [replica.view for replica in cluster.replicas] == [1, 1, 1, 1]


def test_a_replica_restarted_after_leaving_the_view_has_no_idle_allowance() -> None:
    cluster, _ = idle_cluster()
    start_without(cluster, 0)
    cluster.down.add(1)
    cluster.advance(INTERVAL + TIMEOUT)
    # 2 and 3 asked for view 1 and wait for a quorum; 2 restarts there.
    assert cluster.replicas[2].view == 1 and not cluster.replicas[2].active
    cluster.restart(2)
    assert cluster.replicas[2].view_deadline_ms == cluster.now + TIMEOUT


def test_a_replica_restarted_behind_an_idle_chain_catches_up_when_its_links_open() -> None:
    """Nobody signs anything at an idle height before the primary proposes, so without
    a word on the link's opening a node that restarted behind (or wiped) would learn
    of the blocks it lacks only at the next proposal, up to an interval later."""
    cluster, _ = idle_cluster()
    start_without(cluster, 3)
    cluster.advance(2 * INTERVAL + 500)
    assert cluster.heights() == [2, 2, 2, 0]
    cluster.restart(3)
    for index in (0, 1, 2):
        sent = cluster.replicas[index].peer_connected(3, cluster.now)
        assert sent == [Send(3, Status(3, index))]
        cluster.execute(index, sent)
    cluster.flow()
    assert cluster.heights() == [2, 2, 2, 2]
    assert view_changes(cluster) == [0, 0, 0, 0]


def test_no_height_is_offered_at_the_first_height_or_with_transactions_pending() -> None:
    """At the first height a height without a signed view would tell a new vote record
    that this validator signed nothing there; with transactions pending a proposal
    comes soon, and says more."""
    cluster, pending = idle_cluster()
    cluster.start()
    assert cluster.replicas[1].peer_connected(2, cluster.now) == []
    cluster.advance(INTERVAL)
    assert cluster.heights() == [1, 1, 1, 1]
    assert cluster.replicas[1].peer_connected(2, cluster.now) == [Send(2, Status(2, 1))]
    pending[1] = True
    assert cluster.replicas[1].peer_connected(2, cluster.now) == []


def test_proposal_waits_the_block_interval_to_gather_transactions() -> None:
    cluster, pending = idle_cluster()
    pending[:] = [True] * 4
    cluster.start()
    cluster.advance(GATHER - 1)
    assert cluster.heights() == [0, 0, 0, 0]
    cluster.advance(GATHER)
    assert cluster.heights() == [1, 1, 1, 1]


def test_a_full_block_waiting_is_proposed_at_once() -> None:
    cluster, pending = idle_cluster()
    pending[:] = [True] * 4
    for ledger in cluster.ledgers:
        ledger.has_full_block = lambda: True  # type: ignore[method-assign]
    actions = cluster.replicas[0].start(cluster.now)
    assert any(isinstance(action, Broadcast) and isinstance(action.message, PrePrepare) for action in actions)
    assert cluster.replicas[1].start(cluster.now) == [ScheduleTimeout(TIMEOUT)]


def test_idle_interval_may_exceed_the_view_timeout_but_not_be_negative() -> None:
    ReplicaConfig(chain_id=CHAIN_ID, base_timeout_ms=2_000, empty_proposal_delay_ms=60_000)
    with pytest.raises(ValueError, match="must not be negative"):
        ReplicaConfig(chain_id=CHAIN_ID, empty_proposal_delay_ms=-1)
    with pytest.raises(ValueError, match="must not be negative"):
        ReplicaConfig(chain_id=CHAIN_ID, proposal_delay_ms=-1)


def test_an_idle_primary_proposes_when_an_automatic_step_falls_due() -> None:
    """An asset's expiry (``next_due_ms``) brings the idle primary's empty block forward to
    its time: the block that reaches it carries that time, and once the step is done (the
    state due no more) the chain idles again."""
    cluster, _ = idle_cluster()
    for ledger in cluster.ledgers:
        ledger.next_due_ms = lambda ledger=ledger: None if ledger.final_blocks() else 3_000  # type: ignore[method-assign,misc]
    cluster.start()
    cluster.advance(2_999)
    assert cluster.heights() == [0, 0, 0, 0]
    cluster.advance(3_000)
    assert cluster.heights() == [1, 1, 1, 1]
    assert cluster.ledgers[0].final_blocks()[-1].header.timestamp_ms == 3_000
    cluster.advance(3_000 + INTERVAL - 1)
    assert cluster.heights() == [1, 1, 1, 1]
    cluster.advance(3_000 + INTERVAL)
    assert cluster.heights() == [2, 2, 2, 2]
    assert view_changes(cluster) == [0, 0, 0, 0]


def test_a_step_still_due_is_proposed_a_block_interval_apart_and_never_later_than_the_idle_interval() -> None:
    """A lapse spread over several blocks: each block follows the last after the block
    interval, not back to back; a step due far ahead waits no longer than the idle interval."""
    cluster, _ = idle_cluster()
    for ledger in cluster.ledgers:
        ledger.next_due_ms = lambda: 0  # type: ignore[method-assign]
    cluster.start()
    cluster.advance(GATHER)
    assert cluster.heights() == [1, 1, 1, 1]
    cluster.advance(3 * GATHER)
    assert cluster.heights() == [3, 3, 3, 3]
    far, _ = idle_cluster()
    for ledger in far.ledgers:
        ledger.next_due_ms = lambda: 10 * INTERVAL  # type: ignore[method-assign]
    far.start()
    far.advance(INTERVAL)
    assert far.heights() == [1, 1, 1, 1]
