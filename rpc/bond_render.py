"""Bonds as the RPC answers them: terms, schedule, payments, offerings and the use of
proceeds, each renderer next to the JSON Schema of its output.

Amounts are JSON integers in the settlement asset's smallest units (its decimals
are given beside them), units are whole bond units, times both as milliseconds
since the Unix epoch (``*_ms``) and as RFC 3339 text (``*_time``, see
``render.render_time``). The status of a payment not made yet depends on a notion
of now: see ``payment_status``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mura.chain.address import encode_address
from mura.chain.assets import AssetState, AssetTerms
from mura.chain.bonds import (
    RATE_SCALE,
    BondState,
    BondTerms,
    Offering,
    OfferingStatus,
    PaymentKind,
    PaymentRecord,
    Subscription,
)
from mura.rpc.render import render_time

if TYPE_CHECKING:  # the store's own module (and LevelDB's binding) is for the node to load, not its readers
    from mura.chain.store import PaymentShare

_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
_AMOUNT: dict[str, Any] = {**_COUNT, "description": "Smallest units of the settlement asset."}
_UNITS: dict[str, Any] = {**_COUNT, "description": "Whole units of the bond."}
_ADDRESS: dict[str, Any] = {"type": "string", "description": "A text address, e.g. tnac1..."}
_MS: dict[str, Any] = {**_COUNT, "description": "Milliseconds since the Unix epoch."}
_NULLABLE_MS: dict[str, Any] = {"type": ["integer", "null"], "minimum": 0, "description": "Milliseconds since the "
                                "Unix epoch; null: none."}
_NULLABLE_COUNT: dict[str, Any] = {"type": ["integer", "null"], "minimum": 0}
_TIME: dict[str, Any] = {
    "type": ["string", "null"],
    "description": "RFC 3339 UTC text, e.g. 2031-01-01T00:00:00Z; null for none (or a time past the year 9999).",
}
_PERCENT_PER_RATE = RATE_SCALE // 100


class PaymentStatus(enum.Enum):
    """Where a payment of a bond's schedule stands."""

    #: Its time has not come.
    SCHEDULED = "scheduled"
    #: Its time has come (by the later of the node's clock and the head block's timestamp)
    #: and no block has made or missed it yet.
    DUE = "due"
    #: Being paid out to the holders over several blocks.
    PAYING = "paying"
    #: Made in full at the first block that reached its time.
    PAID = "paid"
    #: Made in full after it had been missed.
    PAID_LATE = "paid_late"
    #: A block reached its time and the paying account held too little (or an earlier payment is
    #: missed); made, late, at the first block after the paying account covers it.
    MISSED = "missed"


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


def rate_percent(rate: int) -> str:
    """An annual rate in millionths as exact percent text: 4550 -> ``0.455%``, 10000 -> ``1%``."""
    whole, fraction = divmod(rate, _PERCENT_PER_RATE)
    digits = f"{fraction:04d}".rstrip("0")
    return f"{whole}.{digits}%" if digits else f"{whole}%"


def payment_status(
    terms: BondTerms, state: BondState, index: int, now_ms: int, records: Mapping[int, PaymentRecord]
) -> PaymentStatus:
    """The status of payment ``index`` of the schedule at ``now_ms`` (``records``: the
    state's records by index).

    A payment before ``next_payment`` was made (late if it had been missed, or fell due
    while an earlier one was); the next one is paying while its payout spans blocks; while
    the bond is in default (``missed_ms``: the next payment was missed), every payment not
    made whose time has come is missed; one whose time ``now_ms`` reached is due; the rest
    are scheduled.
    """
    if index < state.next_payment:
        record = records.get(index)
        return PaymentStatus.PAID_LATE if record is not None and record.late else PaymentStatus.PAID
    if index == state.next_payment and state.paying:
        return PaymentStatus.PAYING
    time_ms = terms.payment_time(index)
    if state.missed_ms and time_ms <= max(now_ms, state.missed_ms):
        return PaymentStatus.MISSED
    if time_ms < state.cured_ms:
        # Its time came while the bond was in default: it is made late, once the payment before it is.
        return PaymentStatus.MISSED
    return PaymentStatus.DUE if time_ms <= now_ms else PaymentStatus.SCHEDULED


