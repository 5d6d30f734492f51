"""Signing twice after chain data is wiped, or after the vote record is lost.

The vote record lives apart from the chain's data. A replica whose chain data
was wiped starts again from genesis with its record: it signs nothing below the
highest height it ever voted at, and meets its own recorded votes again when it
catches up to the height it voted at. A replica whose record is new checks
recent certificates for its own signature before signing (CometBFT's
double-sign check).
"""

from __future__ import annotations

from collections.abc import Callable

from mura.consensus.actions import Broadcast, CommitBlock, Misbehaviour
from mura.consensus.config import ReplicaConfig
from mura.consensus.messages import Commit, FinalBlock, Message, Prepare, PrePrepare, Status, ViewChange
from mura.consensus.replica import Replica
from mura.sim.disk import vote_record_in_memory
from mura.sim.ledger import CHAIN_ID, SimLedger
from mura.tests.consensus.replica_cluster import Cluster, proposal_for


def wipe(cluster: Cluster, index: int) -> None:
    """Validator ``index`` loses its chain data and restarts; its vote record stays."""
    cluster.ledgers[index] = SimLedger(cluster.genesis, signer=cluster.signer, signatures=cluster.signatures)
    cluster.replicas[index] = cluster.boot(index)


def prepared(actions: list) -> list[Prepare]:  # type: ignore[type-arg]
    return [
        action.message for action in actions if isinstance(action, Broadcast) and isinstance(action.message, Prepare)
    ]


def test_wiped_replica_meets_its_recorded_vote_again_when_it_catches_up() -> None:
    """Validator 3 prepared block X at height 2, then lost its chain data. It catches up
    through height 1 and must not prepare another block at height 2 in view 0."""
    cluster = Cluster()
    cluster.start()
    cluster.advance(100)
    assert cluster.heights() == [1, 1, 1, 1]
    x = proposal_for(cluster, timestamp_ms=200)
    assert prepared(cluster.deliver(3, x, sender=0))
    wipe(cluster, 3)
    assert cluster.heights()[3] == 0
    final = cluster.ledgers[0].load_final_block(1)
    assert final is not None
    cluster.deliver(3, final, sender=1)
    assert cluster.heights()[3] == 1
    y = proposal_for(cluster, timestamp_ms=300)
    assert y.block_hash != x.block_hash
    assert not prepared(cluster.deliver(3, y, sender=0))
    assert cluster.replicas[3].rejected["conflicting_vote_refused"] == 1


def test_wiped_replica_signs_nothing_where_its_votes_were_pruned() -> None:
    """Votes more than ``vote_retention_heights`` below the highest height it voted at were
    pruned: signing there again could contradict them."""
    cluster = Cluster(config=ReplicaConfig(chain_id=CHAIN_ID, proposal_delay_ms=100, vote_retention_heights=2))
    cluster.start()
    cluster.advance(1_000)
    voted = cluster.records[0].highest_height()
    assert voted >= 5
    wipe(cluster, 0)
    actions = cluster.replicas[0].start(cluster.now)
    actions += cluster.replicas[0].timeout(cluster.now + 10_000)
    assert not [action for action in actions if isinstance(action, Broadcast)]
    assert cluster.replicas[0].rejected["below_recorded_height"] >= 1
    # Caught up to where it voted last, it takes part again.
    cluster.down = set()
    cluster.execute(0, actions)
    cluster.advance(cluster.now + 3_000)
    assert cluster.heights()[0] >= voted
    assert cluster.records[0].highest_height() > voted


def lose_record(cluster: Cluster, index: int, *, wipe_data: bool = False) -> Replica:
    """Validator ``index`` restarts with a new vote record (a key moved to a new machine,
    a record lost), and with its chain data too if ``wipe_data``."""
    cluster.records[index] = vote_record_in_memory(new=True)
    if wipe_data:
        cluster.ledgers[index] = SimLedger(cluster.genesis, signer=cluster.signer, signatures=cluster.signatures)
    cluster.replicas[index] = cluster.boot(index)
    return cluster.replicas[index]


