"""Hand-computed amounts of bonds: coupons, the redemption and allotments.

Every expected number below was worked out by hand (the working is in the comment
beside it), not by calling the code. Each case is checked twice: against the
functions of ``chain.bonds`` (``coupon_amount``, ``BondTerms.payment_amount``,
``allot``), and through the real state transition, where what each holder's balance
actually gains, what the paying account pays and what the records say must equal
the table.

Throughout: the rate is in millionths a year (4_550 is 0.455 %), a regular coupon
is face * units * rate / frequency, an odd first period pays face * units * rate *
days / 365, and each holder's sum is rounded down once; the reserve is the same
rule on every entitled unit together, and what the per-holder floors leave of it
(``retained``) stays with the paying account.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest

from mura.chain import bond_rules
from mura.chain.bonds import (
    BondTerms,
    OfferingStatus,
    allot,
    coupon_amount,
    offering_escrow,
    payment_escrow,
)
from mura.chain.keys import SigningKey
from mura.chain.transaction import (
    ApproveHolder,
    CancelSubscription,
    Freeze,
    OpenOffering,
    RevokeHolder,
    Subscribe,
    Transfer,
    paying_consent_payload,
)
from mura.tests.chain.bond_fixtures import DAY_MS, FUNDS, RESIDENTS, SETTLEMENT, BondChain, bond_body
from mura.tests.ledger_fixtures import ACCOUNTS, CHAIN_ID, GENESIS_TIME_MS, ISSUER

BOND = "NISHI-2031"
VILLAGE = ISSUER
#: Pays the coupons and the redemption in these tests, so that what it pays is seen apart from the village.
PAYING = ACCOUNTS[4]
WINDOW_END_MS = GENESIS_TIME_MS + 10 * DAY_MS


@dataclass(frozen=True)
class CouponCase:
    """A bond's coupon terms, what ``RESIDENTS[i]`` holds, and by hand what each payment gives."""

    name: str
    face: int
    rate: int
    frequency: int
    first_period_days: int
    #: Coupon times, in days after the issue.
    coupon_days: tuple[int, ...]
    #: Units ``RESIDENTS[i]`` holds.
    holdings: tuple[int, ...]
    #: For the first payments, what each holder receives.
    paid: tuple[tuple[int, ...], ...]
    #: For the same payments, what the per-holder floors leave with the paying account.
    retained: tuple[int, ...]


COUPON_CASES = [
    # 10,000 * 0.005 / 2 = 25 a unit, exactly: 25, 7 * 25 = 175, 40 * 25 = 1,000; nothing left.
    CouponCase("semiannual", 10_000, 5_000, 2, 0, (182, 365), (1, 7, 40), ((25, 175, 1_000),), (0,)),
    # 10,000 * 0.00455 / 4 = 11.375 a unit: 11.375 -> 11, 3 * 11.375 = 34.125 -> 34, 8 * 11.375 = 91.
    # Reserve on 12 units: 136.5 -> 136; paid 11 + 34 + 91 = 136; nothing left.
    CouponCase("quarterly", 10_000, 4_550, 4, 0, (91, 182), (1, 3, 8), ((11, 34, 91),), (0,)),
    # 1,000 * 0.003 / 12 = 0.25 a unit: 1 unit -> 0.25 -> 0, 4 -> 1, 7 -> 1.75 -> 1.
    # Reserve on 12 units: 3; paid 0 + 1 + 1 = 2; 1 left.
    CouponCase("monthly, under one yen a unit", 1_000, 3_000, 12, 0, (30, 61), (1, 4, 7), ((0, 1, 1),), (1,)),
    # 100,000 * 0.0073 / 1 = 730 a unit: 730 and 3 * 730 = 2,190; reserve 4 * 730 = 2,920.
    CouponCase("annual", 100_000, 7_300, 1, 0, (365, 730), (1, 3), ((730, 2_190),), (0,)),
    # 10,000 * 0.00455 / 2 = 22.75 a unit -> 22 for one unit; reserve floor(22.75) = 22.
    CouponCase("one unit", 10_000, 4_550, 2, 0, (182, 365), (1,), ((22,),), (0,)),
    # Twelve holders of one unit, 11.375 each -> 11; 12 * 11 = 132 paid. Reserve 12 * 11.375 = 136.5
    # -> 136: 4 left.
    CouponCase("many holders of one unit", 10_000, 4_550, 4, 0, (91, 182), (1,) * 12, ((11,) * 12,), (4,)),
    # An odd short first period of 92 days: 10,000 * 0.00455 * 92 / 365 = 4,186 / 365 = 11.4684... -> 11;
    # 3 units: 12,558 / 365 = 34.405... -> 34; 9 units: 37,674 / 365 = 103.216... -> 103.
    # Reserve on 13 units: 54,418 / 365 = 149.09... -> 149; paid 11 + 34 + 103 = 148; 1 left.
    # The second coupon is regular: 22.75 a unit: 22, 3 * 22.75 = 68.25 -> 68, 9 * 22.75 = 204.75 -> 204;
    # reserve 13 * 22.75 = 295.75 -> 295; paid 294; 1 left.
    CouponCase(
        "odd short first period",
        10_000,
        4_550,
        2,
        92,
        (92, 274, 456),
        (1, 3, 9),
        paid=((11, 34, 103), (22, 68, 204)),
        retained=(1, 1),
    ),
    # An odd long first period of 240 days (a regular one is half a year): 10,000 * 0.005 * 240 / 365
    # = 12,000 / 365 = 32.876... -> 32; 5 units: 60,000 / 365 = 164.38... -> 164; 11 units:
    # 132,000 / 365 = 361.64... -> 361. Reserve on 17 units: 204,000 / 365 = 558.9... -> 558; paid 557; 1 left.
    # The second coupon is regular, 25 a unit: 25, 125, 275; reserve 17 * 25 = 425; nothing left.
    CouponCase(
        "odd long first period",
        10_000,
        5_000,
        2,
        240,
        (240, 422, 605),
        (1, 5, 11),
        paid=((32, 164, 361), (25, 125, 275)),
        retained=(1, 0),
    ),
    # Large sums stay exact: 1,000,000 * 81 * 0.123457 / 12 = 81 * 123,457 / 12 = 10,000,017 / 12
    # = 833,334.75 -> 833,334; 3 units: 370,371 / 12 = 30,864.25 -> 30,864. Reserve on 84 units:
    # 10,370,388 / 12 = 864,199 exactly; paid 833,334 + 30,864 = 864,198; 1 left.
    CouponCase("large sums", 1_000_000, 123_457, 12, 0, (30, 61), (81, 3), ((833_334, 30_864),), (1,)),
]


