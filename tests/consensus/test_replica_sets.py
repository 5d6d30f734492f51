"""The replica with validator sets that differ by height (``Replica.verifier_at``)."""

from __future__ import annotations

from mura.consensus.actions import Misbehaviour
from mura.consensus.messages import Prepare
from mura.consensus.replica import UNSETTLED_REFUSALS_PER_HEIGHT
from mura.sim.ledger import CHAIN_ID
from mura.sim.reconfiguration import joiner_keys
from mura.tests.consensus.replica_cluster import Cluster


def test_invalid_message_for_a_settled_height_is_held_against_its_deliverer() -> None:
    cluster = Cluster()
    forged = Prepare.sign(joiner_keys(1)[0], 3, CHAIN_ID, 0, 2, bytes(32))
    assert cluster.deliver(0, forged, sender=3) == [Misbehaviour(3, "bad_message_signature")]


def test_unsettled_heights_cost_a_bounded_number_of_signature_checks_and_no_blame() -> None:
    """Two heights ahead the set may have changed: a vote the latest set refuses there is
    not held against the validator that delivered it, but it may have only so many of
    them checked at each height; what it delivers there after that goes unchecked and is
    not kept, even a genuine vote (another replica keeps the same vote)."""
    cluster = Cluster()
    replica = cluster.replicas[0]
    stranger = joiner_keys(1)[0]
    for number in range(UNSETTLED_REFUSALS_PER_HEIGHT):
        vote = Prepare.sign(stranger, 3, CHAIN_ID, 0, 3 + number % 5, number.to_bytes(32, "big"))
        actions = cluster.deliver(0, vote, sender=3)
        assert not any(isinstance(action, Misbehaviour) for action in actions)
    assert replica.rejected["unsettled_validators"] == UNSETTLED_REFUSALS_PER_HEIGHT
    # The deliverer is taken to be ahead, and asked for final blocks.
    assert replica.catch_up.seen[3] >= 3
    genuine = Prepare.sign(cluster.keys[3], 3, CHAIN_ID, 0, 3, bytes(32))
    cluster.deliver(0, genuine, sender=3)
    cluster.deliver(1, genuine, sender=3)
    assert len(replica.held) == 0 and len(cluster.replicas[1].held) == 1
