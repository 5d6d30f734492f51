"""Which validators a replica counts as missing (the figure behind mura_consensus_missing_validators)."""

from __future__ import annotations

from mura.consensus.messages import Prepare
from mura.progress_log import missing_validators
from mura.sim.ledger import CHAIN_ID
from mura.tests.consensus.replica_cluster import Cluster


def test_one_vote_for_a_far_off_height_does_not_hide_a_silent_validator() -> None:
    """A faulty validator signs one PREPARE for a height the chain will not reach for ages,
    then goes silent: it is missing like any other silent validator once heights go by."""
    cluster = Cluster(4)
    cluster.down.add(3)
    far = Prepare.sign(cluster.keys[3], 3, CHAIN_ID, 0, 10**9, b"\x00" * 32)
    cluster.start()
    cluster.deliver(0, far, sender=3)
    for step in range(1, 200):
        cluster.advance(step * 1_000)
        if min(cluster.heights()[:3]) >= 6:
            break
    assert min(cluster.heights()[:3]) >= 6
    assert missing_validators(cluster.replicas[0]) == 1