def terms_of(case: CouponCase) -> BondTerms:
    times = tuple(GENESIS_TIME_MS + days * DAY_MS for days in case.coupon_days)
    return BondTerms(
        bond=BOND,
        settlement=SETTLEMENT,
        face=case.face,
        rate=case.rate,
        frequency=case.frequency,
        first_period_days=case.first_period_days,
        coupon_times=times,
        maturity_ms=times[-1],
        issue_ms=GENESIS_TIME_MS,
        paying=PAYING.public_key,
        proceeds=VILLAGE.public_key,
        use_of_proceeds="forest road repair",
        green=True,
    )


def offering(units: int, *, price: int = 10_000, min_total: int = 0) -> OpenOffering:
    return OpenOffering(BOND, units, price, GENESIS_TIME_MS, WINDOW_END_MS, 1, 0, min_total)


def issue_paid_by(chain: BondChain, paying: SigningKey, bond: str, **changes: Any) -> None:
    """Issue ``bond`` paid from ``paying``, which consents to its terms."""
    body = bond_body(bond, paying=paying.public_key, **changes)
    consent = paying.sign(paying_consent_payload(CHAIN_ID, VILLAGE.public_key, body))
    chain.run(VILLAGE, replace(body, paying_consent=consent))


def sell(chain: BondChain, holdings: tuple[int, ...], *, price: int = 1, **bond_changes: Any) -> None:
    """Issue the bond paid from ``PAYING``, offer every unit and let ``RESIDENTS[i]`` subscribe
    ``holdings[i]`` (no more than is on sale: each gets what it asked); allot at the window's end."""
    issue_paid_by(chain, PAYING, BOND, **bond_changes)
    chain.seal(
        [chain.sign(VILLAGE, ApproveHolder(BOND, RESIDENTS[index].public_key)) for index in range(len(holdings))]
    )
    chain.run(VILLAGE, offering(chain.balance(VILLAGE.public_key, BOND), price=price))
    chain.seal([chain.sign(RESIDENTS[index], Subscribe(BOND, units)) for index, units in enumerate(holdings)])
    chain.seal(at_ms=WINDOW_END_MS)
    assert [chain.balance(RESIDENTS[index].public_key, BOND) for index in range(len(holdings))] == list(holdings)


# --- coupons -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", COUPON_CASES, ids=lambda case: case.name)
def test_the_coupon_rule_gives_the_hand_computed_amounts(case: CouponCase) -> None:
    terms = terms_of(case)
    for index, paid in enumerate(case.paid):
        days = case.first_period_days if index == 0 else 0
        for units, amount in zip(case.holdings, paid, strict=True):
            assert coupon_amount(case.face, units, case.rate, case.frequency, days) == amount
            assert terms.payment_amount(index, units) == amount
        assert terms.payment_amount(index, sum(case.holdings)) == sum(paid) + case.retained[index]