def records_by_index(state: BondState) -> dict[int, PaymentRecord]:
    return {record.index: record for record in state.records}


# --- payments ----------------------------------------------------------------------------------

RECORD_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "How a made payment was made; null for one not made.",
    "required": ["late", "height", "time_ms", "time", "units", "holders", "amount", "retained"],
    "properties": {
        "late": {
            "type": "boolean",
            "description": "Made late: it had been missed, or its time came while an earlier payment was missed.",
        },
        "height": {**_COUNT, "description": "The block that finished it."},
        "time_ms": {**_MS, "description": "That block's timestamp."},
        "time": _TIME,
        "units": {**_UNITS, "description": "Units it was paid on: every unit but the issuer's and the offering's."},
        "holders": {**_COUNT, "description": "Holders paid."},
        "amount": {**_AMOUNT, "description": "What the holders received in all."},
        "retained": {**_AMOUNT, "description": "What rounding each holder's share down left with the paying account."},
    },
}

PAYMENT_SCHEMA = _object(
    {
        "index": {**_COUNT, "description": "Its place in the schedule: coupons first, the redemption last."},
        "kind": {"type": "string", "enum": [kind.value for kind in PaymentKind]},
        "time_ms": {**_MS, "description": "When it falls due: the first block whose timestamp reaches it makes it."},
        "time": _TIME,
        "amount_per_unit": {**_AMOUNT, "description": "What a holder of one unit receives (rounded down)."},
        "status": {"type": "string", "enum": [status.value for status in PaymentStatus]},
        "required": {
            **_NULLABLE_COUNT,
            "description": "For a payment not made: what the paying account must hold to make it, on the units "
            "others than the issuer and the offering hold now (smallest units of the settlement asset); null "
            "once made or while paying.",
        },
        "record": RECORD_SCHEMA,
    }
)


def render_record(record: PaymentRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {
        "late": record.late,
        "height": record.height,
        "time_ms": record.time_ms,
        "time": render_time(record.time_ms),
        "units": record.units,
        "holders": record.holders,
        "amount": record.amount,
        "retained": record.retained,
    }


def render_payment(
    terms: BondTerms,
    state: BondState,
    index: int,
    *,
    now_ms: int,
    entitled: int,
    records: Mapping[int, PaymentRecord],
) -> dict[str, Any]:
    """Payment ``index`` of the schedule, its status at ``now_ms`` and, once made, its record;
    ``entitled``: the units it would be paid on if made now."""
    status = payment_status(terms, state, index, now_ms, records)
    made = status in (PaymentStatus.PAID, PaymentStatus.PAID_LATE, PaymentStatus.PAYING)
    time_ms = terms.payment_time(index)
    return {
        "index": index,
        "kind": terms.payment_kind(index).value,
        "time_ms": time_ms,
        "time": render_time(time_ms),
        "amount_per_unit": terms.payment_amount(index, 1),
        "status": status.value,
        "required": None if made else terms.payment_amount(index, entitled),
        "record": render_record(records.get(index)),
    }


PROGRESS_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "The payment being paid out over several blocks (the bond's units do not move meanwhile); "
    "null when none is.",
    "required": ["index", "units", "reserved", "paid", "holders_paid"],
    "properties": {
        "index": _COUNT,
        "units": {**_UNITS, "description": "Units it is paid on."},
        "reserved": {**_AMOUNT, "description": "What is left of the sum set aside for it."},
        "paid": {**_AMOUNT, "description": "Paid to holders so far."},
        "holders_paid": {**_COUNT, "description": "Holders paid so far."},
    },
}