def test_new_vote_record_signs_nothing_until_the_network_has_moved_on() -> None:
    """Validator 1 PREPAREd a block at height h, then lost its record (and its data): it
    hears where the network stands, and signs nothing up to a few heights past it."""
    config = ReplicaConfig(chain_id=CHAIN_ID, proposal_delay_ms=100, double_sign_check_heights=3)
    cluster = Cluster(config=config)
    cluster.start()
    cluster.advance(400)
    voted = cluster.records[1].highest_height()
    replica = lose_record(cluster, 1, wipe_data=True)
    assert replica.guard.pending and replica.signing_held(replica.view)
    cluster.execute(1, replica.start(cluster.now))
    cluster.advance(cluster.now + 100)
    # Heard from f+1 others: the check is resolved and kept in the record.
    assert not replica.guard.pending
    network = max(cluster.heights()) + 1
    assert replica.guard.until_height >= max(voted, network - 1) + 2
    assert cluster.records[1].signing_guard() == replica.guard
    signed_before = cluster.records[1].highest_height()
    until = replica.guard.until_height
    cluster.advance(cluster.now + 3_000)
    assert min(cluster.heights()) > until
    assert signed_before == 0 and cluster.records[1].highest_height() > until
    assert all(not cluster.records[1].load_votes(height) for height in range(1, until + 1))


def test_a_restart_does_not_skip_a_pending_check() -> None:
    """The check's state is the record's: restarting before it is resolved keeps it pending,
    and after, keeps the height it holds up to."""
    record = vote_record_in_memory(new=True)
    cluster = Cluster()
    cluster.records[2] = record
    assert cluster.boot(2).guard.pending
    record.save_guard(12)
    again = cluster.boot(2)
    assert not again.guard.pending and again.guard.until_height == 12 and again.signing_held(again.view)


def test_new_network_whose_records_are_all_new_starts() -> None:
    """Nobody has signed anything: every replica hears the others at height 1 (their
    ``Status``) and the check passes at once."""
    cluster = Cluster()
    cluster.records = [vote_record_in_memory(new=True) for _ in range(cluster.size)]
    cluster.replicas = [cluster.boot(index) for index in range(cluster.size)]
    cluster.start()
    cluster.advance(300)
    assert min(cluster.heights()) >= 1
    assert all(replica.guard.until_height == 0 and not replica.guard.pending for replica in cluster.replicas)


def test_invalid_status_from_another_validators_link() -> None:
    cluster = Cluster()
    replica = lose_record(cluster, 1)
    assert cluster.deliver(1, Status(2, 2), sender=3) == [Misbehaviour(3, "invalid_message")]
    assert 2 not in replica.double_sign.heard and 3 not in replica.double_sign.heard


def test_status_beyond_the_settled_heights_is_not_heard_by_the_check() -> None:
    """A status for a height whose validator set this replica does not know yet, naming a
    place the latest set known does not have: a set grown on the way there may have it,
    so it only says that the link's validator is ahead."""
    cluster = Cluster()
    replica = lose_record(cluster, 1)
    actions = cluster.deliver(1, Status(50, 5), sender=3)
    assert not any(isinstance(action, Misbehaviour) for action in actions)
    assert replica.double_sign.heard == {} and replica.catch_up.seen == {3: 1 + replica.config.height_window}


def test_a_far_off_height_one_validator_claims_is_not_believed() -> None:
    """A faulty validator signs a vote for a far-off height: the check takes the heights f+1
    validators corroborate, within the height window."""
    cluster = Cluster()
    replica = lose_record(cluster, 1)
    far = Prepare.sign(cluster.keys[3], 3, CHAIN_ID, 0, 1_000_000, bytes(32))
    cluster.deliver(1, far, sender=3)
    cluster.deliver(1, Status(5, 2), sender=2)
    # Where f+1 corroborate (height 5), not a million.
    heights = cluster.config.double_sign_check_heights
    assert not replica.guard.pending and replica.guard.until_height == 5 + heights - 1


