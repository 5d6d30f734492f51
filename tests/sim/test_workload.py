"""The simulated clients: what they send exercises every kind the ledger has, within its rules."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from mura.chain import codec
from mura.chain.pending import asset_state_key, frozen_key
from mura.chain.state import MemoryState
from mura.chain.transaction import KINDS, Transfer
from mura.sim.ledger import make_genesis, validator_keys
from mura.sim.scenario import draw_scenario
from mura.sim.simulation import Simulation, run_scenario
from mura.sim.workload import BOND, CLIENT_KEYS, NAC, TREASURY, VOUCHER, Plan, TransactionSigner, next_transactions


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
    for kind in KINDS:
        assert totals[kind] > 0, kind
    assert totals["expired_assets"] == len(seeds)


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
