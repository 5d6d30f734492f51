"""Runs whose validator set changes by governance, mixed with faults (``reconfiguration_scenario``)."""

from __future__ import annotations

from collections import Counter

import pytest

from mura.chain.block import verify_certificate
from mura.chain.store import VOTES
from mura.consensus.messages import Commit
from mura.sim.ledger import CHAIN_ID, validator_keys
from mura.sim.nodes import SimNode
from mura.sim.reconfiguration import joiner_keys
from mura.sim.reconfiguration_scenario import ReconfigurationFault, reconfiguration_scenario
from mura.sim.simulation import Simulation

SEEDS = range(3)


def run(fault: ReconfigurationFault, seed: int, *, bug: str | None = None) -> Simulation:
    simulation = Simulation(reconfiguration_scenario(seed, fault=fault, bug=bug))
    simulation.run()
    return simulation


def leader(simulation: Simulation) -> SimNode:
    return max(simulation.honest_nodes(), key=lambda node: node.ledger.final_height())


def final_set(simulation: Simulation) -> tuple[bytes, ...]:
    node = leader(simulation)
    return node.ledger.validators_at(node.ledger.final_height() + 1)


def signers(simulation: Simulation, key: bytes) -> list[int]:
    """The heights whose certificates ``key`` signed, as the leading node stores them."""
    node = leader(simulation)
    heights = []
    for final in node.ledger.finals:
        keys = node.ledger.validators_at(final.height)
        if any(keys[index] == key for index, _ in final.certificate.signatures):
            heights.append(final.height)
    return heights


def voted_heights(node: SimNode) -> set[int]:
    """The heights at which ``node``'s vote record holds a vote it signed."""
    keys = node.disk.iterator(prefix=VOTES, include_value=False)
    return {int.from_bytes(key[len(VOTES) : len(VOTES) + 8], "big") for key in keys if isinstance(key, bytes)}


def assert_sound(simulation: Simulation) -> None:
    """No violation, and every certificate of the final chain verifies against the set of its height."""
    assert simulation.checker.violations == []
    node = leader(simulation)
    for final in node.ledger.finals:
        verify_certificate(
            final.certificate,
            chain_id=CHAIN_ID,
            height=final.height,
            block_hash=final.block.hash,
            validators=node.ledger.validators_at(final.height),
        )


@pytest.mark.parametrize("seed", SEEDS)
def test_grow_from_four_to_seven(seed: int) -> None:
    simulation = run(ReconfigurationFault.GROW, seed)
    assert_sound(simulation)
    assert final_set(simulation) == tuple(key.public_key for key in validator_keys(4) + joiner_keys(3))
    kinds = Counter(tx.kind for block in leader(simulation).ledger.final_blocks() for tx in block.transactions)
    assert kinds["propose"] == 3 and kinds["approve"] >= 3 * 2
    # Each new validator followed without signing anything, caught up, then took part:
    # it signed certificates once added, and voted at no height before that.
    history = leader(simulation).ledger.validator_history
    for key, node in zip(joiner_keys(3), simulation.nodes[4:], strict=True):
        added = next(start for start, keys in history if key.public_key in keys)
        assert signers(simulation, key.public_key)
        assert min(voted_heights(node)) >= added


def test_new_validators_started_as_they_are_added_take_part_from_their_first_height() -> None:
    """The joiners' vote records are new (their keys never signed) and they start only as
    the changes are approved: the double-sign check must not keep them from the first
    heights of a set that needs them for a quorum (seven validators need five)."""
    late = [
        seed
        for seed in range(40)
        if reconfiguration_scenario(seed, fault=ReconfigurationFault.GROW).late_starts
    ][:3]
    for seed in late:
        simulation = run(ReconfigurationFault.GROW, seed)
        assert_sound(simulation)
        assert simulation.recovery_ms is not None
        for key in joiner_keys(3):
            assert signers(simulation, key.public_key)


@pytest.mark.parametrize("seed", SEEDS)
def test_shrink_from_seven_to_four(seed: int) -> None:
    simulation = run(ReconfigurationFault.SHRINK, seed)
    assert_sound(simulation)
    removed = {validator_keys(7)[change.member].public_key for change in simulation.scenario.reconfigurations}
    assert len(final_set(simulation)) == 4 and not removed & set(final_set(simulation))
    # The removed keep following the chain: they reached the heights every node owes after healing.
    assert simulation.recovery_ms is not None
    # Nothing they signed counts from the height the last removal took effect.
    activation = next(start for start, keys in leader(simulation).ledger.validator_history if len(keys) == 4)
    assert all(max(signers(simulation, key), default=0) < activation for key in removed)


@pytest.mark.parametrize("seed", SEEDS)
def test_remove_a_crashed_validator(seed: int) -> None:
    simulation = run(ReconfigurationFault.REMOVE_CRASHED, seed)
    assert_sound(simulation)
    (change,) = simulation.scenario.reconfigurations
    removed = validator_keys(simulation.scenario.validators)[change.member].public_key
    assert removed not in final_set(simulation)
    assert len(final_set(simulation)) == simulation.scenario.validators - 1
    # The crashed node came back as a follower and caught up with the chain.
    assert simulation.recovery_ms is not None


@pytest.mark.parametrize("seed", SEEDS)
def test_rotate_the_primarys_key_during_a_view_change(seed: int) -> None:
    simulation = run(ReconfigurationFault.ROTATE_PRIMARY, seed)
    assert_sound(simulation)
    old, new = validator_keys(4)[0].public_key, joiner_keys(1)[0].public_key
    assert final_set(simulation)[0] == new and old not in final_set(simulation)
    assert signers(simulation, new), "the validator signs with its new key"
    rotated_at = min(signers(simulation, new))
    assert max(signers(simulation, old), default=0) < rotated_at


def test_the_old_key_of_a_rotated_validator_signs_nothing_valid() -> None:
    """After the rotation, a COMMIT signed with the old key in the validator's place is
    refused by every honest replica and counts toward no certificate."""
    simulation = run(ReconfigurationFault.ROTATE_PRIMARY, 0)
    old_key = validator_keys(4)[0]
    for node in simulation.honest_nodes():
        replica = node.replica
        if replica is None or not replica.member:
            continue
        forged = Commit.sign(old_key, 0, CHAIN_ID, replica.view, replica.height, bytes(32))
        replica.receive(forged, node.clock(simulation.now), origin=None)
        assert replica.rejected["bad_message_signature"] >= 1
        assert replica.log.commits.signatures(replica.view, bytes(32)) == ()


@pytest.mark.parametrize("seed", SEEDS)
def test_add_a_validator_during_a_partition(seed: int) -> None:
    simulation = run(ReconfigurationFault.ADD_DURING_PARTITION, seed)
    assert_sound(simulation)
    assert final_set(simulation)[-1] == joiner_keys(1)[0].public_key
    assert signers(simulation, joiner_keys(1)[0].public_key)


def test_a_certificate_checked_against_the_wrong_heights_set_is_caught() -> None:
    """The injected bug (``certificate_wrong_height_set``): final blocks' certificates are
    checked against the set the replica started with. A validator that crashed, was
    removed and catches up refuses the new set's certificates."""
    caught = [
        seed
        for seed in range(4)
        if run(ReconfigurationFault.REMOVE_CRASHED, seed, bug="certificate_wrong_height_set").checker.violations
    ]
    assert caught == [0, 1, 2, 3]