def test_no_check_when_it_is_switched_off() -> None:
    config = ReplicaConfig(chain_id=CHAIN_ID, proposal_delay_ms=100, double_sign_check_heights=0)
    cluster = Cluster(config=config)
    cluster.records[1] = vote_record_in_memory(new=True)
    assert not cluster.boot(1).signing_held(0)


def test_commit_after_a_wipe_is_not_blocked_by_the_record() -> None:
    cluster = Cluster()
    cluster.start()
    cluster.advance(300)
    wipe(cluster, 2)
    final = cluster.ledgers[0].load_final_block(1)
    assert final is not None
    actions = cluster.deliver(2, final, sender=0)
    assert isinstance(actions[0], CommitBlock)


def test_wiped_replica_that_alone_saw_a_height_final_still_takes_part_in_it() -> None:
    """Validator 0 alone saw the COMMITs that make height 1 final, moved on to height 2 and
    voted there; the others wait at height 1. Its chain data is wiped, and validator 3 is
    down, so height 1 needs it: its record still holds what it signed at height 1, and it
    takes part again instead of refusing to sign below height 2."""
    cut = [True]

    def lose(sender: int, receiver: int, message: object) -> bool:
        """Until the wipe: the others never learn that height 1 is final."""
        if not cut[0] or receiver == 0:
            return False
        if isinstance(message, Commit) and message.height == 1:
            return True
        return sender == 0 and (isinstance(message, FinalBlock) or getattr(message, "height", 0) >= 2)

    cluster = Cluster(lose=lose)
    cluster.down = {3}
    cluster.start()
    cluster.advance(400)
    assert cluster.heights() == [1, 0, 0, 0]
    assert cluster.records[0].highest_height() == 2
    wipe(cluster, 0)
    cut[0] = False
    cluster.execute(0, cluster.replicas[0].start(cluster.now))
    cluster.advance(cluster.now + 8_000)
    assert min(cluster.heights()[:3]) >= 2
    assert cluster.replicas[0].rejected["below_recorded_height"] == 0


def test_at_the_first_height_it_signs_nothing_in_the_views_others_signed_in() -> None:
    """Nothing is final yet, but the others sign at height 1: this validator may have too,
    before it lost its record, so it signs nothing there in the views they were heard
    signing in (the simulator found a double VIEW-CHANGE when it signed at once), and
    joins them from the next view."""
    cluster = Cluster()
    replica = lose_record(cluster, 1)
    for sender in (0, 2):
        change = ViewChange.sign(cluster.keys[sender], sender, CHAIN_ID, 1, 1, None, None)
        cluster.deliver(1, change, sender=sender)
    assert not replica.guard.pending
    assert (replica.guard.until_height, replica.guard.from_view) == (0, 2)
    assert cluster.records[1].signing_guard() == replica.guard
    assert replica.signing_held(1) and not replica.signing_held(2)


def new_network_without(*late: int) -> Cluster:
    """A new network (every vote record new) run for 300 ms while validators ``late`` hear
    nothing (what they sent on starting still arrives)."""
    cluster = Cluster()
    cluster.records = [vote_record_in_memory(new=True) for _ in range(cluster.size)]
    cluster.replicas = [cluster.boot(index) for index in range(cluster.size)]
    cluster.down = set(late)
    cluster.start()
    cluster.advance(300)
    return cluster


def test_validators_started_one_after_another_all_take_part() -> None:
    """A new network whose validators start one after another: the first two hear where the
    others stand before anyone has signed and sign at once; the last two, up later, hear
    them signing at height 1 and keep out of those views. Without them there is no quorum
    in view 0; all four meet in a later view."""
    cluster = new_network_without(2, 3)
    assert cluster.heights() == [0, 0, 0, 0]
    assert all(not cluster.replicas[index].guard.pending for index in (0, 1))
    cluster.down = set()
    for index in (2, 3):
        cluster.execute(index, cluster.replicas[index].start(cluster.now))
        for early in (0, 1):  # links open both ways
            cluster.execute(early, cluster.replicas[early].peer_connected(index, cluster.now))
            cluster.execute(index, cluster.replicas[index].peer_connected(early, cluster.now))
    cluster.flow()
    late = [cluster.replicas[index].guard for index in (2, 3)]
    assert all(guard.from_view >= 1 and guard.until_height == 0 for guard in late), late
    cluster.advance(cluster.now + 8_000)
    assert min(cluster.heights()) >= 3
    for index in (2, 3):
        assert cluster.records[index].highest_height() >= 3


