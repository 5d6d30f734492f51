"""How the RPC shows a bond's schedule: each payment's status at a given now, the rate as
percent text, an offering's phase, and the amounts a payment needs."""

from __future__ import annotations

import pytest

from mura.chain.bonds import BondState, BondTerms, Offering, OfferingStatus, PaymentRecord
from mura.rpc.bond_render import (
    OfferingPhase,
    PaymentStatus,
    offering_phase,
    payment_status,
    rate_percent,
    records_by_index,
    render_payment,
)

DAY_MS = 86_400_000
ISSUE_MS = 1_800_000_000_000
#: Two coupons half a year apart, then the redemption.
TERMS = BondTerms(
    bond="NISHI-2031", settlement="JPYT", face=10_000, rate=4_550, frequency=2, first_period_days=0,
    coupon_times=(ISSUE_MS + 182 * DAY_MS, ISSUE_MS + 365 * DAY_MS), maturity_ms=ISSUE_MS + 365 * DAY_MS + 1,
    issue_ms=ISSUE_MS, paying=b"\x01" * 32, proceeds=b"\x02" * 32, use_of_proceeds="forest road repair", green=True,
)  # fmt: skip
FIRST, SECOND, MATURITY = (TERMS.payment_time(index) for index in range(3))


def record(index: int, *, late: bool = False) -> PaymentRecord:
    return PaymentRecord(index, late, 10 + index, TERMS.payment_time(index) + 500, 8, 2, 181, 1)


def statuses(state: BondState, now_ms: int) -> list[str]:
    records = records_by_index(state)
    return [payment_status(TERMS, state, index, now_ms, records).value for index in range(TERMS.payment_count)]


@pytest.mark.parametrize(
    ("state", "now_ms", "expected"),
    [
        (BondState(), FIRST - 1, ["scheduled", "scheduled", "scheduled"]),
        (BondState(), FIRST, ["due", "scheduled", "scheduled"]),
        (BondState(), MATURITY, ["due", "due", "due"]),
        (BondState(next_payment=1, records=(record(0),)), FIRST + 1, ["paid", "scheduled", "scheduled"]),
        (BondState(paying=True, units=8, reserved=100, paid=81, holders_paid=1), FIRST + 1,
         ["paying", "scheduled", "scheduled"]),
        (BondState(missed_ms=FIRST + 5), FIRST + 5, ["missed", "scheduled", "scheduled"]),
        # In default since the first coupon: every payment whose time has come since is missed too.
        (BondState(missed_ms=FIRST + 5), SECOND, ["missed", "missed", "scheduled"]),
        (BondState(next_payment=1, cured_ms=SECOND - 1, records=(record(0, late=True),)), SECOND,
         ["paid_late", "due", "scheduled"]),
        (BondState(next_payment=3, records=(record(0), record(1, late=True), record(2))), MATURITY + 1,
         ["paid", "paid_late", "paid"]),
        # Cured after the maturity: the second coupon is being paid late, the redemption waits behind it.
        (BondState(next_payment=1, paying=True, late=True, cured_ms=MATURITY + 1, records=(record(0, late=True),)),
         MATURITY + 1, ["paid_late", "paying", "missed"]),
    ],
    ids=["before-all", "first-due", "all-due", "first-paid", "first-paying", "first-missed", "missed-twice",
         "paid-late-then-due", "redeemed", "cured-late"],
)
def test_payment_status(state: BondState, now_ms: int, expected: list[str]) -> None:
    assert statuses(state, now_ms) == expected


@pytest.mark.parametrize(
    ("rate", "text"),
    [(4_550, "0.455%"), (10_000, "1%"), (1_000_000, "100%"), (1, "0.0001%"), (0, "0%"), (123_456, "12.3456%")],
)
def test_rate_percent_is_exact(rate: int, text: str) -> None:
    assert rate_percent(rate) == text


def test_a_payment_shows_the_amount_per_unit_and_what_the_paying_account_needs() -> None:
    state = BondState(next_payment=1, records=(record(0),))
    records = records_by_index(state)
    # 10,000 x 0.455 % / 2 = 22.75 a unit: one unit receives 22; 8 units are owed 182 in all.
    assert render_payment(TERMS, state, 1, now_ms=SECOND, entitled=8, records=records) == {
        "index": 1, "kind": "coupon", "time_ms": SECOND, "time": "2028-01-15T08:00:00Z", "amount_per_unit": 22,
        "status": "due", "required": 182, "record": None,
    }
    assert render_payment(TERMS, state, 2, now_ms=SECOND, entitled=8, records=records)["required"] == 80_000
    made = render_payment(TERMS, state, 0, now_ms=SECOND, entitled=8, records=records)
    assert (made["status"], made["required"]) == ("paid", None)
    assert made["record"] == {
        "late": False, "height": 10, "time_ms": FIRST + 500, "time": "2027-07-16T08:00:00.500Z", "units": 8,
        "holders": 2, "amount": 181, "retained": 1,
    }


@pytest.mark.parametrize(
    ("status", "now_ms", "phase"),
    [
        (OfferingStatus.OPEN, 999, OfferingPhase.UPCOMING),
        (OfferingStatus.OPEN, 1_000, OfferingPhase.SUBSCRIBING),
        (OfferingStatus.OPEN, 1_999, OfferingPhase.SUBSCRIBING),
        (OfferingStatus.OPEN, 2_000, OfferingPhase.ALLOTTING),
        (OfferingStatus.SETTLED, 500, OfferingPhase.SETTLED),
        (OfferingStatus.CANCELLED, 5_000, OfferingPhase.CANCELLED),
    ],
)
def test_offering_phase(status: OfferingStatus, now_ms: int, phase: OfferingPhase) -> None:
    offering = Offering("NISHI-2031", 100, 10_000, 1_000, 2_000, 1, 0, 0, status=status)
    assert offering_phase(offering, now_ms) is phase


def test_every_status_has_a_case() -> None:
    assert {status.value for status in PaymentStatus} == {
        "scheduled", "due", "paying", "paid", "paid_late", "missed",
    }
