"""Bonds through the real state transition: issue, offering and allotment, coupons,
redemption, missed payments, trades and proceeds, on a chain of real signed blocks."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from mura.chain import bond_rules
from mura.chain.bonds import OfferingStatus, offering_escrow, payment_escrow
from mura.chain.errors import (
    AlreadySubscribed,
    BadCounterpartySignature,
    BadPayingConsent,
    ChainAccountRecipient,
    HolderNotApproved,
    InvalidBondTerms,
    NotABond,
    NotTradeParty,
    OfferingNotOpen,
    PaymentInProgress,
    PendingSpendExceedsBalance,
    ProceedsExceeded,
    SubscriptionOutOfBounds,
    TradeExpired,
    TradeSettled,
)
from mura.chain.keys import SignatureCache, SigningKey
from mura.chain.mempool import Mempool
from mura.chain.pending import MISSED_CURSOR_KEY
from mura.chain.state import next_due_ms
from mura.chain.transaction import (
    ApproveHolder,
    CancelSubscription,
    Mint,
    OpenOffering,
    SettleTrade,
    SpendProceeds,
    Subscribe,
    Transfer,
    paying_consent_payload,
    trade_payload,
)
from mura.tests.chain.bond_fixtures import (
    BANK,
    DAY_MS,
    FUNDS,
    RESIDENTS,
    SETTLEMENT,
    BondChain,
    bond_body,
)
from mura.tests.ledger_fixtures import ACCOUNTS, CHAIN_ID, GENESIS_TIME_MS, ISSUER, RULES

BOND = "NISHI-2031"
VILLAGE = ISSUER


def offering_body(units: int = 1_000, price: int = 10_000, **changes: Any) -> OpenOffering:
    body = OpenOffering(
        bond=BOND,
        units=units,
        price=price,
        start_ms=GENESIS_TIME_MS,
        end_ms=GENESIS_TIME_MS + 10 * DAY_MS,
        min_units=1,
        max_units=0,
        min_total=0,
    )
    return replace(body, **changes)


def approve(chain: BondChain, *accounts: bytes) -> None:
    chain.seal([chain.sign(VILLAGE, ApproveHolder(BOND, account)) for account in accounts])


def sold_bond(
    chain: BondChain, requests: dict[int, int], *, paying_key: SigningKey | None = None, **bond_changes: Any
) -> None:
    """Issue the bond (``paying_key`` consenting to pay it), offer all its units, and have
    ``RESIDENTS[i]`` subscribe ``units``; allot."""
    body = bond_body(**bond_changes)
    if paying_key is not None:
        body = replace(body, paying_consent=paying_key.sign(paying_consent_payload(CHAIN_ID, VILLAGE.public_key, body)))
    chain.run(VILLAGE, body)
    approve(chain, *(RESIDENTS[index].public_key for index in requests))
    chain.run(VILLAGE, offering_body(units=chain.balance(VILLAGE.public_key, BOND)))
    for index, units in requests.items():
        chain.run(RESIDENTS[index], Subscribe(BOND, units))
    chain.seal(at_ms=GENESIS_TIME_MS + 10 * DAY_MS)


def test_an_oversubscribed_offering_is_allotted_pro_rata_with_refunds_and_proceeds() -> None:
    chain = BondChain()
    settlement_before = chain.total(SETTLEMENT)
    sold_bond(chain, {0: 600, 1: 300, 2: 200, 3: 100}, units=1_000)
    # 1,200 asked for 1,000: shares 500, 250, 166.67, 83.33 -> floors 500, 250, 166, 83 and one
    # unit left, which goes to the largest remainder (the third: 2/3 beats 1/3).
    allotted = [chain.balance(RESIDENTS[index].public_key, BOND) for index in range(4)]
    assert allotted == [500, 250, 167, 83]
    offering = chain.offering(BOND)
    assert offering.status is OfferingStatus.SETTLED
    assert (offering.allotted, offering.unsold, offering.proceeds) == (1_000, 0, 10_000_000)
    assert offering.refunded == 200 * 10_000
    assert [s.refunded for s in chain.subscriptions(BOND)] == [1_000_000, 500_000, 330_000, 170_000]
    assert chain.balance(RESIDENTS[0].public_key, SETTLEMENT) == FUNDS - 500 * 10_000
    assert chain.balance(VILLAGE.public_key, SETTLEMENT) == FUNDS + 10_000_000
    assert chain.balance(offering_escrow(BOND), SETTLEMENT) == 0
    assert chain.balance(offering_escrow(BOND), BOND) == 0
    assert chain.total(SETTLEMENT) == settlement_before
    assert chain.total(BOND) == 1_000 == chain.state.load_asset_state(BOND).supply
    assert chain.bond_state(BOND).raised == 10_000_000


def test_an_undersubscribed_offering_gives_everyone_their_order_and_returns_the_rest() -> None:
    chain = BondChain()
    sold_bond(chain, {0: 100, 1: 50})
    assert chain.balance(RESIDENTS[0].public_key, BOND) == 100
    assert chain.balance(RESIDENTS[1].public_key, BOND) == 50
    assert chain.balance(VILLAGE.public_key, BOND) == 850
    assert chain.offering(BOND).unsold == 850


def test_an_offering_below_its_minimum_total_is_cancelled_and_everyone_refunded() -> None:
    chain = BondChain()
    chain.run(VILLAGE, bond_body())
    approve(chain, RESIDENTS[0].public_key)
    chain.run(VILLAGE, offering_body(min_total=500))
    chain.run(RESIDENTS[0], Subscribe(BOND, 100))
    assert chain.balance(RESIDENTS[0].public_key, SETTLEMENT) == FUNDS - 1_000_000
    chain.seal(at_ms=GENESIS_TIME_MS + 10 * DAY_MS)
    assert chain.offering(BOND).status is OfferingStatus.CANCELLED
    assert chain.balance(RESIDENTS[0].public_key, SETTLEMENT) == FUNDS
    assert chain.balance(VILLAGE.public_key, BOND) == 1_000


def test_subscriptions_keep_to_the_window_the_bounds_and_the_approvals() -> None:
    chain = BondChain()
    chain.run(VILLAGE, bond_body())
    approve(chain, RESIDENTS[0].public_key)
    chain.run(VILLAGE, offering_body(min_units=10, max_units=100, start_ms=GENESIS_TIME_MS + DAY_MS))
    assert isinstance(chain.refuse(RESIDENTS[0], Subscribe(BOND, 10)), OfferingNotOpen)
    at = GENESIS_TIME_MS + 2 * DAY_MS
    assert isinstance(chain.refuse(RESIDENTS[0], Subscribe(BOND, 9), at_ms=at), SubscriptionOutOfBounds)
    assert isinstance(chain.refuse(RESIDENTS[0], Subscribe(BOND, 101)), SubscriptionOutOfBounds)
    assert isinstance(chain.refuse(RESIDENTS[1], Subscribe(BOND, 10)), HolderNotApproved)
    chain.run(RESIDENTS[0], Subscribe(BOND, 50))
    assert isinstance(chain.refuse(RESIDENTS[0], Subscribe(BOND, 50)), AlreadySubscribed)
    chain.run(RESIDENTS[0], CancelSubscription(BOND))
    assert chain.balance(RESIDENTS[0].public_key, SETTLEMENT) == FUNDS
    chain.run(RESIDENTS[0], Subscribe(BOND, 60))
    assert chain.offering(BOND).subscribed == 60


def test_coupons_and_redemption_are_paid_by_the_chain_at_their_first_block() -> None:
    chain = BondChain()
    sold_bond(chain, {0: 600, 1: 300, 2: 100})
    chain.run(VILLAGE, SpendProceeds(BOND, ACCOUNTS[0].public_key, 1, "forest road repair"))
    units = {index: chain.balance(RESIDENTS[index].public_key, BOND) for index in range(3)}
    before = {index: chain.balance(RESIDENTS[index].public_key, SETTLEMENT) for index in range(3)}
    first_coupon = GENESIS_TIME_MS + 180 * DAY_MS
    assert next_due_ms(chain.state) == first_coupon
    chain.seal(at_ms=first_coupon - 1)
    assert chain.bond_state(BOND).next_payment == 0
    chain.seal(at_ms=first_coupon)
    # 0.5 % a year, twice a year, on 10,000 a unit: 25 a unit.
    for index in range(3):
        assert chain.balance(RESIDENTS[index].public_key, SETTLEMENT) == before[index] + 25 * units[index]
    record = chain.bond_state(BOND).records[0]
    assert (record.index, record.late, record.units, record.holders, record.amount, record.retained) == (
        0, False, 1_000, 3, 25_000, 0,
    )  # fmt: skip
    assert [(event.holder, event.amount) for event in chain.changes[-1].events] == sorted(
        (RESIDENTS[index].public_key, 25 * units[index]) for index in range(3)
    )
    maturity = GENESIS_TIME_MS + 360 * DAY_MS
    chain.seal(at_ms=maturity)
    assert chain.bond_state(BOND).next_payment == 3
    for index in range(3):
        assert chain.balance(RESIDENTS[index].public_key, BOND) == 0
        assert chain.balance(RESIDENTS[index].public_key, SETTLEMENT) == before[index] + units[index] * (
            25 + 25 + 10_000
        )
    assert chain.state.load_asset_state(BOND).supply == 0
    assert chain.balance(payment_escrow(BOND), SETTLEMENT) == 0
    assert next_due_ms(chain.state) is None


def test_a_missed_payment_is_retried_every_block_and_shows_as_paid_late() -> None:
    chain = BondChain()
    paying = ACCOUNTS[4]
    sold_bond(chain, {0: 10}, paying=paying.public_key, paying_key=paying)
    chain.run(paying, Transfer(SETTLEMENT, VILLAGE.public_key, FUNDS))
    first_coupon = GENESIS_TIME_MS + 180 * DAY_MS
    chain.seal(at_ms=first_coupon)
    state = chain.bond_state(BOND)
    assert (state.next_payment, state.missed_ms) == (0, first_coupon)
    chain.seal()
    # Retrying costs a look at the paying account's balance and changes nothing.
    assert chain.changes[-1].entries == {}
    assert chain.bond_state(BOND).missed_ms == first_coupon
    # 10 units * 25 = 250 due; the paying account is funded with 249, then with one more.
    chain.run(VILLAGE, Transfer(SETTLEMENT, paying.public_key, 249))
    chain.seal()
    assert chain.bond_state(BOND).next_payment == 0
    chain.run(VILLAGE, Transfer(SETTLEMENT, paying.public_key, 1))
    assert next_due_ms(chain.state) == chain.bond_state(BOND).missed_ms
    chain.seal()
    state = chain.bond_state(BOND)
    assert state.next_payment == 1
    assert state.records[0].late
    assert chain.balance(paying.public_key, SETTLEMENT) == 0


def test_a_payment_over_many_holders_goes_on_over_blocks_and_the_units_do_not_move(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bond_rules, "PAYMENTS_PER_BLOCK", 3)
    chain = BondChain()
    sold_bond(chain, {index: 10 + index for index in range(8)})
    first_coupon = GENESIS_TIME_MS + 180 * DAY_MS
    holders = [resident.public_key for resident in RESIDENTS[:8]]
    before = {holder: chain.balance(holder, SETTLEMENT) for holder in holders}
    chain.seal(at_ms=first_coupon)
    assert chain.bond_state(BOND).paying
    assert chain.state.load_asset_state(BOND).locked
    trade = Transfer(BOND, RESIDENTS[1].public_key, 1)
    assert isinstance(chain.refuse(RESIDENTS[0], trade), PaymentInProgress)
    # Nine holders (the village keeps the unsold units, and is not paid): the first block
    # starts the payment and visits two, the next (which refused the transfer) and the one
    # after three each, the fourth finds one left.
    chain.seal()
    assert chain.state.load_asset_state(BOND).locked
    chain.seal()
    assert not chain.state.load_asset_state(BOND).locked
    assert chain.bond_state(BOND).records[0].holders == 8
    for holder in holders:
        assert chain.balance(holder, SETTLEMENT) == before[holder] + 25 * chain.balance(holder, BOND)
    chain.run(RESIDENTS[0], trade)


def test_an_odd_first_period_pays_by_actual_days_and_rounding_stays_with_the_paying_account() -> None:
    chain = BondChain()
    # 0.455 % a year, first period 92 days: 10,000 * 0.00455 * 92 / 365 = 11.468... a unit.
    sold_bond(chain, {0: 1, 1: 3}, rate=4_550, first_period_days=92)
    before = [chain.balance(RESIDENTS[index].public_key, SETTLEMENT) for index in range(2)]
    village = chain.balance(VILLAGE.public_key, SETTLEMENT)
    chain.seal(at_ms=GENESIS_TIME_MS + 180 * DAY_MS)
    received = [chain.balance(RESIDENTS[index].public_key, SETTLEMENT) - before[index] for index in range(2)]
    assert received == [11, 34]  # floor(11.468...), floor(34.405...)
    record = chain.bond_state(BOND).records[0]
    # Reserved floor(4 * 11.468...) = 45, paid 45: nothing left on 4 units here.
    assert (record.amount, record.retained) == (45, 0)
    assert chain.balance(VILLAGE.public_key, SETTLEMENT) == village - 45


def test_a_trade_settles_both_legs_once_with_both_signatures() -> None:
    chain = BondChain()
    sold_bond(chain, {0: 100, 1: 100})
    seller, buyer = RESIDENTS[0], RESIDENTS[1]
    trade = SettleTrade(
        BOND, seller.public_key, buyer.public_key, 40, 390_000, chain.time_ms + DAY_MS, b"ref-1", bytes(64)
    )
    trade = replace(trade, counterparty_signature=seller.sign(trade_payload(CHAIN_ID, trade)))
    assert isinstance(chain.refuse(RESIDENTS[2], trade), NotTradeParty)
    forged = replace(trade, counterparty_signature=buyer.sign(trade_payload(CHAIN_ID, trade)))
    assert isinstance(chain.refuse(buyer, forged), BadCounterpartySignature)
    seller_cash = chain.balance(seller.public_key, SETTLEMENT)
    chain.run(buyer, trade)
    assert chain.balance(seller.public_key, BOND) == 60
    assert chain.balance(buyer.public_key, BOND) == 140
    assert chain.balance(seller.public_key, SETTLEMENT) == seller_cash + 390_000
    assert isinstance(chain.refuse(buyer, trade), TradeSettled)
    late = replace(trade, reference=b"ref-2", deadline_ms=chain.time_ms)
    late = replace(late, counterparty_signature=seller.sign(trade_payload(CHAIN_ID, late)))
    assert isinstance(chain.refuse(buyer, late), TradeExpired)
    outsider = replace(trade, buyer=ACCOUNTS[0].public_key, reference=b"ref-3")
    outsider = replace(outsider, counterparty_signature=seller.sign(trade_payload(CHAIN_ID, outsider)))
    assert isinstance(chain.refuse(ACCOUNTS[0], outsider), HolderNotApproved)


def test_proceeds_are_spent_by_purpose_up_to_what_was_raised() -> None:
    chain = BondChain()
    sold_bond(chain, {0: 10})
    assert chain.bond_state(BOND).raised == 100_000
    chain.run(VILLAGE, SpendProceeds(BOND, ACCOUNTS[1].public_key, 60_000, "gravel"))
    assert isinstance(
        chain.refuse(VILLAGE, SpendProceeds(BOND, ACCOUNTS[1].public_key, 40_001, "gravel")), ProceedsExceeded
    )
    escrow = offering_escrow(BOND)
    assert isinstance(chain.refuse(VILLAGE, SpendProceeds(BOND, escrow, 1, "x")), ChainAccountRecipient)
    assert isinstance(chain.refuse(VILLAGE, Transfer(SETTLEMENT, escrow, 1)), ChainAccountRecipient)
    assert chain.bond_state(BOND).spent == 60_000


def test_bond_terms_are_checked_field_by_field() -> None:
    chain = BondChain()
    cases = [
        ("settlement", bond_body(settlement="NAC2")),
        ("rate", bond_body(rate=1_000_001)),
        ("frequency", bond_body(frequency=3)),
        ("coupon_times", bond_body(coupons=(GENESIS_TIME_MS + 2 * DAY_MS, GENESIS_TIME_MS + DAY_MS))),
        ("maturity_ms", bond_body(maturity_ms=GENESIS_TIME_MS + 100 * DAY_MS)),
        ("units", bond_body(units=0)),
        ("face", bond_body(face=0)),
        ("coupon_times", bond_body(
            issue_ms=GENESIS_TIME_MS - 10 * DAY_MS, coupons=(GENESIS_TIME_MS - DAY_MS, GENESIS_TIME_MS + 10 * DAY_MS)
        )),
    ]
    for field, body in cases:
        error = chain.refuse(VILLAGE, body)
        assert isinstance(error, InvalidBondTerms), (field, error)
        assert error.details["field"] == field, (field, error.message)
    assert isinstance(chain.refuse(VILLAGE, Subscribe("NAC", 1)), NotABond)


def test_a_payment_that_fell_due_while_an_earlier_one_was_missed_is_late_too() -> None:
    chain = BondChain()
    paying = ACCOUNTS[4]
    sold_bond(chain, {0: 10}, paying=paying.public_key, paying_key=paying)
    chain.run(paying, Transfer(SETTLEMENT, VILLAGE.public_key, FUNDS))
    chain.seal(at_ms=GENESIS_TIME_MS + 180 * DAY_MS)
    second = GENESIS_TIME_MS + 360 * DAY_MS
    chain.seal(at_ms=second + 1)
    chain.run(VILLAGE, Transfer(SETTLEMENT, paying.public_key, 2 * 250 + 10 * 10_000))
    chain.seal()
    state = chain.bond_state(BOND)
    assert state.next_payment == 3
    assert [record.late for record in state.records] == [True, True, True]
    assert chain.balance(RESIDENTS[0].public_key, SETTLEMENT) == FUNDS - 100_000 + 500 + 100_000


def test_a_payment_never_starts_in_the_block_that_allots_the_offering() -> None:
    chain = BondChain()
    chain.run(VILLAGE, bond_body(rate=0, maturity_ms=GENESIS_TIME_MS + 20 * DAY_MS))
    approve(chain, RESIDENTS[0].public_key, RESIDENTS[1].public_key)
    chain.run(VILLAGE, offering_body(end_ms=GENESIS_TIME_MS + 20 * DAY_MS - 1))
    chain.run(RESIDENTS[0], Subscribe(BOND, 30))
    chain.run(RESIDENTS[1], Subscribe(BOND, 20))
    # One block reaches both the offering's end and the maturity: it allots; the next redeems.
    chain.seal(at_ms=GENESIS_TIME_MS + 30 * DAY_MS)
    assert chain.offering(BOND).status is OfferingStatus.SETTLED
    assert chain.bond_state(BOND).next_payment == 0
    assert chain.balance(RESIDENTS[0].public_key, BOND) == 30
    chain.seal()
    record = chain.bond_state(BOND).records[0]
    assert (record.holders, record.units, record.amount, record.retained) == (2, 50, 500_000, 0)
    assert chain.balance(RESIDENTS[0].public_key, BOND) == 0
    assert chain.state.load_asset_state(BOND).supply == 0


def test_a_paying_account_other_than_the_issuer_must_consent_to_the_terms() -> None:
    chain = BondChain()
    victim = ACCOUNTS[3]
    error = chain.refuse(VILLAGE, bond_body(paying=victim.public_key))
    assert isinstance(error, BadPayingConsent)
    consented = bond_body(paying=victim.public_key)
    other_terms = replace(consented, face=consented.face + 1)
    signature = victim.sign(paying_consent_payload(CHAIN_ID, VILLAGE.public_key, other_terms))
    assert isinstance(chain.refuse(VILLAGE, replace(consented, paying_consent=signature)), BadPayingConsent)
    signature = victim.sign(paying_consent_payload(CHAIN_ID, VILLAGE.public_key, consented))
    chain.run(VILLAGE, replace(consented, paying_consent=signature))
    assert chain.terms(BOND).paying == victim.public_key


def test_the_pool_counts_what_subscriptions_and_trades_spend() -> None:
    chain = BondChain()
    sold_bond(chain, {0: 100})
    approve(chain, RESIDENTS[1].public_key)
    chain.run(VILLAGE, bond_body("NISHI-2032"))
    chain.run(VILLAGE, ApproveHolder("NISHI-2032", RESIDENTS[0].public_key))
    chain.run(VILLAGE, replace(offering_body(), bond="NISHI-2032", end_ms=GENESIS_TIME_MS + 100 * DAY_MS))
    pool = Mempool(rules=RULES, signatures=SignatureCache())
    now_ms = chain.time_ms
    resident, buyer = RESIDENTS[0], RESIDENTS[1]
    cash = chain.balance(resident.public_key, SETTLEMENT)
    # A subscription for 800 units at 10,000 spends 8,000,000 of the resident's cash...
    pool.add(chain.sign(resident, Subscribe("NISHI-2032", 800)), chain.state, now=0.0, timestamp_ms=now_ms)
    # ...so paying away the rest fits, and one more yen does not.
    spend_rest = Transfer(SETTLEMENT, ACCOUNTS[0].public_key, cash - 8_000_000)
    with pytest.raises(PendingSpendExceedsBalance):
        pool.add(chain.sign(resident, replace(spend_rest, amount=spend_rest.amount + 1)), chain.state, now=0.0,
                 timestamp_ms=now_ms)  # fmt: skip
    chain.nonces[resident.public_key] -= 1
    pool.add(chain.sign(resident, spend_rest), chain.state, now=0.0, timestamp_ms=now_ms)
    # Two sales of 60 of the resident's 100 units: the second does not fit.
    for reference in (b"first", b"second"):
        trade = SettleTrade(
            BOND, resident.public_key, buyer.public_key, 60, 600_000, now_ms + DAY_MS, reference, bytes(64)
        )
        trade = replace(trade, counterparty_signature=buyer.sign(trade_payload(CHAIN_ID, trade)))
        if reference == b"first":
            pool.add(chain.sign(resident, trade), chain.state, now=0.0, timestamp_ms=now_ms)
        else:
            with pytest.raises(PendingSpendExceedsBalance):
                pool.check(chain.sign(resident, trade), chain.state, now=0.0, timestamp_ms=now_ms)


def test_missed_bonds_beyond_a_blocks_looks_are_looked_at_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bond_rules, "MISSED_CHECKS_PER_BLOCK", 2)
    chain = BondChain()
    maturity = GENESIS_TIME_MS + 20 * DAY_MS
    bonds = [f"VILLAGE-{index}" for index in range(5)]
    for bond in bonds:
        chain.run(VILLAGE, bond_body(bond, units=10, face=FUNDS, rate=0, maturity_ms=maturity))
        chain.run(VILLAGE, ApproveHolder(bond, RESIDENTS[0].public_key))
        chain.run(VILLAGE, Transfer(bond, RESIDENTS[0].public_key, 10))
    chain.seal(at_ms=maturity)
    assert all(chain.bond_state(bond).missed_ms == maturity for bond in bonds)
    # Each redemption needs 10 * FUNDS; the bank pays the village enough for all five.
    chain.run(BANK, Mint(SETTLEMENT, VILLAGE.public_key, 5 * 10 * FUNDS))
    redeemed: list[int] = []
    for _ in range(3):
        chain.seal()
        redeemed.append(sum(chain.bond_state(bond).next_payment == 1 for bond in bonds))
    # Two bonds a block: two, four, then all five, each in turn.
    assert redeemed == [2, 4, 5]
    assert chain.state.load_entry(MISSED_CURSOR_KEY) is None
    assert chain.balance(RESIDENTS[0].public_key, SETTLEMENT) == FUNDS + 5 * 10 * FUNDS
