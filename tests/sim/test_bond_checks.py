"""The audit of bonds (``sim/bond_checks.py``) on chains built block by block with the real state
transition: quiet on a bond's whole life, and loud on what breaks its books."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mura.chain import state as state_module
from mura.chain.block import Block
from mura.chain.bond_rules import load_bond_state
from mura.chain.keys import SignatureCache
from mura.chain.pending import PendingState, StateChanges
from mura.chain.state import MemoryState, apply_block, build_block
from mura.chain.transaction import (
    ApproveHolder,
    Body,
    IssueBond,
    OpenOffering,
    SettleTrade,
    SpendProceeds,
    Subscribe,
    Transfer,
    sign_transaction,
)
from mura.sim.bond_checks import BondAudit
from mura.sim.bond_workload import BondPlan
from mura.sim.bugs import injected
from mura.sim.clients import CHAIN_ID, CLIENT_KEYS, JPYT, PAYING, ROAD, TREASURY, TransactionSigner
from mura.sim.ledger import Genesis, make_genesis, replay_chain, validator_keys

FIRST_COUPON, SECOND_COUPON, MATURITY = 2_000, 3_000, 4_000
RESIDENT, OTHER = 1, 2


def seed_with_paying_funds(wanted: int) -> int:
    """A seed whose genesis gives the bond's paying account ``wanted`` JPYT."""
    return next(seed for seed in range(100) if BondPlan.draw(seed).paying_funds == wanted)


class Chain:
    """A chain built block by block from the simulator's genesis, each block with the
    transactions a test names (every one must be accepted)."""

    def __init__(self, *, paying_funds: int = 10**8) -> None:
        validators = [key.public_key for key in validator_keys(4)]
        self.genesis: Genesis = make_genesis(validators, seed=seed_with_paying_funds(paying_funds))
        self.state = MemoryState()
        self.state.commit(self.genesis.changes)
        self.head = self.genesis.block.header
        self.blocks: list[Block] = []
        self.signatures = SignatureCache()

    def block(self, timestamp_ms: int, *sent: tuple[int, Body]) -> StateChanges:
        nonces: dict[int, int] = {}
        transactions = []
        for client, body in sent:
            address = CLIENT_KEYS[client].public_key
            nonce = nonces.get(client, self.state.load_account(address).nonce)
            transactions.append(sign_transaction(CLIENT_KEYS[client], chain_id=CHAIN_ID, nonce=nonce, body=body))
            nonces[client] = nonce + 1
        built = build_block(
            self.state,
            self.head,
            transactions,
            proposer=self.genesis.validators[0],
            timestamp_ms=timestamp_ms,
            rules=self.genesis.rules,
            signatures=self.signatures,
        )
        assert built.refused == [], built.refused
        self.state.commit(built.changes)
        self.head = built.block.header
        self.blocks.append(built.block)
        return built.changes

    def audit(self) -> BondAudit:
        audit = BondAudit()
        state = replay_chain(self.genesis, self.blocks, audit=audit)
        audit.check_final(state)
        return audit


def issue(*, offering_end_ms: int = FIRST_COUPON) -> list[tuple[int, Body]]:
    """The treasury issues the bond (paid from ``PAYING``), approves two residents and opens an
    offering of 600 of its 1,000 units that ends at ``offering_end_ms``."""
    bond = IssueBond(
        ROAD, "Forest Road Bond", 1_000, b"", "restricted", JPYT, 10_000, 20_000, 2, 0,
        (FIRST_COUPON, SECOND_COUPON), MATURITY, 1_000, PAYING, b"", "forest road repair", True,
    )  # fmt: skip
    bond = TransactionSigner().consent(bond)
    approvals = [(TREASURY, ApproveHolder(ROAD, CLIENT_KEYS[client].public_key)) for client in (RESIDENT, OTHER)]
    offering = OpenOffering(ROAD, 600, 9_950, 0, offering_end_ms, 10, 500, 0)
    return [(TREASURY, bond), *approvals, (TREASURY, offering)]


def subscriptions() -> list[tuple[int, Body]]:
    """400 and 300 units asked of 600: oversubscribed."""
    return [(RESIDENT, Subscribe(ROAD, 400)), (OTHER, Subscribe(ROAD, 300))]


def trade(units: int) -> tuple[int, Body]:
    """The resident sells ``units`` to the other one, who signs the terms."""
    offer = SettleTrade(
        ROAD, CLIENT_KEYS[RESIDENT].public_key, CLIENT_KEYS[OTHER].public_key, units, units * 9_950, 10**9,
        b"t1", b"",
    )  # fmt: skip
    return RESIDENT, TransactionSigner().countersign(OTHER, offer)