def render_progress(state: BondState) -> dict[str, Any] | None:
    if not state.paying:
        return None
    return {
        "index": state.next_payment,
        "units": state.units,
        "reserved": state.reserved,
        "paid": state.paid,
        "holders_paid": state.holders_paid,
    }


SHARE_SCHEMA = _object(
    {
        "index": {**_COUNT, "description": "The payment's place in the schedule."},
        "kind": {"type": "string", "enum": [kind.value for kind in PaymentKind]},
        "holder": _ADDRESS,
        "units": {**_UNITS, "description": "Units held (and redeemed, for the redemption)."},
        "amount": {**_AMOUNT, "description": "What the holder received."},
        "height": {**_COUNT, "description": "The block that paid it."},
    }
)


def render_share(terms: BondTerms, share: PaymentShare, prefix: str) -> dict[str, Any]:
    return {
        "index": share.index,
        "kind": terms.payment_kind(share.index).value,
        "holder": encode_address(share.holder, prefix),
        "units": share.units,
        "amount": share.amount,
        "height": share.height,
    }


# --- offerings ------------------------------------------------------------------------------------


class OfferingPhase(enum.Enum):
    """Where an offering stands, by its status and now."""

    #: Its window has not opened.
    UPCOMING = "upcoming"
    #: Taking subscriptions.
    SUBSCRIBING = "subscribing"
    #: Its window has closed; the first block at or after its end allots it.
    ALLOTTING = "allotting"
    SETTLED = "settled"
    CANCELLED = "cancelled"


def offering_phase(offering: Offering, now_ms: int) -> OfferingPhase:
    if offering.status is OfferingStatus.SETTLED:
        return OfferingPhase.SETTLED
    if offering.status is OfferingStatus.CANCELLED:
        return OfferingPhase.CANCELLED
    if now_ms >= offering.end_ms:
        return OfferingPhase.ALLOTTING
    return OfferingPhase.SUBSCRIBING if now_ms >= offering.start_ms else OfferingPhase.UPCOMING


OFFERING_SCHEMA = _object(
    {
        "units": {**_UNITS, "description": "Units on sale."},
        "price": {**_AMOUNT, "description": "The price of one unit."},
        "start_ms": _MS,
        "start_time": _TIME,
        "end_ms": {**_MS, "description": "Subscriptions are taken before it; the first block at or after it allots."},
        "end_time": _TIME,
        "min_units": {**_UNITS, "description": "The fewest units one subscription may ask for."},
        "max_units": {**_UNITS, "description": "The most units one subscription may ask for."},
        "min_total": {
            **_NULLABLE_COUNT,
            "description": "Below this many units subscribed the offering is cancelled and everyone refunded; "
            "null: no minimum.",
        },
        "status": {"type": "string", "enum": [status.value for status in OfferingStatus]},
        "phase": {
            "type": "string",
            "enum": [phase.value for phase in OfferingPhase],
            "description": "upcoming, subscribing or allotting (by the later of the node's clock and the head "
            "block's timestamp) while open; then settled or cancelled.",
        },
        "subscribers": {**_COUNT, "description": "Live subscriptions."},
        "subscribed": {**_UNITS, "description": "Units they ask for."},
        "escrowed": {
            **_AMOUNT,
            "description": "Their payment the chain holds until the allotment (once allotted: what it held then; "
            "refunded and proceeds say where it went).",
        },
        "allotted": {**_UNITS, "description": "Units delivered at the allotment."},
        "unsold": {**_UNITS, "description": "Units returned to the issuer at the allotment."},
        "refunded": {**_AMOUNT, "description": "Paid back to subscribers at the allotment."},
        "proceeds": {**_AMOUNT, "description": "Paid to the proceeds account at the allotment."},
        "settled_height": {**_NULLABLE_COUNT, "description": "The block that allotted or cancelled it; null: open."},
    }
)