@pytest.mark.parametrize("case", COUPON_CASES, ids=lambda case: case.name)
def test_holders_receive_the_hand_computed_coupons_through_the_chain(case: CouponCase) -> None:
    chain = BondChain()
    sell(
        chain,
        case.holdings,
        units=max(1_000, sum(case.holdings)),
        face=case.face,
        rate=case.rate,
        frequency=case.frequency,
        first_period_days=case.first_period_days,
        coupons=terms_of(case).coupon_times,
    )
    residents = [resident.public_key for resident in RESIDENTS[: len(case.holdings)]]
    total = chain.total(SETTLEMENT)
    for index, paid in enumerate(case.paid):
        before = [chain.balance(resident, SETTLEMENT) for resident in residents]
        paying_before = chain.balance(PAYING.public_key, SETTLEMENT)
        chain.seal(at_ms=terms_of(case).coupon_times[index])
        received = [chain.balance(resident, SETTLEMENT) - was for resident, was in zip(residents, before, strict=True)]
        assert received == list(paid)
        record = chain.bond_state(BOND).records[index]
        assert (record.index, record.late, record.units, record.holders) == (
            index,
            False,
            sum(case.holdings),
            len(paid),
        )
        assert (record.amount, record.retained) == (sum(paid), case.retained[index])
        # What rounding left came back: the paying account is down by what holders received, no more.
        assert chain.balance(PAYING.public_key, SETTLEMENT) == paying_before - sum(paid)
        assert chain.balance(payment_escrow(BOND), SETTLEMENT) == 0
        events = [(event.holder, event.units, event.amount) for event in chain.changes[-1].events]
        assert events == sorted(zip(residents, case.holdings, paid, strict=True))
    assert chain.total(SETTLEMENT) == total


def test_the_redemption_pays_face_value_and_burns_every_unit() -> None:
    chain = BondChain()
    # A zero-coupon bond of 1,000 units at 10,000 face; 1 and 4 units sold, 995 stay with the village.
    sell(chain, (1, 4), rate=0)
    residents = [RESIDENTS[0].public_key, RESIDENTS[1].public_key]
    before = [chain.balance(resident, SETTLEMENT) for resident in residents]
    paying_before = chain.balance(PAYING.public_key, SETTLEMENT)
    maturity = chain.terms(BOND).maturity_ms
    assert chain.terms(BOND).payment_amount(0, 5) == 50_000  # 10,000 * 5
    chain.seal(at_ms=maturity)
    # 10,000 * 1 and 10,000 * 4; the village's own 995 units are burned and paid nothing.
    assert [chain.balance(r, SETTLEMENT) - b for r, b in zip(residents, before, strict=True)] == [10_000, 40_000]
    assert chain.balance(PAYING.public_key, SETTLEMENT) == paying_before - 50_000
    assert [chain.balance(resident, BOND) for resident in residents] == [0, 0]
    assert chain.balance(VILLAGE.public_key, BOND) == 0
    assert chain.state.load_asset_state(BOND).supply == 0
    record = chain.bond_state(BOND).records[0]
    assert (record.units, record.holders, record.amount, record.retained) == (5, 2, 50_000, 0)


def test_the_last_coupon_and_the_redemption_fall_in_one_block() -> None:
    chain = BondChain()
    # 0.5 % twice a year on 10,000: 25 a unit; at maturity the second coupon and the face value,
    # 3 * (25 + 10,000) = 30,075 for 3 units; 2 * 25 = 50 paid earlier at the first coupon.
    sell(chain, (3,))
    resident = RESIDENTS[0].public_key
    before = chain.balance(resident, SETTLEMENT)
    chain.seal(at_ms=GENESIS_TIME_MS + 180 * DAY_MS)
    assert chain.balance(resident, SETTLEMENT) == before + 75
    chain.seal(at_ms=GENESIS_TIME_MS + 360 * DAY_MS)
    assert chain.balance(resident, SETTLEMENT) == before + 75 + 30_075
    records = chain.bond_state(BOND).records
    assert [(record.index, record.amount) for record in records] == [(0, 75), (1, 75), (2, 30_000)]
    assert chain.bond_state(BOND).next_payment == 3
    assert chain.state.load_asset_state(BOND).supply == 0


# --- allotment -----------------------------------------------------------------------------

