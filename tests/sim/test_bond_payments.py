"""Payments the chain makes itself, under faults aimed at them: a coupon or the redemption falls
due while the view changes, or while a validator is behind and catches up across the paying
blocks; every validator must end on the same state, with the payment made exactly once."""

from __future__ import annotations

import pytest

from mura.chain.bond_rules import load_bond, load_bond_state
from mura.chain.bonds import PaymentRecord
from mura.sim.campaign import SAFETY
from mura.sim.clients import ROAD
from mura.sim.scenario import (
    CATCH_UP_FAULTS,
    VIEW_CHANGE_FAULTS,
    PaymentFault,
    draw_scenario,
    payment_fault_scenario,
    payment_time,
)
from mura.sim.simulation import Simulation, run_scenario

SEEDS = range(4)


def run_payment_fault(seed: int, fault: PaymentFault, payment: int) -> tuple[Simulation, PaymentRecord]:
    """Run the scenario; check that it kept every property, that the bond was issued as
    planned, that every honest node reached the block that finished ``payment`` with the
    state the final chain has there, and that the payment was made once, over its events."""
    simulation = Simulation(payment_fault_scenario(seed, fault=fault, payment=payment))
    result = simulation.run()
    assert result.violations == [], f"seed {seed}: {result.violations}"
    state = simulation.checker.final_state
    assert state is not None
    terms = load_bond(state, ROAD)
    assert terms is not None and terms.payment_time(payment) == payment_time(seed, payment)
    records = [record for record in load_bond_state(state, ROAD).records if record.index == payment]
    assert len(records) == 1, f"seed {seed}: payment {payment} not made"
    record = records[0]
    made = simulation.checker.bond_audit.payments[(ROAD, payment)]
    assert (len(made.paid), made.amount) == (record.holders, record.amount)
    blocks = simulation.checker.blocks
    for node in simulation.honest_nodes():
        assert node.ledger.final_height() >= record.height
        root = blocks[node.ledger.final_height()].header.state_root
        assert node.ledger.state.lattice.root() == root, f"seed {seed}: node {node.node_id}'s state differs"
    return simulation, record


def paying_heights(simulation: Simulation, due_ms: int, record: PaymentRecord) -> range:
    """From the first block whose time reaches the payment to the block that finished it."""
    blocks = simulation.checker.blocks
    first = min(height for height, block in blocks.items() if block.header.timestamp_ms >= due_ms)
    return range(first, record.height + 1)


@pytest.mark.parametrize("fault", VIEW_CHANGE_FAULTS, ids=lambda fault: fault.value)
@pytest.mark.parametrize("payment", [0, 2], ids=["coupon", "redemption"])
def test_a_payment_falling_during_a_view_change_is_made_once_and_agreed(fault: PaymentFault, payment: int) -> None:
    """The primary fails just before the payment time: the paying blocks come from more
    than one proposer (the payment, spread over blocks, goes on in the next view)."""
    spread = 0
    for seed in SEEDS:
        simulation, record = run_payment_fault(seed, fault, payment)
        heights = paying_heights(simulation, payment_time(seed, payment), record)
        blocks = simulation.checker.blocks
        proposers = {blocks[height].header.proposer for height in (heights.start - 1, *heights)}
        assert len(proposers) > 1, f"seed {seed}: no view change around the payment"
        spread += len(heights) > 1
    assert spread >= len(SEEDS) // 2


@pytest.mark.parametrize("fault", CATCH_UP_FAULTS, ids=lambda fault: fault.value)
@pytest.mark.parametrize("payment", [1, 2], ids=["coupon", "redemption"])
def test_a_validator_catching_up_across_the_paying_blocks_agrees(fault: PaymentFault, payment: int) -> None:
    """A validator cut off, wiped, or started late: it commits the paying blocks the others
    made without it only after its fault is over, from what they serve it, and ends on the
    same state."""
    for seed in SEEDS:
        scenario = payment_fault_scenario(seed, fault=fault, payment=payment)
        if fault is PaymentFault.BEHIND:
            (late,) = scenario.partitions[0].side
            back_ms = scenario.partitions[0].end_ms
        elif fault is PaymentFault.WIPED:
            late, back_ms = scenario.crashes[0].node, scenario.crashes[0].at_ms + scenario.crashes[0].down_ms
        else:
            late, back_ms = scenario.late_starts[0]
        simulation, record = run_payment_fault(seed, fault, payment)
        checker = simulation.checker
        heights = paying_heights(simulation, payment_time(seed, payment), record)
        assert checker.first_final_ms[heights.start] < back_ms, f"seed {seed}: the payment began after the fault"
        for height in heights:
            if checker.first_final_ms[height] < back_ms:
                assert checker.commit_ms[(late, height)] >= back_ms, f"seed {seed}: node {late} was not behind"


@pytest.mark.parametrize("bug", ["payment_after_transactions", "payment_by_local_clock"])
def test_payment_bugs_are_caught(bug: str) -> None:
    """Paying the holders the block leaves (not those before it), and taking a payment as due
    by a validator's own clock: both show in the aimed family and in the campaign's seeds."""
    aimed = [run_scenario(payment_fault_scenario(seed, bug=bug)) for seed in range(3)]
    drawn = [run_scenario(draw_scenario(seed, bug=bug)) for seed in range(3)]
    assert any(result.violations for result in aimed) and any(result.violations for result in drawn)
    kinds = {violation.kind for result in aimed + drawn for violation in result.violations}
    assert kinds & (SAFETY | {"honest_penalized"}), kinds


def test_campaign_seeds_include_payment_faults_and_spread_payments() -> None:
    seeds = range(200)
    aimed = [
        seed for seed in seeds if draw_scenario(seed) == payment_fault_scenario(seed, validators=4 + 3 * (seed % 2))
    ]
    assert 3 <= len(aimed) <= 20
    spread = [seed for seed in seeds if draw_scenario(seed).payments_per_block is not None]
    assert 40 <= len(spread) <= 100
