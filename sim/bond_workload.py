"""The village's bond in the simulated workload: ``FOREST-ROAD``, from its issue to its redemption.

The treasury issues it early in the run, restricted, settled in JPYT, with two
coupons and the maturity a few seconds apart (``schedule``: about 2.6, 3.4 and
4.2 s into a run that starts well, so that they fall amid the faults or soon
after). A resident is its registrar and approves the residents one by one;
the treasury puts 600 of its 1,000 units on sale; the residents subscribe for
more than that in all (one of them cancels once and subscribes again for less),
and the chain allots at the window's end. Residents then trade units against
JPYT (delivery versus payment, signed by both), the treasury spends proceeds,
and the chain pays the coupons and the redemption out of the paying account.
In some runs that account holds too little: the payment is missed, the
treasury tops the account up (from the proceeds when they cover it) and the
chain pays late.

Every step reads the committed state and the block's timestamp only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from mura.chain.bond_rules import load_bond, load_bond_state, load_offering
from mura.chain.bonds import BondTerms, OfferingStatus, Subscription, offering_escrow
from mura.chain.pending import missed_key, subscriber_key, subscription_key
from mura.chain.transaction import (
    ApproveHolder,
    Body,
    CancelSubscription,
    IssueBond,
    OpenOffering,
    SettleTrade,
    SpendProceeds,
    Subscribe,
    Transfer,
)
from mura.sim.clients import CLIENT_COUNT, CLIENT_KEYS, JPYT, PAYING, ROAD, TREASURY, ClientView, TransactionSigner

#: Units the bond issues, and the units the offering puts on sale (the issuer keeps the rest).
ROAD_UNITS = 1_000
ROAD_OFFERED = 600
#: Face value and offering price of one unit, in JPYT.
ROAD_FACE = 10_000
ROAD_PRICE = 9_950
#: Bounds of one subscription, in units.
MIN_SUBSCRIPTION = 10
MAX_SUBSCRIPTION = 500
#: Offsets from the bond's issue time (virtual ms): the offering's end, the coupons, the maturity.
#: A block often reaches both the offering's end and the first coupon: it allots, and the next
#: one pays the coupon on the units allotted.
OFFERING_END_MS = 1_200
COUPON_OFFSETS_MS = (1_600, 2_400)
MATURITY_OFFSET_MS = 3_200
#: Every trade's deadline: far enough for any run, within the 30 days a trade may look ahead.
TRADE_DEADLINE_MS = 10**9
#: Each resident's and the treasury's JPYT at genesis.
CLIENT_JPYT = 10**9
#: What the paying account may hold at genesis: plenty; the coupons but not the redemption; too
#: little for the first coupon.
PAYING_FUNDS = (10**8, 10**8, 200_000, 1_000)
RESIDENTS = tuple(client for client in range(CLIENT_COUNT) if client != TREASURY)


@dataclass(frozen=True, slots=True)
class BondPlan:
    """What one run's bond looks like and how its residents act, drawn from the seed."""

    #: The issue time the schedule is counted from, unless the bond is issued later than this.
    anchor_ms: int
    rate: int
    frequency: int
    first_period_days: int
    green: bool
    #: The resident who approves holders, and the order it approves them in.
    registrar: int
    approval_order: tuple[int, ...]
    #: Units each resident asks for (by resident index in ``RESIDENTS``).
    asks: tuple[int, ...]
    #: The resident that cancels its first subscription and asks again for ``second_ask``.
    waverer: int
    second_ask: int
    #: The offering's minimum total (0: none).
    min_total: int
    #: The paying account's JPYT at genesis.
    paying_funds: int
    #: Who the treasury pays out of the proceeds.
    contractor: int

    @classmethod
    def draw(cls, seed: int) -> BondPlan:
        rng = random.Random(f"bond-workload-{seed}")
        order = list(RESIDENTS)
        rng.shuffle(order)
        asks = tuple(rng.randrange(150, MAX_SUBSCRIPTION + 1) for _ in RESIDENTS)
        return cls(
            anchor_ms=rng.randrange(800, 1_200),
            rate=rng.choice((20_000, 12_345, 4_550)),
            frequency=rng.choice((2, 4, 12)),
            first_period_days=rng.choice((0, 0, 45, 200)),
            green=rng.random() < 0.5,
            registrar=rng.choice(RESIDENTS),
            approval_order=tuple(order),
            asks=asks,
            waverer=rng.choice(RESIDENTS),
            second_ask=rng.randrange(MIN_SUBSCRIPTION, 150),
            min_total=rng.choice((0, 0, 0, 400)),
            paying_funds=rng.choice(PAYING_FUNDS),
            contractor=rng.choice(RESIDENTS),
        )

    def issue_time(self, timestamp_ms: int) -> int:
        """The issue time of a bond issued in a block dated ``timestamp_ms``: the anchor, or
        just after the block if the run got there late."""
        return max(self.anchor_ms, timestamp_ms + 1)

    def ask(self, resident: int) -> int:
        return self.asks[RESIDENTS.index(resident)]


