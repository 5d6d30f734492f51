"""The simulated clients: what they send exercises every kind the ledger has, within its rules."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from mura.chain import codec
from mura.chain.bond_rules import load_bond_state, load_offering
from mura.chain.bonds import OfferingStatus
from mura.chain.keys import verify_signature
from mura.chain.pending import asset_state_key, frozen_key
from mura.chain.state import MemoryState
from mura.chain.transaction import KINDS, Approve, Propose, SettleTrade, SpendProceeds, Transfer, trade_payload
from mura.sim.ledger import make_genesis, validator_keys
from mura.sim.scenario import draw_scenario
from mura.sim.simulation import Simulation, run_scenario
from mura.sim.workload import (
    BOND,
    CHAIN_ID,
    CLIENT_KEYS,
    NAC,
    PAYING,
    ROAD,
    TREASURY,
    VOUCHER,
    Plan,
    TransactionSigner,
    next_transactions,
)


def test_the_seed_draws_the_plan() -> None:
    assert Plan.draw(3) == Plan.draw(3)
    plans = {Plan.draw(seed) for seed in range(10)}
    assert len(plans) == 10
    assert len({plan.voucher_expiry_ms for plan in plans}) > 1
    for plan in plans:
        assert TREASURY not in plan.bond_holders and TREASURY != plan.frozen_client


def test_final_chains_carry_every_kind_and_an_expiry() -> None:
    seeds = range(8)
    totals: Counter[str] = Counter()
    for seed in seeds:
        result = run_scenario(draw_scenario(seed))
        assert result.violations == [], (seed, result.violations)
        totals.update(result.ledger)
    # Governance transactions come with the reconfiguration scenarios, not with the clients' workload.
    for kind in KINDS.keys() - {Propose.KIND, Approve.KIND}:
        assert totals[kind] > 0, kind
    assert totals["expired_assets"] == len(seeds)
    # The village's bond: offerings allotted (some oversubscribed), coupons and redemptions
    # paid (some late, after the treasury topped the paying account up).
    for figure in ("offerings_oversubscribed", "bond_payments_late", "bonds_redeemed"):
        assert totals[figure] > 0, figure


def test_vouchers_move_until_they_lapse_and_bonds_only_between_approved_holders() -> None:
    simulation = Simulation(draw_scenario(3))
    assert simulation.run().violations == []
    plan = simulation.genesis.plan
    blocks = [simulation.checker.blocks[height] for height in sorted(simulation.checker.blocks)]
    transfers = [
        (block.header.timestamp_ms, transaction.sender, transaction.body)
        for block in blocks
        for transaction in block.transactions
        if isinstance(transaction.body, Transfer)
    ]
    vouchers = [stamp for stamp, _, body in transfers if body.asset == VOUCHER]
    assert vouchers and max(vouchers) < plan.voucher_expiry_ms < blocks[-1].header.timestamp_ms
    treasury = CLIENT_KEYS[TREASURY].public_key
    allowed = {treasury, *(CLIENT_KEYS[holder].public_key for holder in plan.bond_holders)}
    bonds = [(sender, body.recipient) for _, sender, body in transfers if body.asset == BOND]
    assert any(sender != treasury for sender, _ in bonds)
    assert all(sender in allowed and recipient in allowed for sender, recipient in bonds)
    state = simulation.checker.final_state
    assert state is not None and state.balances(VOUCHER).keys() <= {treasury}


def test_a_frozen_client_neither_sends_nor_receives_its_coin() -> None:
    genesis = make_genesis([key.public_key for key in validator_keys(4)], seed=1)
    state = MemoryState()
    state.commit(genesis.changes)
    frozen = CLIENT_KEYS[genesis.plan.frozen_client].public_key
    # A freeze as the state transition leaves it: the flag, and the asset's count of frozen accounts.
    state.entries[frozen_key(NAC, frozen)] = codec.encode(True)
    state.entries[asset_state_key(NAC)] = replace(state.load_asset_state(NAC), frozen=1).encode()
    offered = next_transactions(state, plan=genesis.plan, signer=TransactionSigner(), timestamp_ms=10)
    assert len(offered) >= len(CLIENT_KEYS) - 1
    for transaction in offered:
        body = transaction.body
        if isinstance(body, Transfer) and body.asset == NAC:
            assert frozen not in (transaction.sender, body.recipient)


def test_residents_subscribe_for_more_than_is_on_sale_and_trade_what_they_were_allotted() -> None:
    simulation = Simulation(draw_scenario(3))
    assert simulation.run().violations == []
    state = simulation.checker.final_state
    assert state is not None
    offering = load_offering(state, ROAD)
    assert offering is not None and offering.status is OfferingStatus.SETTLED
    assert offering.subscribed > offering.units == offering.allotted
    residents = {CLIENT_KEYS[client].public_key for client in range(1, len(CLIENT_KEYS))}
    trades = [
        (transaction.sender, transaction.body)
        for block in simulation.checker.blocks.values()
        for transaction in block.transactions
        if isinstance(transaction.body, SettleTrade)
    ]
    assert trades
    for sender, trade in trades:
        assert {trade.seller, trade.buyer} <= residents and sender in (trade.seller, trade.buyer)
        counterparty = trade.buyer if sender == trade.seller else trade.seller
        assert verify_signature(counterparty, trade.counterparty_signature, trade_payload(CHAIN_ID, trade))
    records = load_bond_state(state, ROAD).records
    assert [record.index for record in records] == [0, 1, 2]
    assert sum(record.amount for record in records[:2]) > 0 and state.load_asset_state(ROAD).supply == 0


def test_a_missed_payment_is_topped_up_by_the_treasury_and_paid_late() -> None:
    """A plan whose paying account holds too little for the first coupon."""
    seed = next(seed for seed in range(100) if Plan.draw(seed).road.paying_funds < 10_000)
    simulation = Simulation(replace(draw_scenario(seed), payments_per_block=None))
    assert simulation.run().violations == []
    state = simulation.checker.final_state
    assert state is not None
    records = load_bond_state(state, ROAD).records
    assert records and records[0].late
    top_ups = [
        transaction.body
        for block in simulation.checker.blocks.values()
        for transaction in block.transactions
        if isinstance(transaction.body, (Transfer, SpendProceeds)) and transaction.body.recipient == PAYING
    ]
    assert top_ups