ALLOTMENTS = [
    # Undersubscribed: 60 asked of 100, everyone gets its order.
    ("undersubscribed", 100, [10, 20, 30], [10, 20, 30]),
    # Exactly subscribed: 60 asked of 60.
    ("exactly subscribed", 60, [10, 20, 30], [10, 20, 30]),
    # Pro rata with no remainder: 50 * 20 / 100 = 10, 50 * 40 / 100 = 20 twice.
    ("pro rata exactly", 50, [20, 40, 40], [10, 20, 20]),
    # 1,200 asked of 1,000: 500, 250, 166.67 -> 166, 83.33 -> 83; one left, to the largest remainder (2/3).
    ("the issue's example", 1_000, [600, 300, 200, 100], [500, 250, 167, 83]),
    # 11 asked of 7: 7*4/11 = 2 r6, 2 r6, 7*2/11 = 1 r3, 7*1/11 = 0 r7; floors 5, 2 left: to the last
    # (remainder 7), then to the first of the two 6s.
    ("largest remainders", 7, [4, 4, 2, 1], [3, 2, 1, 1]),
    # 12 asked of 5: 5*3/12 = 1 r3 each; 1 left, every remainder equal: the earliest subscription.
    ("ties by subscription order", 5, [3, 3, 3, 3], [2, 1, 1, 1]),
    # 3 asked of 2: 0 r2 each; 2 left: the first two.
    ("ties among single units", 2, [1, 1, 1], [1, 1, 0]),
    # 101 asked of 10: 10*1/101 = 0 r10, 10*100/101 = 9 r91; the one left goes to the larger remainder.
    ("a small order can get nothing", 10, [1, 100], [0, 10]),
]


@pytest.mark.parametrize(("name", "units", "requests", "expected"), ALLOTMENTS, ids=[case[0] for case in ALLOTMENTS])
def test_allot_gives_the_hand_computed_shares(name: str, units: int, requests: list[int], expected: list[int]) -> None:
    assert allot(units, requests) == expected


@dataclass
class Sale:
    """An offering of ``units`` at 10,000 a unit to ``RESIDENTS`` and what each had before."""

    chain: BondChain
    units: int
    settlement_before: dict[int, int]
    total_before: int


PRICE = 10_000


def open_sale(units: int, orders: list[tuple[int, int]], *, min_total: int = 0) -> Sale:
    """Issue a bond of 1,000 units, offer ``units`` of them, and place ``orders`` (resident
    index, units) in that order; the window is still open."""
    chain = BondChain()
    chain.run(VILLAGE, bond_body(BOND))
    residents = sorted({index for index, _ in orders})
    chain.seal([chain.sign(VILLAGE, ApproveHolder(BOND, RESIDENTS[index].public_key)) for index in residents])
    chain.run(VILLAGE, offering(units, price=PRICE, min_total=min_total))
    sale = Sale(chain, units, {index: FUNDS for index in residents}, chain.total(SETTLEMENT))
    for index, asked in orders:
        chain.run(RESIDENTS[index], Subscribe(BOND, asked))
    return sale


def close(sale: Sale) -> None:
    sale.chain.seal(at_ms=WINDOW_END_MS)


def check_result(sale: Sale, allotted: dict[int, int], *, status: OfferingStatus = OfferingStatus.SETTLED) -> None:
    """Each resident holds its allotment and paid for it alone; the subscriptions, the
    offering and the village show the same; nothing is left in escrow; both assets conserved."""
    chain = sale.chain
    for index, was in sale.settlement_before.items():
        resident = RESIDENTS[index].public_key
        assert chain.balance(resident, BOND) == allotted[index], index
        assert chain.balance(resident, SETTLEMENT) == was - allotted[index] * PRICE, index
    by_subscriber = {subscription.subscriber: subscription for subscription in chain.subscriptions(BOND)}
    for index, units in allotted.items():
        subscription = by_subscriber[RESIDENTS[index].public_key]
        assert subscription.allotted == units
        assert subscription.refunded == (subscription.units - units) * PRICE
    total = sum(allotted.values())
    result = chain.offering(BOND)
    assert result.status is status
    assert (result.allotted, result.unsold, result.proceeds) == (total, sale.units - total, total * PRICE)
    assert result.refunded == sum(s.refunded for s in by_subscriber.values())
    assert chain.balance(VILLAGE.public_key, BOND) == 1_000 - total
    assert chain.balance(VILLAGE.public_key, SETTLEMENT) == FUNDS + total * PRICE
    assert chain.bond_state(BOND).raised == total * PRICE
    assert chain.balance(offering_escrow(BOND), SETTLEMENT) == 0
    assert chain.balance(offering_escrow(BOND), BOND) == 0
    assert chain.total(SETTLEMENT) == sale.total_before
    assert chain.total(BOND) == 1_000 == chain.state.load_asset_state(BOND).supply