def render_offering(offering: Offering, now_ms: int) -> dict[str, Any]:
    return {
        "units": offering.units,
        "price": offering.price,
        "start_ms": offering.start_ms,
        "start_time": render_time(offering.start_ms),
        "end_ms": offering.end_ms,
        "end_time": render_time(offering.end_ms),
        "min_units": offering.min_units,
        "max_units": offering.max_per_subscriber,
        "min_total": offering.min_total or None,
        "status": offering.status.value,
        "phase": offering_phase(offering, now_ms).value,
        "subscribers": offering.subscribers,
        "subscribed": offering.subscribed,
        "escrowed": offering.escrowed,
        "allotted": offering.allotted,
        "unsold": offering.unsold,
        "refunded": offering.refunded,
        "proceeds": offering.proceeds,
        "settled_height": offering.settled_height if offering.status is not OfferingStatus.OPEN else None,
    }


SUBSCRIPTION_SCHEMA = _object(
    {
        "sequence": {**_COUNT, "description": "Its place in subscription order (which breaks allotment ties)."},
        "subscriber": _ADDRESS,
        "units": {**_UNITS, "description": "Units asked for."},
        "paid": {**_AMOUNT, "description": "Paid into escrow: units times price."},
        "allotted": {**_NULLABLE_COUNT, "description": "Units allotted; null until the offering is settled."},
        "refunded": {
            **_NULLABLE_COUNT,
            "description": "Paid back at the allotment (smallest units); null until the offering is settled.",
        },
    }
)


def render_subscription(
    offering: Offering, sequence: int, subscription: Subscription, prefix: str
) -> dict[str, Any]:
    settled = offering.status is not OfferingStatus.OPEN
    return {
        "sequence": sequence,
        "subscriber": encode_address(subscription.subscriber, prefix),
        "units": subscription.units,
        "paid": subscription.units * offering.price,
        "allotted": subscription.allotted if settled else None,
        "refunded": subscription.refunded if settled else None,
    }


# --- bonds ----------------------------------------------------------------------------------------

BOND_SUMMARY_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string", "description": "The bond's asset id."},
    "name": {"type": "string"},
    "settlement": {"type": "string", "description": "The asset coupons and the redemption are paid in."},
    "settlement_decimals": {**_COUNT, "description": "Its decimals: 2 means 100 smallest units make one."},
    "face": {**_AMOUNT, "description": "Face value of one unit, paid per unit at maturity."},
    "rate": {**_COUNT, "description": "Annual coupon rate in millionths: 4550 is 0.455 % a year."},
    "rate_percent": {"type": "string", "description": "The same rate as exact percent text, e.g. 0.455%."},
    "maturity_ms": {**_MS, "description": "When every unit is redeemed at face value."},
    "maturity_time": _TIME,
    "use_of_proceeds": {"type": "string", "description": "What the money is for."},
    "green": {"type": "boolean", "description": "Labelled a green bond."},
    "supply": {**_UNITS, "description": "Units in existence (redemption burns them)."},
    "holders": {**_COUNT, "description": "Accounts holding units (the issuer and the offering's escrow included)."},
    "redeemed": {"type": "boolean", "description": "Every payment, the redemption last, has been made."},
}
BOND_SUMMARY_SCHEMA = _object(BOND_SUMMARY_PROPERTIES)

