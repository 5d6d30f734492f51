"""Signing twice after chain data is wiped, or after the vote record is lost.

The vote record lives apart from the chain's data. A replica whose chain data
was wiped starts again from genesis with its record: it signs nothing below the
highest height it ever voted at, and meets its own recorded votes again when it
catches up to the height it voted at. A replica whose record is new checks
recent certificates for its own signature before signing (CometBFT's
double-sign check).
"""

from __future__ import annotations

from mura.consensus.actions import Broadcast, CommitBlock
from mura.consensus.config import ReplicaConfig
from mura.consensus.messages import Commit, FinalBlock, Prepare
from mura.consensus.replica import Replica
from mura.tests.consensus.cluster import Cluster
from mura.tests.consensus.test_replica import proposal_for
from mura.tests.sim.ledger import CHAIN_ID, SimLedger


def wipe(cluster: Cluster, index: int) -> None:
    """Validator ``index`` loses its chain data and restarts; its vote record stays."""
    cluster.ledgers[index] = SimLedger(cluster.genesis, signer=cluster.signer, signatures=cluster.signatures)
    cluster.replicas[index] = cluster.boot(index)


def prepared(actions: list) -> list[Prepare]:  # type: ignore[type-arg]
    return [action.message for action in actions if isinstance(action, Broadcast) and isinstance(action.message, Prepare)]


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


def test_new_vote_record_waits_out_heights_it_may_have_voted_at() -> None:
    """A record that is new, on a chain whose recent certificates carry this validator's
    signature: it signs nothing until those certificates are behind it."""
    config = ReplicaConfig(chain_id=CHAIN_ID, proposal_delay_ms=100, double_sign_check_heights=2)
    cluster = Cluster(config=config)
    cluster.start()
    cluster.advance(400)
    height = cluster.heights()[1]
    assert height >= 2
    certificate = cluster.ledgers[1].load_certificate(height)
    assert certificate is not None and 1 in {index for index, _ in certificate.signatures}
    # Validator 1 restarts with its record lost.
    cluster.records[1] = type(cluster.records[1])()
    cluster.replicas[1] = Replica(
        key=cluster.keys[1],
        validators=cluster.genesis.validators,
        application=cluster.ledgers[1],
        config=config,
        vote_record=cluster.records[1],
        vote_record_new=True,
    )
    replica = cluster.replicas[1]
    replica.start(cluster.now)
    proposal = proposal_for(cluster, view=replica.view, timestamp_ms=cluster.now)
    assert not prepared(cluster.deliver(1, proposal, sender=0))
    assert replica.signing_held_at == (height + 1, height)
    # The others decide without it; two heights on, its signature is no longer in the last
    # two certificates and it signs again.
    cluster.advance(cluster.now + 1_500)
    assert replica.signing_held_at is None and not replica.vote_record_new
    assert cluster.records[1].highest_height() > height + 1
    assert min(cluster.heights()) > height + 2


def test_new_vote_record_at_genesis_signs_at_once() -> None:
    cluster = Cluster()
    replica = Replica(
        key=cluster.keys[1],
        validators=cluster.genesis.validators,
        application=cluster.ledgers[1],
        config=cluster.config,
        vote_record=cluster.records[1],
        vote_record_new=True,
    )
    cluster.replicas[1] = replica
    assert prepared(cluster.deliver(1, proposal_for(cluster), sender=0))
    assert not replica.signing_held()


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