def test_an_undersubscribed_offering_gives_each_its_order() -> None:
    # 150 asked of 400: 100 and 50 delivered, 250 back to the village, 150 * 10,000 raised.
    sale = open_sale(400, [(0, 100), (1, 50)])
    close(sale)
    check_result(sale, {0: 100, 1: 50})


def test_an_exactly_subscribed_offering_sells_out_with_no_refund() -> None:
    sale = open_sale(300, [(0, 100), (1, 200)])
    close(sale)
    check_result(sale, {0: 100, 1: 200})
    assert sale.chain.offering(BOND).refunded == 0


def test_an_oversubscribed_offering_breaks_ties_by_subscription_order() -> None:
    # Four orders of 3 for 5 units: 1 each (5 * 3 / 12 = 1 r3), the unit left to the earliest
    # subscription. Resident 0 subscribed first but cancelled and subscribed again: it is now last,
    # so resident 1 is earliest and gets 2.
    sale = open_sale(5, [(0, 3), (1, 3), (2, 3), (3, 3)])
    sale.chain.run(RESIDENTS[0], CancelSubscription(BOND))
    sale.chain.run(RESIDENTS[0], Subscribe(BOND, 3))
    close(sale)
    check_result(sale, {0: 1, 1: 2, 2: 1, 3: 1})


def test_an_oversubscribed_offering_gives_the_units_left_to_the_largest_remainders() -> None:
    # 11 asked of 7 (see ALLOTMENTS): 3, 2, 1, 1. Refunds: 1, 2, 1 and 0 units at 10,000.
    sale = open_sale(7, [(0, 4), (1, 4), (2, 2), (3, 1)])
    close(sale)
    check_result(sale, {0: 3, 1: 2, 2: 1, 3: 1})
    assert [s.refunded for s in sale.chain.subscriptions(BOND)] == [10_000, 20_000, 10_000, 0]


def test_a_subscriber_revoked_before_the_end_is_refunded_in_full_and_left_out() -> None:
    # Resident 0's 400 are refunded whole; 500 eligible asked for 400: 400 * 300 / 500 = 240 and
    # 400 * 200 / 500 = 160, no remainder.
    sale = open_sale(400, [(0, 400), (1, 300), (2, 200)])
    sale.chain.run(VILLAGE, RevokeHolder(BOND, RESIDENTS[0].public_key))
    close(sale)
    check_result(sale, {0: 0, 1: 240, 2: 160})
    assert sale.chain.subscriptions(BOND)[0].refunded == 400 * PRICE


def test_a_frozen_subscriber_is_refunded_in_full_and_left_out() -> None:
    # As above, with resident 0 frozen in the bond instead: 240 and 160.
    sale = open_sale(400, [(0, 400), (1, 300), (2, 200)])
    sale.chain.run(VILLAGE, Freeze(BOND, RESIDENTS[0].public_key))
    close(sale)
    check_result(sale, {0: 0, 1: 240, 2: 160})


def test_an_offering_whose_eligible_orders_fall_below_its_minimum_is_cancelled() -> None:
    # 600 asked against a minimum of 400, but resident 1's approval is revoked: 300 eligible < 400.
    # Everyone is refunded, nothing is raised, all 400 units return to the village.
    sale = open_sale(400, [(0, 300), (1, 300)], min_total=400)
    sale.chain.run(VILLAGE, RevokeHolder(BOND, RESIDENTS[1].public_key))
    close(sale)
    check_result(sale, {0: 0, 1: 0}, status=OfferingStatus.CANCELLED)
    assert sale.chain.offering(BOND).refunded == 600 * PRICE


def test_an_offering_whose_orders_reach_its_minimum_exactly_is_allotted() -> None:
    # 500 asked of 400 with a minimum of 400, resident 2's 100 revoked: the 400 eligible reach the
    # minimum exactly and each gets its order; resident 2 is refunded in full.
    sale = open_sale(400, [(0, 300), (1, 100), (2, 100)], min_total=400)
    sale.chain.run(VILLAGE, RevokeHolder(BOND, RESIDENTS[2].public_key))
    close(sale)
    check_result(sale, {0: 300, 1: 100, 2: 0})


# --- payments that wait ------------------------------------------------------------------------