def started_late_with(
    far: Message | Callable[[Cluster, int], Message] | None, *, late_timeout: bool = False
) -> Cluster:
    """A new network: 0 and 1 start, 3 is faulty (it sends at most ``far``), 2 starts late."""
    cluster = new_network_without(2, 3)
    cluster.down = {3}
    late = cluster.replicas[2]
    cluster.execute(2, late.start(cluster.now))
    if late_timeout:
        cluster.execute(2, late.timeout(cluster.now + 10_000))
    if far is not None:
        cluster.deliver(2, far(cluster, late.view) if callable(far) else far, sender=3)
    for early in (0, 1):
        cluster.execute(early, cluster.replicas[early].peer_connected(2, cluster.now))
        cluster.execute(2, late.peer_connected(early, cluster.now))
    cluster.flow()
    cluster.advance(cluster.now + 60_000)
    return cluster


def test_a_faulty_proposal_in_a_far_view_does_not_shut_a_late_validator_out() -> None:
    cluster = started_late_with(lambda cluster, view: proposal_for(cluster, view=4 * 10**15 + 3, signer=3))
    assert min(cluster.heights()[:3]) >= 1, cluster.heights()


def test_a_faulty_view_change_at_the_window_edge_does_not_shut_a_late_validator_out() -> None:
    def far(cluster: Cluster, view: int) -> ViewChange:
        return ViewChange.sign(cluster.keys[3], 3, CHAIN_ID, view + cluster.config.view_window, 1, None, None)

    cluster = started_late_with(far, late_timeout=True)
    assert min(cluster.heights()[:3]) >= 1, cluster.heights()


def test_a_proposal_in_the_largest_view_does_not_break_the_replica() -> None:
    cluster = Cluster()
    cluster.start()
    replica = lose_record(cluster, 2)
    cluster.deliver(2, proposal_for(cluster, view=2**64 - 1, signer=3), sender=3)
    cluster.deliver(2, Status(1, 0), sender=0)  # raised OverflowError (the node stops)
    assert not replica.guard.pending


def test_a_faulty_status_and_an_uninformed_one_do_not_let_a_lost_record_sign_again() -> None:
    """Validator 0 proposed X in view 0, X became final at 1 and 3; 0 loses record and data.
    It hears the faulty validator's Status and validator 2's (2 heard nothing of view 0)."""
    phase = ["first"]

    def lose(sender: int, receiver: int, message: object) -> bool:
        return receiver == 2 if phase[0] == "first" else 1 in (sender, receiver)

    cluster = Cluster(lose=lose)
    cluster.start()
    cluster.advance(110)
    assert cluster.heights() == [1, 1, 0, 1]
    x = cluster.ledgers[1].load_final_block(1)
    assert x is not None
    phase[0] = "second"
    replica = lose_record(cluster, 0, wipe_data=True)
    cluster.execute(0, replica.start(cluster.now))
    cluster.deliver(0, Status(1, 3), sender=3)
    cluster.execute(2, cluster.replicas[2].peer_connected(0, cluster.now))
    cluster.flow()
    cluster.advance(cluster.now + 150)
    again = [m for m in cluster.sent(0, PrePrepare) if m.view == 0 and m.height == 1 and m.block_hash != x.block.hash]
    for proposal in again:  # the faulty validator votes for it too
        for kind in (Prepare, Commit):
            vote = kind.sign(cluster.keys[3], 3, CHAIN_ID, 0, 1, proposal.block_hash)
            for receiver in (0, 2):
                cluster.deliver(receiver, vote, sender=3)
    cluster.flow()
    finals = {f.block.hash for f in (cluster.ledgers[i].load_final_block(1) for i in range(3)) if f is not None}
    assert not again and finals <= {x.block.hash}, (len(again), len(finals))