BOND_SCHEMA = _object(
    {
        **BOND_SUMMARY_PROPERTIES,
        "issuer": _ADDRESS,
        "registrar": {**_ADDRESS, "description": "Approves holders and freezes accounts."},
        "policy": {"type": "string", "description": "restricted: only the issuer and approved holders hold it."},
        "frequency": {**_COUNT, "description": "Regular coupon payments a year."},
        "first_period_days": {
            **_COUNT,
            "description": "0: the first coupon period is regular; else its actual days (paid as days/365 of a year).",
        },
        "issue_ms": _MS,
        "issue_time": _TIME,
        "paying": {**_ADDRESS, "description": "The account coupons and the redemption are paid from."},
        "proceeds": {**_ADDRESS, "description": "The account the offering's proceeds are paid to and spent from."},
        "paying_balance": {**_AMOUNT, "description": "The paying account's balance of the settlement asset."},
        "entitled_units": {
            **_UNITS,
            "description": "Units a payment made now would be paid on: all but the issuer's and the offering's.",
        },
        "locked": {"type": "boolean", "description": "A payment is being paid out: the units do not move."},
        "next_payment": {**_NULLABLE_COUNT, "description": "The first payment not yet made; null once redeemed."},
        "missed_ms": {
            **_NULLABLE_MS,
            "description": "While the next payment is missed (the bond is in default): the timestamp of the "
            "first block that could not make it; null: not in default.",
        },
        "missed_time": _TIME,
        "payments": {"type": "array", "items": PAYMENT_SCHEMA, "description": "The whole schedule, in order."},
        "in_progress": PROGRESS_SCHEMA,
        "raised": {**_AMOUNT, "description": "Proceeds the offering paid to the proceeds account."},
        "spent": {**_AMOUNT, "description": "Of them, spent with a stated purpose (bond_getUseOfProceeds)."},
        "offering": {
            "anyOf": [OFFERING_SCHEMA, {"type": "null"}],
            "description": "The bond's offering (as offering_get shows it); null: none was opened.",
        },
        "height": {**_COUNT, "description": "The head the answer was read at."},
        "now_ms": {
            **_MS,
            "description": "The time statuses were judged at: the later of the node's clock and the head block's "
            "timestamp.",
        },
    }
)


def render_bond_summary(
    asset: AssetTerms, asset_state: AssetState, terms: BondTerms, state: BondState, settlement_decimals: int
) -> dict[str, Any]:
    return {
        "id": asset.asset,
        "name": asset.name,
        "settlement": terms.settlement,
        "settlement_decimals": settlement_decimals,
        "face": terms.face,
        "rate": terms.rate,
        "rate_percent": rate_percent(terms.rate),
        "maturity_ms": terms.maturity_ms,
        "maturity_time": render_time(terms.maturity_ms),
        "use_of_proceeds": terms.use_of_proceeds,
        "green": terms.green,
        "supply": asset_state.supply,
        "holders": asset_state.holders,
        "redeemed": state.next_payment >= terms.payment_count,
    }


def render_bond_terms(asset: AssetTerms, terms: BondTerms, prefix: str) -> dict[str, Any]:
    """The fixed part of ``bond_get`` beyond the summary."""
    return {
        "issuer": encode_address(asset.issuer, prefix),
        "registrar": encode_address(asset.registrar, prefix),
        "policy": asset.policy.value,
        "frequency": terms.frequency,
        "first_period_days": terms.first_period_days,
        "issue_ms": terms.issue_ms,
        "issue_time": render_time(terms.issue_ms),
        "paying": encode_address(terms.paying, prefix),
        "proceeds": encode_address(terms.proceeds, prefix),
    }


def render_schedule(terms: BondTerms, state: BondState, *, now_ms: int, entitled: int) -> dict[str, Any]:
    """The changing part of ``bond_get``: where the schedule stands, and every payment."""
    redeemed = state.next_payment >= terms.payment_count
    records = records_by_index(state)
    return {
        "next_payment": None if redeemed else state.next_payment,
        "missed_ms": state.missed_ms or None,
        "missed_time": render_time(state.missed_ms) if state.missed_ms else None,
        "payments": [
            render_payment(terms, state, index, now_ms=now_ms, entitled=entitled, records=records)
            for index in range(terms.payment_count)
        ],
        "in_progress": render_progress(state),
        "raised": state.raised,
        "spent": state.spent,
    }