def test_a_payment_missed_only_in_its_own_block_is_paid_late_in_the_next() -> None:
    # 0.5 % twice a year on 10,000: 25 a unit, 250 for 10 units. The paying account holds 249 at
    # the coupon's block (its timestamp is the coupon time exactly); one more arrives in that block.
    chain = BondChain()
    sell(chain, (10,))
    chain.run(PAYING, Transfer(SETTLEMENT, VILLAGE.public_key, chain.balance(PAYING.public_key, SETTLEMENT) - 249))
    first_coupon = GENESIS_TIME_MS + 180 * DAY_MS
    chain.seal([chain.sign(VILLAGE, Transfer(SETTLEMENT, PAYING.public_key, 1))], at_ms=first_coupon)
    state = chain.bond_state(BOND)
    assert (state.next_payment, state.missed_ms) == (0, first_coupon)
    chain.seal()
    record = chain.bond_state(BOND).records[0]
    assert (record.late, record.amount, record.time_ms) == (True, 250, first_coupon + 1_000)
    assert chain.balance(PAYING.public_key, SETTLEMENT) == 0


def test_units_allotted_in_the_block_that_reaches_the_maturity_are_redeemed() -> None:
    # A zero-coupon bond maturing 360 days after the genesis; its offering ends at 10 days, but the
    # next block comes only at the maturity. Resident 0 is allotted 10 units and must get 10 * 10,000.
    chain = BondChain()
    issue_paid_by(chain, PAYING, BOND, rate=0)
    chain.run(VILLAGE, ApproveHolder(BOND, RESIDENTS[0].public_key))
    chain.run(VILLAGE, offering(1_000, price=1))
    chain.run(RESIDENTS[0], Subscribe(BOND, 10))
    resident = RESIDENTS[0].public_key
    before = chain.balance(resident, SETTLEMENT)
    chain.seal(at_ms=GENESIS_TIME_MS + 360 * DAY_MS)
    chain.seal()
    assert chain.offering(BOND).status is OfferingStatus.SETTLED
    assert chain.bond_state(BOND).next_payment == 1
    assert chain.balance(resident, SETTLEMENT) == before + 10 * 10_000
    assert chain.balance(resident, BOND) == 0
    assert chain.state.load_asset_state(BOND).supply == 0


def test_a_missed_payment_does_not_hold_up_another_bonds_coupon(monkeypatch: pytest.MonkeyPatch) -> None:
    # One holder a block: one missed bond here stands for PAYMENTS_PER_BLOCK of them.
    monkeypatch.setattr(bond_rules, "PAYMENTS_PER_BLOCK", 1)
    chain = BondChain()
    unfunded = ACCOUNTS[3]
    issue_paid_by(chain, unfunded, "BOND-A")
    later = (GENESIS_TIME_MS + 200 * DAY_MS, GENESIS_TIME_MS + 360 * DAY_MS)
    issue_paid_by(chain, PAYING, "BOND-B", coupons=later)
    resident = RESIDENTS[0].public_key
    chain.seal([chain.sign(VILLAGE, ApproveHolder(bond, resident)) for bond in ("BOND-A", "BOND-B")])
    chain.seal([chain.sign(VILLAGE, Transfer(bond, resident, 10)) for bond in ("BOND-A", "BOND-B")])
    chain.run(unfunded, Transfer(SETTLEMENT, VILLAGE.public_key, FUNDS))
    chain.seal(at_ms=GENESIS_TIME_MS + 180 * DAY_MS)
    assert chain.bond_state("BOND-A").missed_ms == GENESIS_TIME_MS + 180 * DAY_MS
    before = chain.balance(resident, SETTLEMENT)
    # BOND-B's first coupon, 10 units * 25 to the resident, is due; its paying account holds plenty.
    # Two holders (the village keeps 990 units): a few blocks at one holder a block are enough.
    for _ in range(5):
        chain.seal(at_ms=later[0])
    assert chain.bond_state("BOND-B").next_payment == 1
    assert chain.balance(resident, SETTLEMENT) == before + 250


def test_a_payment_that_falls_due_while_an_earlier_one_is_missed_is_late_too() -> None:
    # Coupons at 180, 200 and 400 days, 25 a unit on 10 units: 250 each; the redemption 100,000.
    # The paying account is empty from 180 to 220 days: the first coupon is missed at 180, the second
    # falls due at 200 while the first still is. 500 arrive at 210; at 220 both are paid, both late.
    # The third coupon and the redemption, due after the default was cured, are on time.
    chain = BondChain()
    sell(chain, (10,), coupons=[GENESIS_TIME_MS + days * DAY_MS for days in (180, 200, 400)])
    resident = RESIDENTS[0].public_key
    before = chain.balance(resident, SETTLEMENT)
    chain.run(PAYING, Transfer(SETTLEMENT, VILLAGE.public_key, chain.balance(PAYING.public_key, SETTLEMENT)))
    chain.seal(at_ms=GENESIS_TIME_MS + 180 * DAY_MS)
    chain.seal(
        [chain.sign(VILLAGE, Transfer(SETTLEMENT, PAYING.public_key, 500))], at_ms=GENESIS_TIME_MS + 210 * DAY_MS
    )
    assert chain.bond_state(BOND).missed_ms == GENESIS_TIME_MS + 180 * DAY_MS
    assert chain.balance(resident, SETTLEMENT) == before
    chain.seal(at_ms=GENESIS_TIME_MS + 220 * DAY_MS)
    assert chain.balance(resident, SETTLEMENT) == before + 500
    assert chain.balance(PAYING.public_key, SETTLEMENT) == 0
    chain.run(VILLAGE, Transfer(SETTLEMENT, PAYING.public_key, 100_250))
    chain.seal(at_ms=GENESIS_TIME_MS + 400 * DAY_MS)
    assert chain.balance(resident, SETTLEMENT) == before + 500 + 100_250
    records = chain.bond_state(BOND).records
    assert [(record.index, record.late, record.amount) for record in records] == [
        (0, True, 250), (1, True, 250), (2, False, 250), (3, False, 100_000),
    ]  # fmt: skip
    assert [record.time_ms for record in records[:2]] == [GENESIS_TIME_MS + 220 * DAY_MS] * 2


