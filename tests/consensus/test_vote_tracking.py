"""``Replica.last_vote_heights``: the highest height at which each validator was seen
voting with a valid signature, which the node turns into its missing-validators metric."""

from __future__ import annotations

from dataclasses import replace

from mura.consensus.actions import ServeBlocks
from mura.consensus.messages import Prepare, ViewChange
from mura.sim.ledger import CHAIN_ID
from mura.tests.consensus.replica_cluster import Cluster


def test_every_validator_taking_part_is_seen_at_each_height() -> None:
    cluster = Cluster()
    cluster.start()
    cluster.advance(100)
    assert all(replica.last_vote_heights == {0: 1, 1: 1, 2: 1, 3: 1} for replica in cluster.replicas)
    cluster.advance(500)
    height = cluster.heights()[0]
    assert height >= 3
    assert all(replica.last_vote_heights == dict.fromkeys(range(4), height) for replica in cluster.replicas)


def test_a_validator_that_stopped_keeps_the_last_height_it_voted_at() -> None:
    cluster = Cluster()
    cluster.start()
    cluster.advance(100)
    cluster.down.add(3)
    cluster.advance(600)
    height = cluster.heights()[0]
    assert height >= 3
    assert cluster.replicas[0].last_vote_heights == {0: height, 1: height, 2: height, 3: 1}


def test_a_badly_signed_or_far_ahead_vote_does_not_count() -> None:
    cluster = Cluster()
    replica = cluster.replicas[0]
    good = Prepare.sign(cluster.keys[2], 2, CHAIN_ID, 0, 1, b"a" * 32)
    cluster.deliver(0, replace(good, signature=bytes(64)), sender=2)
    # Signed, but further ahead than this replica holds anything: not believed.
    far = replica.height + replica.config.height_window + 1
    cluster.deliver(0, Prepare.sign(cluster.keys[3], 3, CHAIN_ID, 0, far, b"a" * 32), sender=3)
    assert replica.last_vote_heights == {}
    cluster.deliver(0, good, sender=2)
    assert replica.last_vote_heights == {2: 1}


def test_a_view_change_from_a_validator_behind_shows_where_it_is() -> None:
    cluster = Cluster()
    cluster.down.add(3)
    cluster.start()
    cluster.advance(300)
    assert 3 not in cluster.replicas[0].last_vote_heights
    behind = ViewChange.sign(cluster.keys[3], 3, CHAIN_ID, 1, 1, None, None)
    assert cluster.deliver(0, behind, sender=3) == [ServeBlocks(3, 1)]
    assert cluster.replicas[0].last_vote_heights[3] == 1


def test_certificates_of_blocks_caught_up_on_count_for_their_signers() -> None:
    cluster = Cluster()
    cluster.down.add(3)
    cluster.start()
    cluster.advance(400)
    assert cluster.heights()[0] >= 2
    behind = cluster.replicas[3]
    for height in (1, 2):
        final = cluster.ledgers[0].load_final_block(height)
        assert final is not None
        cluster.execute(3, behind.receive(final, cluster.now, origin=0))
        signers = [index for index, _ in final.certificate.signatures]
        assert len(signers) >= 3 and all(behind.last_vote_heights[index] == height for index in signers)
    assert 3 not in behind.last_vote_heights