def schedule(issue_ms: int) -> tuple[int, tuple[int, ...], int]:
    """The offering's end, the coupon times and the maturity of a bond issued at ``issue_ms``."""
    return (
        issue_ms + OFFERING_END_MS,
        tuple(issue_ms + offset for offset in COUPON_OFFSETS_MS),
        issue_ms + MATURITY_OFFSET_MS,
    )


def jpyt_allocations(plan: BondPlan) -> tuple[tuple[bytes, int], ...]:
    """JPYT at genesis: each client's, and the paying account's."""
    return (*((key.public_key, CLIENT_JPYT) for key in CLIENT_KEYS), (PAYING, plan.paying_funds))


# --- the treasury --------------------------------------------------------------------------


def issue_road(view: ClientView, plan: BondPlan, signer: TransactionSigner, timestamp_ms: int) -> Body | None:
    """The bond, with the paying account's consent to its terms."""
    if view.pending.asset(ROAD) is not None:
        return None
    issue_ms = plan.issue_time(timestamp_ms)
    _, coupons, maturity = schedule(issue_ms)
    return signer.consent(
        IssueBond(
            asset=ROAD,
            name="Forest Road Bond",
            units=ROAD_UNITS,
            registrar=CLIENT_KEYS[plan.registrar].public_key,
            policy="restricted",
            settlement=JPYT,
            face=ROAD_FACE,
            rate=plan.rate,
            frequency=plan.frequency,
            first_period_days=plan.first_period_days,
            coupon_times=coupons,
            maturity_ms=maturity,
            issue_ms=issue_ms,
            paying=PAYING,
            proceeds=b"",
            use_of_proceeds="forest road repair",
            green=plan.green,
        )
    )


def open_road_offering(view: ClientView, plan: BondPlan, timestamp_ms: int) -> Body | None:
    terms = load_bond(view.pending, ROAD)
    if terms is None or load_offering(view.pending, ROAD) is not None:
        return None
    end, _, _ = schedule(terms.issue_ms)
    if end <= timestamp_ms or view.balance(TREASURY, ROAD) < ROAD_OFFERED:
        return None
    return OpenOffering(ROAD, ROAD_OFFERED, ROAD_PRICE, 0, end, MIN_SUBSCRIPTION, MAX_SUBSCRIPTION, plan.min_total)


def spend_proceeds(view: ClientView, plan: BondPlan, amount: int) -> Body | None:
    """Pay the contractor out of what the offering raised."""
    state = load_bond_state(view.pending, ROAD)
    spend = min(state.raised - state.spent, 10_000 + amount)
    if spend <= 0 or view.balance(TREASURY, JPYT) < spend:
        return None
    return SpendProceeds(ROAD, CLIENT_KEYS[plan.contractor].public_key, spend, "forest road repair")