def test_a_payment_due_in_the_block_that_ends_a_default_is_on_time() -> None:
    # Coupons at 180 and 200 days, 250 each on 10 units. The first is missed at 180; the money comes
    # at 190; the next block is at 200 exactly: the first is paid late, and the second, due in that
    # very block, is paid in it on time.
    chain = BondChain()
    sell(chain, (10,), coupons=[GENESIS_TIME_MS + days * DAY_MS for days in (180, 200, 400)])
    chain.run(PAYING, Transfer(SETTLEMENT, VILLAGE.public_key, chain.balance(PAYING.public_key, SETTLEMENT)))
    chain.seal(at_ms=GENESIS_TIME_MS + 180 * DAY_MS)
    chain.seal(
        [chain.sign(VILLAGE, Transfer(SETTLEMENT, PAYING.public_key, 500))], at_ms=GENESIS_TIME_MS + 190 * DAY_MS
    )
    chain.seal(at_ms=GENESIS_TIME_MS + 200 * DAY_MS)
    records = chain.bond_state(BOND).records
    assert [(record.index, record.late, record.amount) for record in records] == [(0, True, 250), (1, False, 250)]


def test_an_allotment_that_waits_for_room_keeps_the_money_in_escrow_until_the_next_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Five steps a block. At 180 days BOND-A pays its coupon first (same time, smaller id): starting
    # it costs one, its two holders (the village and resident 0) two more; BOND-B's offering, ended
    # then too, has three subscriptions and finds two of the five left: it waits for the next block,
    # where it comes first. Its coupon at 200 days is paid on the allotted units.
    monkeypatch.setattr(bond_rules, "PAYMENTS_PER_BLOCK", 5)
    chain = BondChain()
    a_coupons = (GENESIS_TIME_MS + 180 * DAY_MS, GENESIS_TIME_MS + 360 * DAY_MS)
    b_coupons = (GENESIS_TIME_MS + 200 * DAY_MS, GENESIS_TIME_MS + 360 * DAY_MS)
    issue_paid_by(chain, PAYING, "BOND-A", coupons=a_coupons)
    issue_paid_by(chain, PAYING, "BOND-B", coupons=b_coupons)
    residents = [resident.public_key for resident in RESIDENTS[:3]]
    chain.seal([chain.sign(VILLAGE, ApproveHolder(bond, r)) for bond in ("BOND-A", "BOND-B") for r in residents])
    chain.run(VILLAGE, Transfer("BOND-A", residents[0], 10))
    end_ms = a_coupons[0]
    chain.run(VILLAGE, OpenOffering("BOND-B", 100, 10_000, GENESIS_TIME_MS, end_ms, 1, 0, 0))
    chain.seal([chain.sign(RESIDENTS[index], Subscribe("BOND-B", 10 * (index + 1))) for index in range(3)])
    escrow = offering_escrow("BOND-B")
    cash = [chain.balance(resident, SETTLEMENT) for resident in residents]
    chain.seal(at_ms=end_ms)
    assert chain.bond_state("BOND-A").records[0].amount == 250  # 10 units * 25
    assert chain.offering("BOND-B").status is OfferingStatus.OPEN
    # 10 + 20 + 30 units at 10,000 still in escrow, with the 100 units on sale.
    assert (chain.balance(escrow, SETTLEMENT), chain.balance(escrow, "BOND-B")) == (600_000, 100)
    chain.seal(at_ms=end_ms)
    assert chain.block is not None
    offering_after = chain.offering("BOND-B")
    assert (offering_after.status, offering_after.settled_height) == (OfferingStatus.SETTLED, chain.block.height)
    assert [chain.balance(resident, "BOND-B") for resident in residents] == [10, 20, 30]
    assert (chain.balance(escrow, SETTLEMENT), chain.balance(escrow, "BOND-B")) == (0, 0)
    chain.seal(at_ms=b_coupons[0])
    # 25 a unit on 10, 20 and 30 units, besides resident 0's 250 from BOND-A.
    received = [chain.balance(resident, SETTLEMENT) - was for resident, was in zip(residents, cash, strict=True)]
    assert received == [250 + 250, 500, 750]