def whole_life(chain: Chain) -> None:
    chain.block(100, *issue())
    chain.block(300, *subscriptions())
    chain.block(FIRST_COUPON)  # allots
    chain.block(FIRST_COUPON + 100)  # pays the first coupon
    chain.block(FIRST_COUPON + 200, trade(50))
    chain.block(SECOND_COUPON)
    spend = SpendProceeds(ROAD, CLIENT_KEYS[OTHER].public_key, 1_000, "forest road repair")
    chain.block(SECOND_COUPON + 100, (TREASURY, spend))
    chain.block(MATURITY)


def test_a_bond_from_issue_to_redemption_keeps_its_books() -> None:
    chain = Chain()
    whole_life(chain)
    audit = chain.audit()
    assert audit.problems == []
    bond = load_bond_state(chain.state, ROAD)
    assert [(record.index, record.holders, record.late) for record in bond.records] == [
        (0, 2, False),
        (1, 2, False),
        (2, 2, False),
    ]
    assert chain.state.load_asset_state(ROAD).supply == 0
    assert audit.steps_due == {3, 4, 6, 8}


def test_a_missed_coupon_paid_late_keeps_its_books() -> None:
    chain = Chain(paying_funds=1_000)
    chain.block(100, *issue())
    chain.block(300, *subscriptions())
    chain.block(FIRST_COUPON)
    chain.block(FIRST_COUPON + 100)  # missed: 1,000 JPYT of 60,000
    chain.block(FIRST_COUPON + 200, (TREASURY, Transfer(JPYT, PAYING, 59_000, "coupon fund")))
    chain.block(FIRST_COUPON + 300)  # paid late
    assert chain.audit().problems == []
    assert [record.late for record in load_bond_state(chain.state, ROAD).records] == [True]


def test_a_holder_paid_twice_is_reported() -> None:
    chain = Chain()
    whole_life(chain)
    audit = BondAudit()
    state = MemoryState()
    state.commit(chain.genesis.changes)
    head = chain.genesis.block.header
    for block in chain.blocks:
        before = audit.views()
        changes = apply_block(state, head, block, rules=chain.genesis.rules, signatures=SignatureCache())
        if changes.events:
            changes = replace(changes, events=changes.events + changes.events[:1])
        audit.check_block(state, before, block, changes)
        state.commit(changes)
        audit.check_after(state, before, block, changes)
        head = block.header
    assert any("twice" in problem for problem in audit.problems), audit.problems


def test_a_chain_that_skips_its_own_steps_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the bond steps the offering is never allotted and the coupon never paid."""

    def nothing(pending: PendingState) -> None:
        return None

    monkeypatch.setattr(state_module, "process_bonds", nothing)
    chain = Chain()
    chain.block(100, *issue())
    chain.block(300, *subscriptions())
    chain.block(FIRST_COUPON + 100)
    problems = chain.audit().problems
    assert any("not allotted" in problem for problem in problems), problems
    assert any("neither made, under way nor missed" in problem for problem in problems), problems


def test_a_payment_made_after_the_block_that_funds_it_is_reported() -> None:
    """The injected ``payment_after_transactions``: the late coupon is paid in the very block
    that tops the paying account up, out of money the account did not hold when it began."""
    with injected("payment_after_transactions"):
        chain = Chain(paying_funds=1_000)
        chain.block(100, *issue())
        chain.block(300, *subscriptions())
        chain.block(FIRST_COUPON)
        chain.block(FIRST_COUPON + 100)
        chain.block(FIRST_COUPON + 200, (TREASURY, Transfer(JPYT, PAYING, 59_000, "coupon fund")))
        problems = chain.audit().problems
    assert any("made though the paying account held 1000" in problem for problem in problems), problems


def test_a_block_reaching_the_offerings_end_and_the_first_coupon_allots_and_the_next_pays() -> None:
    """A payment never starts in the block that allotted the offering: the next block pays the
    holders the allotment made. (Before this was the rule, the coupon's own queue entry was
    visited after the allotment in the same block, and paid nobody on the units allotted.)"""
    chain = Chain()
    chain.block(100, *issue(offering_end_ms=1_500))
    chain.block(300, *subscriptions())
    chain.block(FIRST_COUPON)  # reaches the offering's end (1,500) and the first coupon (2,000)
    chain.block(FIRST_COUPON + 100)
    records = load_bond_state(chain.state, ROAD).records
    assert [(record.index, record.holders, record.units) for record in records] == [(0, 2, 600)]
    assert chain.audit().problems == []