def fund_missed_payment(view: ClientView) -> Body | None:
    """When the bond's payment was missed, top the paying account up by what it lacks: out of
    the proceeds if they cover it, otherwise out of the treasury's own JPYT."""
    pending = view.pending
    terms = load_bond(pending, ROAD)
    if terms is None or not pending.flag(missed_key(ROAD)):
        return None
    shortfall = payment_due(view, terms) - pending.balance(PAYING, JPYT)
    if shortfall <= 0 or view.balance(TREASURY, JPYT) < shortfall:
        return None
    state = load_bond_state(pending, ROAD)
    if state.raised - state.spent >= shortfall:
        return SpendProceeds(ROAD, PAYING, shortfall, "coupon fund")
    return Transfer(JPYT, PAYING, shortfall, "coupon fund")


def payment_due(view: ClientView, terms: BondTerms) -> int:
    """What the bond's next payment takes from the paying account: its amount on every unit
    neither the issuer nor the offering holds."""
    pending = view.pending
    issuer = CLIENT_KEYS[TREASURY].public_key
    units = (
        pending.asset_state(ROAD).supply - pending.balance(issuer, ROAD) - pending.balance(offering_escrow(ROAD), ROAD)
    )
    return terms.payment_amount(load_bond_state(pending, ROAD).next_payment, units)


# --- the residents ---------------------------------------------------------------------------


def resident_body(view: ClientView, plan: BondPlan, client: int, timestamp_ms: int) -> Body | None:
    """What ``client`` does about the bond next: as registrar, approve the next resident;
    subscribe (or, the waverer, cancel once) while the offering is open; else None."""
    terms = view.pending.asset(ROAD)
    if terms is None:
        return None
    if client == plan.registrar:
        for resident in plan.approval_order:
            address = CLIENT_KEYS[resident].public_key
            if not view.pending.approved(terms, address):
                return ApproveHolder(ROAD, address)
    if not view.may_move(terms, client):
        return None
    return _subscription_step(view, plan, client, timestamp_ms)


def _subscription_step(view: ClientView, plan: BondPlan, client: int, timestamp_ms: int) -> Body | None:
    pending = view.pending
    offering = load_offering(pending, ROAD)
    address = CLIENT_KEYS[client].public_key
    if offering is None or offering.status is not OfferingStatus.OPEN or not timestamp_ms < offering.end_ms:
        return None
    sequence = pending.entry(subscriber_key(ROAD, address))
    if sequence is not None:
        raw = pending.entry(subscription_key(ROAD, int.from_bytes(sequence, "big")))
        asked = Subscription.decode(raw).units if raw is not None else 0
        return CancelSubscription(ROAD) if client == plan.waverer and asked != plan.second_ask else None
    # Only the waverer cancels: once anyone has, it asks again for less.
    units = plan.second_ask if client == plan.waverer and offering.sequence > offering.subscribers else plan.ask(client)
    if view.balance(client, JPYT) < units * offering.price:
        return None
    return Subscribe(ROAD, units)


def trade(view: ClientView, signer: TransactionSigner, client: int, nonce: int) -> Body | None:
    """A delivery-versus-payment trade sent by ``client``: it sells a few units to the next
    resident that may hold the bond, or, holding none, buys from the next one that holds
    some; the other party signs the same terms. None when no trade can settle now."""
    terms = view.live(ROAD)
    if terms is None or view.pending.asset_state(ROAD).locked or not view.may_move(terms, client):
        return None
    held = view.balance(client, ROAD)
    for step in range(1, CLIENT_COUNT):
        other = (client + step) % CLIENT_COUNT
        if other == TREASURY or not view.may_move(terms, other):
            continue
        seller, buyer = (client, other) if held else (other, client)
        units = min(view.balance(seller, ROAD), 1 + nonce % 5)
        amount = units * ROAD_PRICE
        if units <= 0 or view.balance(buyer, JPYT) < amount:
            continue
        offer = SettleTrade(
            ROAD, CLIENT_KEYS[seller].public_key, CLIENT_KEYS[buyer].public_key, units, amount,
            TRADE_DEADLINE_MS, bytes([client]) + nonce.to_bytes(4, "big"), b"",
        )  # fmt: skip
        return signer.countersign(other, offer)
    return None