def test_a_coupon_whose_start_waits_for_room_goes_to_the_holders_before_its_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Three steps a block. At 180 days BOND-A (smaller id, same time) starts its coupon and pays two of
    # its six holders: the budget is spent, BOND-B's coupon waits. In that block resident 5 sells its
    # 10 units of BOND-B to resident 6. The coupon, 10 * 25 = 250, belongs to resident 5, who held the
    # units at the end of the block before the coupon's time: the sale is refused until it is paid.
    monkeypatch.setattr(bond_rules, "PAYMENTS_PER_BLOCK", 3)
    chain = BondChain()
    for bond in ("BOND-A", "BOND-B"):
        issue_paid_by(chain, PAYING, bond)
    residents = [resident.public_key for resident in RESIDENTS[:7]]
    chain.seal([chain.sign(VILLAGE, ApproveHolder(bond, r)) for bond in ("BOND-A", "BOND-B") for r in residents])
    chain.seal([chain.sign(VILLAGE, Transfer("BOND-A", resident, 1)) for resident in residents[:5]])
    chain.run(VILLAGE, Transfer("BOND-B", residents[5], 10))
    seller, buyer = (chain.balance(resident, SETTLEMENT) for resident in residents[5:7])
    coupon = GENESIS_TIME_MS + 180 * DAY_MS
    sale = chain.sign(RESIDENTS[5], Transfer("BOND-B", residents[6], 10))
    refused = chain.seal([sale], at_ms=coupon)
    assert [error.rule for _, error in refused] == ["payment_in_progress"]
    for _ in range(5):
        chain.seal(at_ms=coupon)
    assert chain.bond_state("BOND-B").next_payment == 1
    assert (chain.balance(residents[5], SETTLEMENT) - seller, chain.balance(residents[6], SETTLEMENT) - buyer) == (
        250,
        0,
    )


def test_two_bonds_missed_from_one_paying_account_are_both_paid_late_once_it_covers_them() -> None:
    # Both bonds pay 25 a unit at 180 days from one paying account, emptied before: 10 units of A
    # (250) and 4 units of B (100) are missed. 349 arrive: A is made (its id comes first), B still
    # waits; one more yen and B is made too. Each holder is paid once.
    chain = BondChain()
    for bond in ("BOND-A", "BOND-B"):
        issue_paid_by(chain, PAYING, bond)
    resident = RESIDENTS[0].public_key
    chain.seal([chain.sign(VILLAGE, ApproveHolder(bond, resident)) for bond in ("BOND-A", "BOND-B")])
    chain.seal(
        [chain.sign(VILLAGE, Transfer(bond, resident, units)) for bond, units in (("BOND-A", 10), ("BOND-B", 4))]
    )
    chain.run(PAYING, Transfer(SETTLEMENT, VILLAGE.public_key, chain.balance(PAYING.public_key, SETTLEMENT)))
    before = chain.balance(resident, SETTLEMENT)
    chain.seal(at_ms=GENESIS_TIME_MS + 180 * DAY_MS)
    assert [chain.bond_state(bond).missed_ms for bond in ("BOND-A", "BOND-B")] == [GENESIS_TIME_MS + 180 * DAY_MS] * 2
    chain.run(VILLAGE, Transfer(SETTLEMENT, PAYING.public_key, 349))
    chain.seal()
    assert [chain.bond_state(bond).next_payment for bond in ("BOND-A", "BOND-B")] == [1, 0]
    assert chain.balance(resident, SETTLEMENT) == before + 250
    chain.run(VILLAGE, Transfer(SETTLEMENT, PAYING.public_key, 1))
    chain.seal()
    records = [chain.bond_state(bond).records for bond in ("BOND-A", "BOND-B")]
    assert [(r[0].late, r[0].amount, r[0].holders) for r in records] == [(True, 250, 1), (True, 100, 1)]
    assert chain.balance(resident, SETTLEMENT) == before + 350
    assert chain.balance(PAYING.public_key, SETTLEMENT) == 0
    paid = [(event.bond, event.index, event.holder) for changes in chain.changes for event in changes.events]
    assert sorted(paid) == [("BOND-A", 0, resident), ("BOND-B", 0, resident)]
