"""Bonds: their terms, their payment schedule, their offering, and the sums the chain pays.

A bond is an asset of the ledger (whole units, restricted by default) with
``BondTerms`` fixed at issue: the settlement asset it pays in, the face value of
one unit, the annual coupon rate, the coupon payment times and the maturity at
which every unit is redeemed at face value. The chain itself pays every coupon
and the redemption (see ``chain.state.process_bonds``), sells the bond through
an ``Offering`` (subscriptions held in escrow, allotted at the window's end),
and settles trades delivery versus payment.

Money the chain holds for a while (subscriptions, a payment being made) sits in
chain accounts: addresses with a fixed 16-byte mark, no key, from which only the
state transition moves anything (``chain_account``).

Every sum here is an integer in smallest units, and each rounding is a floor
stated where it happens.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from mura.chain import codec
from mura.chain.assets import MAX_ASSET_ID_LENGTH, asset_key
from mura.chain.errors import DecodeError
from mura.chain.keys import PUBLIC_KEY_SIZE, sha256

#: The annual coupon rate is in millionths: 4_550 is 0.455 % a year, 1_000_000 is 100 %.
RATE_SCALE = 1_000_000
#: The day count of an odd first period: actual days over a 365-day year (actual/365 fixed,
#: as Japanese bonds count).
DAYS_PER_YEAR = 365
#: Regular payments a year a bond may have: yearly, half-yearly, quarterly, monthly.
FREQUENCIES = (1, 2, 4, 12)
#: Most coupon payment times a bond may list (ten years of monthly coupons).
MAX_COUPONS = 120
#: Longest odd first period, in days.
MAX_FIRST_PERIOD_DAYS = 730
#: Longest use-of-proceeds label, in characters.
MAX_LABEL_LENGTH = 128
#: Longest purpose of a spending of proceeds, in characters.
MAX_PURPOSE_LENGTH = 64
#: Most subscriptions an offering holds: its allotment is computed in one block.
MAX_SUBSCRIBERS = 10_000
#: Longest trade reference, in bytes.
MAX_TRADE_REFERENCE = 32
#: How far ahead a trade's deadline may be (30 days), so an offer does not stay usable for ever.
MAX_TRADE_WINDOW_MS = 30 * 24 * 3600 * 1000

#: The first 16 bytes of every chain account. A public key with this start is as unlikely as
#: finding a hash collision, and no key signs for a chain account.
CHAIN_ACCOUNT_MARK = b"mura/chain-acct\x00"


def chain_account(purpose: str, asset: str) -> bytes:
    """The keyless account in which the chain holds money for ``purpose`` (``offering``,
    ``payment``) of ``asset``: the mark, then 16 bytes of a hash of both."""
    return CHAIN_ACCOUNT_MARK + sha256(purpose.encode() + b"\x00" + asset_key(asset))[:16]


def is_chain_account(address: bytes) -> bool:
    return address[: len(CHAIN_ACCOUNT_MARK)] == CHAIN_ACCOUNT_MARK


def offering_escrow(bond: str) -> bytes:
    """Holds an offering's units on sale and its subscribers' payments until the allotment."""
    return chain_account("offering", bond)


def payment_escrow(bond: str) -> bytes:
    """Holds what a coupon or the redemption reserved from the paying account while it is paid out."""
    return chain_account("payment", bond)


def label_problem(text: str, what: str, maximum: int, *, required: bool) -> str | None:
    """Why ``text`` is not a valid label (printable, at most ``maximum`` characters), or None."""
    if not text:
        return f"{what} is required" if required else None
    if len(text) > maximum or not text.isprintable() or not text.strip():
        return f"{what} is 1 to {maximum} printable characters (no control characters), not only spaces"
    return None


def coupon_amount(face: int, units: int, rate: int, frequency: int, first_period_days: int) -> int:
    """One holder's coupon on ``units``, rounded down to the settlement asset's smallest unit.

    A regular period pays face * units * rate / frequency; an odd first period
    (``first_period_days`` > 0) pays face * units * rate * days / 365. The rate is in
    millionths a year. The product is exact; the only rounding is this one floor.
    """
    if first_period_days:
        return face * units * rate * first_period_days // (RATE_SCALE * DAYS_PER_YEAR)
    return face * units * rate // (RATE_SCALE * frequency)


class PaymentKind(enum.Enum):
    COUPON = "coupon"
    REDEMPTION = "redemption"


@dataclass(frozen=True, slots=True)
class BondTerms:
    """What a bond promises, fixed at issue. Its asset id, name, issuer, registrar and
    transfer policy are its ``AssetTerms``."""

    #: The bond's asset id.
    bond: str
    #: The asset coupons and the redemption are paid in (e.g. JPYT).
    settlement: str
    #: Face value of one unit, in the settlement asset's smallest units; paid per unit at maturity.
    face: int
    #: Annual coupon rate in millionths (``RATE_SCALE``).
    rate: int
    #: Regular coupon payments a year (one of ``FREQUENCIES``).
    frequency: int
    #: 0 when the first coupon period is regular; else its actual length in days (an odd first period).
    first_period_days: int
    #: Coupon payment times (milliseconds since the Unix epoch), increasing.
    coupon_times: tuple[int, ...]
    #: When every unit is redeemed at face value.
    maturity_ms: int
    #: The issue date (interest accrues from it).
    issue_ms: int
    #: The account coupons and the redemption are paid from.
    paying: bytes
    #: The account an offering's proceeds go to (and are spent from).
    proceeds: bytes
    #: What the money is for ("forest road repair").
    use_of_proceeds: str
    #: Whether the bond is labelled green.
    green: bool

    @property
    def payment_count(self) -> int:
        """Coupons, then the redemption."""
        return len(self.coupon_times) + 1

    def payment_kind(self, index: int) -> PaymentKind:
        return PaymentKind.COUPON if index < len(self.coupon_times) else PaymentKind.REDEMPTION

    def payment_time(self, index: int) -> int:
        return self.coupon_times[index] if index < len(self.coupon_times) else self.maturity_ms

    def period_days(self, index: int) -> int:
        """The day count of coupon ``index``: the odd first period's days, else 0 (regular)."""
        return self.first_period_days if index == 0 else 0

    def payment_amount(self, index: int, units: int) -> int:
        """What a holder of ``units`` receives from payment ``index``."""
        if self.payment_kind(index) is PaymentKind.REDEMPTION:
            return self.face * units
        return coupon_amount(self.face, units, self.rate, self.frequency, self.period_days(index))

    def encode(self) -> bytes:
        return codec.encode(
            [
                self.bond,
                self.settlement,
                self.face,
                self.rate,
                self.frequency,
                self.first_period_days,
                list(self.coupon_times),
                self.maturity_ms,
                self.issue_ms,
                self.paying,
                self.proceeds,
                self.use_of_proceeds,
                self.green,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> BondTerms:
        fields = codec.read_fields(codec.decode(data), "bond", 13)
        bond, settlement, face, rate, frequency, days, times, maturity, issued, paying, proceeds, use, green = fields
        return cls(
            codec.read_str(bond, "bond.bond", max_length=MAX_ASSET_ID_LENGTH),
            codec.read_str(settlement, "bond.settlement", max_length=MAX_ASSET_ID_LENGTH),
            codec.read_int(face, "bond.face"),
            codec.read_int(rate, "bond.rate", maximum=RATE_SCALE),
            codec.read_int(frequency, "bond.frequency", maximum=12),
            codec.read_int(days, "bond.first_period_days", maximum=MAX_FIRST_PERIOD_DAYS),
            tuple(
                codec.read_int(time, "bond.coupon_times[]")
                for time in codec.read_list(times, "bond.coupon_times", max_length=MAX_COUPONS)
            ),
            codec.read_int(maturity, "bond.maturity_ms"),
            codec.read_int(issued, "bond.issue_ms"),
            codec.read_bytes(paying, "bond.paying", length=PUBLIC_KEY_SIZE),
            codec.read_bytes(proceeds, "bond.proceeds", length=PUBLIC_KEY_SIZE),
            codec.read_str(use, "bond.use_of_proceeds", max_length=4 * MAX_LABEL_LENGTH),
            codec.read_bool(green, "bond.green"),
        )


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """A payment the chain made in full."""

    #: Its place in the schedule (coupons first, then the redemption).
    index: int
    #: Paid late: it was missed (the paying account held too little when it fell due), or it
    #: fell due while an earlier payment was missed.
    late: bool
    #: The block that finished it, and that block's timestamp.
    height: int
    time_ms: int
    #: Units it was paid on, holders paid, and the sum they received.
    units: int
    holders: int
    amount: int
    #: What the per-holder rounding left with the paying account.
    retained: int

    def to_fields(self) -> list[object]:
        return [self.index, self.late, self.height, self.time_ms, self.units, self.holders, self.amount, self.retained]

    @classmethod
    def from_fields(cls, value: object, what: str) -> PaymentRecord:
        index, late, height, time_ms, units, holders, amount, retained = codec.read_fields(value, what, 8)
        return cls(
            codec.read_int(index, f"{what}.index", maximum=MAX_COUPONS),
            codec.read_bool(late, f"{what}.late"),
            codec.read_int(height, f"{what}.height"),
            codec.read_int(time_ms, f"{what}.time_ms"),
            codec.read_int(units, f"{what}.units"),
            codec.read_int(holders, f"{what}.holders"),
            codec.read_int(amount, f"{what}.amount"),
            codec.read_int(retained, f"{what}.retained"),
        )


@dataclass(frozen=True, slots=True)
class BondState:
    """What changes of a bond: how far its schedule has been paid, and its proceeds."""

    #: The first payment not yet made in full (``payment_count`` once redeemed).
    next_payment: int = 0
    #: While ``next_payment`` is missed: the timestamp of the first block that could not make
    #: it (0: not missed). The bond is in default until it is made.
    missed_ms: int = 0
    #: The timestamp of the block in which the last late payment started (0: none): a payment
    #: whose time came before it fell due while the bond was in default, and is late too.
    cured_ms: int = 0
    #: The payment being made is late (it was missed, or fell due while the bond was in default).
    late: bool = False
    #: While a payment is being made over several blocks: the units and holders it is made
    #: on, what is left of the sum reserved for it, what has been paid, and the last holder paid.
    paying: bool = False
    units: int = 0
    reserved: int = 0
    paid: int = 0
    holders_paid: int = 0
    cursor: bytes = b""
    #: Payments made in full, in schedule order.
    records: tuple[PaymentRecord, ...] = ()
    #: Proceeds an offering delivered to the proceeds account, and how much of them has been spent.
    raised: int = 0
    spent: int = 0

    def encode(self) -> bytes:
        return codec.encode(
            [
                self.next_payment,
                self.missed_ms,
                self.cured_ms,
                self.late,
                self.paying,
                self.units,
                self.reserved,
                self.paid,
                self.holders_paid,
                self.cursor,
                [record.to_fields() for record in self.records],
                self.raised,
                self.spent,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> BondState:
        fields = codec.read_fields(codec.decode(data), "bond_state", 13)
        next_payment, missed, cured, late, paying, units, reserved, paid, holders, cursor, records = fields[:11]
        raised, spent = fields[11:]
        return cls(
            codec.read_int(next_payment, "bond_state.next_payment", maximum=MAX_COUPONS + 1),
            codec.read_int(missed, "bond_state.missed_ms"),
            codec.read_int(cured, "bond_state.cured_ms"),
            codec.read_bool(late, "bond_state.late"),
            codec.read_bool(paying, "bond_state.paying"),
            codec.read_int(units, "bond_state.units"),
            codec.read_int(reserved, "bond_state.reserved"),
            codec.read_int(paid, "bond_state.paid"),
            codec.read_int(holders, "bond_state.holders_paid"),
            codec.read_bytes(cursor, "bond_state.cursor", max_length=PUBLIC_KEY_SIZE),
            tuple(
                PaymentRecord.from_fields(record, "bond_state.records[]")
                for record in codec.read_list(records, "bond_state.records", max_length=MAX_COUPONS + 1)
            ),
            codec.read_int(raised, "bond_state.raised"),
            codec.read_int(spent, "bond_state.spent"),
        )


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """One holder's share of a payment the chain made (kept in the history indexes, not the state)."""

    bond: str
    #: The payment's place in the schedule.
    index: int
    holder: bytes
    #: Units held (redeemed, for the redemption) and the sum received in the settlement asset.
    units: int
    amount: int


class OfferingStatus(enum.Enum):
    #: Taking subscriptions until its end (or not yet started).
    OPEN = "open"
    #: Allotted: units delivered, refunds and proceeds paid.
    SETTLED = "settled"
    #: Below its minimum total: everyone refunded, the units returned to the issuer.
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Offering:
    """A bond's public offering: its terms, its subscriptions' totals, and its result."""

    bond: str
    #: Units on sale, and the price of one in the settlement asset's smallest units.
    units: int
    price: int
    #: Subscriptions are taken from ``start_ms`` until before ``end_ms``; the first block at
    #: or after ``end_ms`` allots.
    start_ms: int
    end_ms: int
    #: Units one subscription may ask for (``max_units`` 0: up to every unit on sale).
    min_units: int
    max_units: int
    #: Below this many units subscribed the offering is cancelled (0: no minimum).
    min_total: int
    status: OfferingStatus = OfferingStatus.OPEN
    #: Live subscriptions, and the units and payment they hold in escrow.
    subscribers: int = 0
    subscribed: int = 0
    escrowed: int = 0
    #: The next subscription's number (subscription order breaks allotment ties).
    sequence: int = 0
    #: The result: units delivered, units returned to the issuer, refunds, proceeds.
    allotted: int = 0
    unsold: int = 0
    refunded: int = 0
    proceeds: int = 0
    #: When it was allotted or cancelled.
    settled_height: int = 0

    @property
    def max_per_subscriber(self) -> int:
        return self.max_units or self.units

    def encode(self) -> bytes:
        return codec.encode(
            [
                self.bond,
                self.units,
                self.price,
                self.start_ms,
                self.end_ms,
                self.min_units,
                self.max_units,
                self.min_total,
                self.status.value,
                self.subscribers,
                self.subscribed,
                self.escrowed,
                self.sequence,
                self.allotted,
                self.unsold,
                self.refunded,
                self.proceeds,
                self.settled_height,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> Offering:
        fields = codec.read_fields(codec.decode(data), "offering", 18)
        bond = codec.read_str(fields[0], "offering.bond", max_length=MAX_ASSET_ID_LENGTH)
        status_text = codec.read_str(fields[8], "offering.status", max_length=16)
        try:
            status = OfferingStatus(status_text)
        except ValueError:
            raise DecodeError(f"offering.status: {status_text!r} is not an offering status") from None
        numbers = {
            name: codec.read_int(value, f"offering.{name}")
            for name, value in zip(_OFFERING_NUMBERS, fields[1:8] + fields[9:], strict=True)
        }
        return cls(bond=bond, status=status, **numbers)


_OFFERING_NUMBERS = (
    "units",
    "price",
    "start_ms",
    "end_ms",
    "min_units",
    "max_units",
    "min_total",
    "subscribers",
    "subscribed",
    "escrowed",
    "sequence",
    "allotted",
    "unsold",
    "refunded",
    "proceeds",
    "settled_height",
)


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscriber's order, and what the allotment gave it."""

    subscriber: bytes
    #: Units asked for (their price is in escrow).
    units: int
    #: Units allotted (0 until the allotment), and the refund paid back then.
    allotted: int = 0
    refunded: int = 0

    def encode(self) -> bytes:
        return codec.encode([self.subscriber, self.units, self.allotted, self.refunded])

    @classmethod
    def decode(cls, data: bytes) -> Subscription:
        subscriber, units, allotted, refunded = codec.read_fields(codec.decode(data), "subscription", 4)
        return cls(
            codec.read_bytes(subscriber, "subscription.subscriber", length=PUBLIC_KEY_SIZE),
            codec.read_int(units, "subscription.units"),
            codec.read_int(allotted, "subscription.allotted"),
            codec.read_int(refunded, "subscription.refunded"),
        )


def allot(units: int, requests: Sequence[int]) -> list[int]:
    """Share ``units`` among ``requests`` (in subscription order).

    If they ask for no more than ``units`` in all, each gets what it asked. Otherwise
    each gets the floor of its pro-rata share, units * asked / total asked; the units
    this leaves go one each to the largest remainders (units * asked mod total asked),
    ties to the earlier subscription. Nobody gets more than it asked, and exactly
    ``units`` are allotted.
    """
    total = sum(requests)
    if total <= units:
        return list(requests)
    shares = [units * asked // total for asked in requests]
    left = units - sum(shares)
    by_remainder = sorted(range(len(requests)), key=lambda index: (-(units * requests[index] % total), index))
    for index in by_remainder[:left]:
        shares[index] += 1
    return shares
