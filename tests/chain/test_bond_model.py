"""A stateful model of bonds: the real chain against a model in plain Python.

Hypothesis issues bonds, opens offerings, subscribes and cancels, approves, revokes and
freezes holders, moves units by transfer and by ``settle_trade`` (with real
signatures of both parties, and now and then a forged one or a replay), spends
proceeds, drains and refills the paying accounts, and seals blocks at times it
chooses, through the real state transition (each block built as a proposer does and
checked as a peer does). ``PAYMENTS_PER_BLOCK`` is made small so that payments go on
over several blocks.

The model is dict arithmetic written apart from ``chain.bond_rules``: it computes
each coupon from the terms with exact fractions, allots with fractions too, and
decides itself which transactions the rules let through. After every block:

- every balance of the settlement asset and of each bond, chain accounts included,
  equals the model's; each asset's supply is the sum of its balances; the settlement
  asset's supply changes only by what its issuer mints (to fund the paying accounts at
  the end) and a bond's only by the redemption's burns;
- the payment events of the block are exactly the model's: each holder paid its own
  share (units held at the end of the block before the payment started, times the
  rule, floored per holder), in account order, no holder paid twice for one payment.
  (A payment whose start waits for room in the budget starts after its time, on the
  holders then: ``test_bond_amounts`` has that as an expected failure; the model
  follows the chain there until it changes.)
- each bond's schedule state and records (late, units, holders, amount, retained)
  equal the model's: a payment the paying account cannot cover is missed, made at the
  first block after the paying account covers it, and then shows as late, as does a
  payment that fell due meanwhile;
- the chain's own work keeps to its budgets in the order the README gives (steps due
  soonest first, then missed payments that can now be made; an allotment waits for
  room; no payment starts in the block that allotted its bond);
- the escrow accounts are empty when no offering or payment is in progress;
- a bond whose payment is in progress is locked, and a transfer or trade of it is
  refused with ``payment_in_progress``, as it is from the first block that reaches a
  payment's time until the payment is made or missed.

``MURA_BOND_MODEL_EXAMPLES`` sets how many sequences to run (default 150, some ten
seconds; raise it for a longer search).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from mura.chain import bond_rules
from mura.chain.bonds import OfferingStatus, PaymentEvent, PaymentRecord, offering_escrow, payment_escrow
from mura.chain.errors import PaymentInProgress
from mura.chain.keys import SigningKey, verify_signature
from mura.chain.pending import offering_key
from mura.chain.transaction import (
    ApproveHolder,
    Body,
    CancelSubscription,
    Freeze,
    IssueBond,
    Mint,
    OpenOffering,
    RevokeHolder,
    SettleTrade,
    SpendProceeds,
    Subscribe,
    Transaction,
    Transfer,
    Unfreeze,
    paying_consent_payload,
    trade_payload,
)
from mura.tests.chain.bond_fixtures import BANK, FUNDS, RESIDENTS, SETTLEMENT, BondChain
from mura.tests.ledger_fixtures import ACCOUNTS, CHAIN_ID, ISSUER

#: The village: issuer and registrar of every bond, and the account its proceeds go to.
VILLAGE = ISSUER
#: Paying accounts a bond may name; the first also buys bonds.
PAYERS = [ACCOUNTS[4], ACCOUNTS[3]]
#: Where a drained paying account's money goes, and comes back from.
SAVER = ACCOUNTS[2]
#: Where spent proceeds go.
CONTRACTOR = ACCOUNTS[1]
INVESTORS = [*RESIDENTS[:5], PAYERS[0]]
#: Those who may hold and move units: the investors and the village.
PARTIES = [VILLAGE, *INVESTORS]
#: Bond ids of one length, so that the chain's order of ids (length, then bytes) is string order.
BONDS = ["BOND-A", "BOND-B"]
#: The settlement asset's supply: every genesis account of the fixture holds FUNDS.
GENESIS_HOLDERS = [ISSUER, *ACCOUNTS, *RESIDENTS]
RATE_SCALE = 1_000_000
#: A block is sealed by the rules that do so, or once this many transactions wait.
MAX_QUEUED = 6
EXAMPLES = int(os.environ.get("MURA_BOND_MODEL_EXAMPLES", "150"))

investor = st.integers(0, len(INVESTORS) - 1)
party = st.integers(0, len(PARTIES) - 1)
#: Picks a bond: mostly one that was issued (``some_bond``).
which = st.integers(0, 99)


def is_chain_account(address: bytes) -> bool:
    return address.startswith(b"mura/chain-acct\x00")


# --- the model -------------------------------------------------------------------------------


@dataclass
class ModelOffering:
    units: int
    price: int
    start_ms: int
    end_ms: int
    min_units: int
    max_units: int
    min_total: int
    status: OfferingStatus = OfferingStatus.OPEN
    #: Live subscriptions in subscription order: subscriber, units, and once allotted what it got and got back.
    orders: list[tuple[bytes, int, int, int]] = field(default_factory=list)
    allotted: int = 0
    unsold: int = 0
    refunded: int = 0
    proceeds: int = 0
    settled_height: int = 0


@dataclass
class ModelPayment:
    index: int
    #: Entitled units and what the rule gives on all of them together.
    units: int
    reserve: int
    #: Each entitled holder's units and amount, computed when the payment started.
    shares: dict[bytes, tuple[int, int]]
    #: Every holder of the bond when it started (the village too), in account order: the chain
    #: visits them in this order, a bounded number per block.
    order: list[bytes]
    #: It was missed, or fell due while an earlier payment was missed.
    late: bool
    visited: int = 0
    paid: int = 0
    holders: int = 0


@dataclass
class ModelBond:
    name: str
    face: int
    rate: int
    frequency: int
    first_period_days: int
    #: Coupon times, then the maturity.
    times: list[int]
    paying: bytes
    restricted: bool
    issued: int
    next_payment: int = 0
    #: While the next payment is missed: the timestamp of the first block that could not make it.
    missed_ms: int = 0
    #: The timestamp of the block that started the last late payment: the default ended there.
    cured_ms: int = 0
    #: The times at which the chain's queue holds a step of this bond (more than one while an
    #: offering is open: its end, and the next payment).
    queue: set[int] = field(default_factory=set)
    payment: ModelPayment | None = None
    records: list[PaymentRecord] = field(default_factory=list)
    offering: ModelOffering | None = None
    raised: int = 0
    spent: int = 0
    burned: int = 0

    def share(self, index: int, units: int) -> int:
        """What ``units`` receive from payment ``index``: face value at the redemption; else the
        annual rate on face * units over the odd first period's actual days / 365, or over one
        of ``frequency`` regular periods; floored."""
        if index == len(self.times) - 1:
            return self.face * units
        yearly = Fraction(self.face * units * self.rate, RATE_SCALE)
        if index == 0 and self.first_period_days:
            return math.floor(yearly * Fraction(self.first_period_days, 365))
        return math.floor(yearly / self.frequency)

    @property
    def missed(self) -> bool:
        return self.missed_ms > 0

    @property
    def redeemed(self) -> bool:
        return self.next_payment == len(self.times)

    def next_step_ms(self) -> int | None:
        """When the chain next has something to do for this bond: its open offering's end, or
        its next payment's time unless that payment is missed (then only a refill brings it)."""
        times = []
        if self.offering is not None and self.offering.status is OfferingStatus.OPEN:
            times.append(self.offering.end_ms)
        if not self.redeemed and not self.missed:
            times.append(self.times[self.next_payment])
        return min(times, default=None)


def allotment(units: int, requests: list[int]) -> list[int]:
    """Each request's exact pro-rata quota, floored; the units left go one each to the largest
    fractional parts, the earlier request first among equals."""
    total = sum(requests)
    if total <= units:
        return list(requests)
    quotas = [Fraction(units * asked, total) for asked in requests]
    shares = [math.floor(quota) for quota in quotas]
    ranking = sorted(range(len(requests)), key=lambda index: (shares[index] - quotas[index], index))
    for index in ranking[: units - sum(shares)]:
        shares[index] += 1
    return shares


@dataclass
class Model:
    per_block: int
    balances: dict[tuple[str, bytes], int]
    bonds: dict[str, ModelBond] = field(default_factory=dict)
    approved: set[tuple[str, bytes]] = field(default_factory=set)
    frozen: set[tuple[str, bytes]] = field(default_factory=set)
    settled_trades: set[bytes] = field(default_factory=set)
    #: The settlement asset's supply: what the genesis gave, and what its issuer minted since.
    settlement_supply: int = FUNDS * len(GENESIS_HOLDERS)

    def balance(self, asset: str, address: bytes) -> int:
        return self.balances.get((asset, address), 0)

    def move(self, asset: str, source: bytes, target: bytes, amount: int) -> None:
        assert 0 <= amount <= self.balance(asset, source), (asset, amount)
        self.set(asset, source, self.balance(asset, source) - amount)
        self.set(asset, target, self.balance(asset, target) + amount)

    def set(self, asset: str, address: bytes, value: int) -> None:
        if value:
            self.balances[(asset, address)] = value
        else:
            self.balances.pop((asset, address), None)

    def holdings(self, asset: str) -> dict[bytes, int]:
        return {address: value for (name, address), value in self.balances.items() if name == asset}

    def may_hold(self, bond: ModelBond, address: bytes) -> bool:
        return not bond.restricted or address == VILLAGE.public_key or (bond.name, address) in self.approved

    def is_frozen(self, asset: str, address: bytes) -> bool:
        return (asset, address) in self.frozen

    # the chain's own steps, before a block's transactions

    def automatic_steps(self, now: int, height: int) -> list[PaymentEvent]:
        """First the steps queued at times the block reaches, soonest first, then by id, within
        ``per_block`` (holders visited, subscriptions allotted); then, within a budget of their
        own, the bonds whose payment was missed before this block and whose paying account now
        covers it, in id order (as state keys order ids: by length, then the id; with so few
        missed bonds the chain looks at every one in each block)."""
        events: list[PaymentEvent] = []
        scheduled = sorted((time_ms, name) for name, bond in self.bonds.items() for time_ms in bond.queue)
        missed = sorted((len(name), name) for name, bond in self.bonds.items() if bond.missed)
        budget = self.per_block
        for time_ms, name in scheduled:
            if time_ms > now or budget <= 0:
                break
            bond = self.bonds[name]
            if time_ms in bond.queue:
                budget -= self.advance(bond, budget, time_ms, now, height, events)
        budget = self.per_block
        made = 0
        for _, name in missed:
            if budget <= 0:
                break
            bond = self.bonds[name]
            if bond.missed and self.balance(SETTLEMENT, bond.paying) >= self.reserve(bond)[1]:
                budget -= self.advance(bond, budget, None, now, height, events)
                made += 1
        if made > 1:
            event("two missed payments made in one block")
        return events

    def advance(
        self, bond: ModelBond, budget: int, queued: int | None, now: int, height: int, events: list[PaymentEvent]
    ) -> int:
        """The bond's due steps within ``budget``; what they cost (at least 1). An offering whose
        window ended is allotted if its subscriptions fit in the budget or nothing came before
        it in the block; no payment starts while it waits, nor in the block that allotted it.
        Then payments in schedule order."""
        offering = bond.offering
        cost = 0
        if offering is not None and offering.status is OfferingStatus.OPEN and offering.end_ms <= now:
            if len(offering.orders) <= budget or budget == self.per_block:
                cost += max(1, self.close_offering(bond, offering, height))
            else:
                event("an allotment waits for room")
            self.reschedule(bond, queued)
            return max(1, cost)
        if offering is not None and offering.settled_height == height:
            event("a payment due waits for the block after the allotment")
            self.reschedule(bond, queued)
            return 1
        while cost < budget and not bond.redeemed:
            if bond.payment is None:
                if bond.times[bond.next_payment] > now:
                    break
                cost += 1
                if not self.start_payment(bond, now):
                    break
            if cost >= budget:
                break
            limit = budget - cost
            visited = self.pay_holders(bond, limit, events)
            cost += max(1, visited)
            if visited == limit:
                break
            self.finish_payment(bond, now, height)
        self.reschedule(bond, queued)
        return max(1, cost)

    def reschedule(self, bond: ModelBond, queued: int | None) -> None:
        """The step just taken leaves the queue unless it is still the bond's next one."""
        wanted = bond.next_step_ms()
        if queued is not None and queued != wanted:
            bond.queue.discard(queued)
        if wanted is not None:
            bond.queue.add(wanted)

    def reserve(self, bond: ModelBond) -> tuple[dict[bytes, int], int]:
        """Who the next payment is made to (every holder but the village and chain accounts) and
        what it takes from the paying account: the rule on all their units together."""
        entitled = {
            address: units
            for address, units in self.holdings(bond.name).items()
            if address != VILLAGE.public_key and not is_chain_account(address)
        }
        return entitled, bond.share(bond.next_payment, sum(entitled.values()))

    def start_payment(self, bond: ModelBond, now: int) -> bool:
        """In full or not at all; a payment is late if it was missed, or fell due before the block
        that ended the bond's last default (while an earlier payment was missed)."""
        index = bond.next_payment
        entitled, reserve = self.reserve(bond)
        if self.balance(SETTLEMENT, bond.paying) < reserve:
            bond.missed_ms = bond.missed_ms or now
            return False
        late = bond.missed or bond.times[index] < bond.cured_ms
        bond.missed_ms = 0
        if late:
            bond.cured_ms = now
        self.move(SETTLEMENT, bond.paying, payment_escrow(bond.name), reserve)
        shares = {address: (held, bond.share(index, held)) for address, held in entitled.items()}
        order = sorted(self.holdings(bond.name))
        bond.payment = ModelPayment(index, sum(entitled.values()), reserve, shares, order, late)
        return True

    def pay_holders(self, bond: ModelBond, limit: int, events: list[PaymentEvent]) -> int:
        payment = bond.payment
        assert payment is not None
        visit = payment.order[payment.visited : payment.visited + limit]
        redemption = payment.index == len(bond.times) - 1
        for holder in visit:
            if holder not in payment.shares:
                continue
            units, amount = payment.shares.pop(holder)
            self.move(SETTLEMENT, payment_escrow(bond.name), holder, amount)
            if redemption:
                self.set(bond.name, holder, 0)
                bond.burned += units
            events.append(PaymentEvent(bond.name, payment.index, holder, units, amount))
            payment.paid += amount
            payment.holders += 1
        payment.visited += len(visit)
        return len(visit)

    def finish_payment(self, bond: ModelBond, now: int, height: int) -> None:
        payment = bond.payment
        assert payment is not None and not payment.shares, "a holder was left unpaid"
        retained = payment.reserve - payment.paid
        self.move(SETTLEMENT, payment_escrow(bond.name), bond.paying, retained)
        if payment.index == len(bond.times) - 1:
            bond.burned += self.balance(bond.name, VILLAGE.public_key)
            self.set(bond.name, VILLAGE.public_key, 0)
        bond.records.append(
            PaymentRecord(
                payment.index, payment.late, height, now, payment.units, payment.holders, payment.paid, retained
            )
        )
        event("payment paid late" if payment.late else "payment paid on time")
        bond.next_payment += 1
        bond.payment = None

    def close_offering(self, bond: ModelBond, offering: ModelOffering, height: int) -> int:
        escrow = offering_escrow(bond.name)
        eligible = [
            position
            for position, (subscriber, _, _, _) in enumerate(offering.orders)
            if self.may_hold(bond, subscriber) and not self.is_frozen(bond.name, subscriber)
        ]
        requests = [offering.orders[position][1] for position in eligible]
        cancelled = offering.min_total > 0 and sum(requests) < offering.min_total
        given = [0] * len(eligible) if cancelled else allotment(offering.units, requests)
        shares = dict(zip(eligible, given, strict=True))
        for position, (subscriber, units, _, _) in enumerate(offering.orders):
            allotted = shares.get(position, 0)
            refund = (units - allotted) * offering.price
            self.move(bond.name, escrow, subscriber, allotted)
            self.move(SETTLEMENT, escrow, subscriber, refund)
            offering.orders[position] = (subscriber, units, allotted, refund)
            offering.refunded += refund
        offering.allotted = sum(shares.values())
        offering.unsold = offering.units - offering.allotted
        offering.proceeds = offering.allotted * offering.price
        self.move(SETTLEMENT, escrow, VILLAGE.public_key, offering.proceeds)
        self.move(bond.name, escrow, VILLAGE.public_key, offering.unsold)
        offering.status = OfferingStatus.CANCELLED if cancelled else OfferingStatus.SETTLED
        offering.settled_height = height
        bond.raised += offering.proceeds
        event(f"offering {offering.status.value}{' oversubscribed' if sum(requests) > offering.units else ''}")
        return len(offering.orders)

    # transactions

    def refusal(self, transaction: Transaction, now: int) -> str | None:
        """Why the rules refuse ``transaction`` in a block at ``now`` (None: they let it through)."""
        body: Any = transaction.body
        sender = transaction.sender
        if isinstance(body, IssueBond):
            if body.asset in self.bonds:
                return "exists"
            return "schedule" if min(body.coupon_times, default=body.maturity_ms) <= now else None
        name = body.asset if hasattr(body, "asset") else body.bond
        if name == SETTLEMENT:
            return self.settlement_refusal(transaction)
        bond = self.bonds.get(name)
        if bond is None:
            return "no bond"
        if isinstance(body, ApproveHolder | RevokeHolder | Freeze | Unfreeze):
            return None
        if isinstance(body, Transfer):
            return self.transfer_refusal(bond, sender, body.recipient, body.amount, now)
        if isinstance(body, OpenOffering):
            return self.open_offering_refusal(bond, body, now)
        if isinstance(body, Subscribe):
            return self.subscribe_refusal(bond, sender, body.units, now)
        if isinstance(body, CancelSubscription):
            offering = bond.offering
            if offering is None or offering.status is not OfferingStatus.OPEN or now >= offering.end_ms:
                return "not open"
            return None if any(order[0] == sender for order in offering.orders) else "not subscribed"
        if isinstance(body, SettleTrade):
            return self.trade_refusal(bond, transaction, body, now)
        assert isinstance(body, SpendProceeds)
        if sender != VILLAGE.public_key or self.is_frozen(SETTLEMENT, sender):
            return "proceeds"
        enough = body.amount <= bond.raised - bond.spent and body.amount <= self.balance(SETTLEMENT, sender)
        return None if enough else "proceeds exceeded"

    def settlement_refusal(self, transaction: Transaction) -> str | None:
        body: Any = transaction.body
        if isinstance(body, Freeze | Unfreeze):
            return None if transaction.sender == BANK.public_key else "not registrar"
        if isinstance(body, Mint):
            return "frozen" if self.is_frozen(SETTLEMENT, body.recipient) else None
        assert isinstance(body, Transfer)
        if self.is_frozen(SETTLEMENT, transaction.sender) or self.is_frozen(SETTLEMENT, body.recipient):
            return "frozen"
        return None if 0 < body.amount <= self.balance(SETTLEMENT, transaction.sender) else "funds"

    @staticmethod
    def units_held_still(bond: ModelBond, now: int) -> bool:
        """A bond's units do not move while a payment is made, nor once its time has come
        until it is made (unless it was missed)."""
        due = bond.next_payment < len(bond.times) and bond.times[bond.next_payment] <= now and not bond.missed_ms
        return bond.payment is not None or due

    def transfer_refusal(self, bond: ModelBond, sender: bytes, recipient: bytes, units: int, now: int) -> str | None:
        if units <= 0:
            return "amount"
        if self.units_held_still(bond, now):
            return "locked"
        if self.is_frozen(bond.name, sender) or self.is_frozen(bond.name, recipient):
            return "frozen"
        if not (self.may_hold(bond, sender) and self.may_hold(bond, recipient)):
            return "not approved"
        return None if units <= self.balance(bond.name, sender) else "funds"

    def open_offering_refusal(self, bond: ModelBond, body: OpenOffering, now: int) -> str | None:
        next_time = bond.times[bond.next_payment] if bond.next_payment < len(bond.times) else None
        problems = [
            bond.offering is not None,
            bond.payment is not None,
            self.is_frozen(bond.name, VILLAGE.public_key),
            body.units <= 0 or body.units > self.balance(bond.name, VILLAGE.public_key),
            body.end_ms <= max(now, body.start_ms),
            next_time is None or body.end_ms > next_time,
            not 1 <= body.min_units <= body.units,
            body.max_units != 0 and not body.min_units <= body.max_units <= body.units,
            body.min_total > body.units,
        ]
        return "offering" if any(problems) else None

    def subscribe_refusal(self, bond: ModelBond, sender: bytes, units: int, now: int) -> str | None:
        offering = bond.offering
        if offering is None or offering.status is not OfferingStatus.OPEN:
            return "no offering"
        problems = [
            not offering.start_ms <= now < offering.end_ms,
            any(order[0] == sender for order in offering.orders),
            not offering.min_units <= units <= (offering.max_units or offering.units),
            not self.may_hold(bond, sender),
            self.is_frozen(bond.name, sender) or self.is_frozen(SETTLEMENT, sender),
            units * offering.price > self.balance(SETTLEMENT, sender),
        ]
        return "subscription" if any(problems) else None

    def trade_refusal(self, bond: ModelBond, transaction: Transaction, body: SettleTrade, now: int) -> str | None:
        seller, buyer = body.seller, body.buyer
        counterparty = buyer if transaction.sender == seller else seller
        problems = [
            seller == buyer,
            now > body.deadline_ms,
            trade_payload(CHAIN_ID, body) in self.settled_trades,
            bond.redeemed,
            self.units_held_still(bond, now),
            not (self.may_hold(bond, seller) and self.may_hold(bond, buyer)),
            any(self.is_frozen(asset, who) for asset in (bond.name, SETTLEMENT) for who in (seller, buyer)),
            body.units > self.balance(bond.name, seller),
            body.amount > self.balance(SETTLEMENT, buyer),
            not verify_signature(counterparty, body.counterparty_signature, trade_payload(CHAIN_ID, body)),
        ]
        return "trade" if any(problems) else None

    def apply(self, transaction: Transaction, now: int) -> None:
        body: Any = transaction.body
        sender = transaction.sender
        if isinstance(body, IssueBond):
            self.bonds[body.asset] = ModelBond(
                body.asset,
                body.face,
                body.rate,
                body.frequency,
                body.first_period_days,
                [*body.coupon_times, body.maturity_ms],
                body.paying,
                body.policy == "restricted",
                body.units,
                queue={body.coupon_times[0] if body.coupon_times else body.maturity_ms},
            )
            self.set(body.asset, sender, body.units)
        elif isinstance(body, ApproveHolder | RevokeHolder):
            (self.approved.add if isinstance(body, ApproveHolder) else self.approved.discard)(
                (body.asset, body.account)
            )
        elif isinstance(body, Freeze | Unfreeze):
            (self.frozen.add if isinstance(body, Freeze) else self.frozen.discard)((body.asset, body.account))
        elif isinstance(body, Transfer):
            self.move(body.asset, sender, body.recipient, body.amount)
        elif isinstance(body, Mint):
            self.set(SETTLEMENT, body.recipient, self.balance(SETTLEMENT, body.recipient) + body.amount)
            self.settlement_supply += body.amount
        elif isinstance(body, OpenOffering):
            self.move(body.bond, sender, offering_escrow(body.bond), body.units)
            self.bonds[body.bond].offering = ModelOffering(
                body.units, body.price, body.start_ms, body.end_ms, body.min_units, body.max_units, body.min_total
            )
            self.bonds[body.bond].queue.add(body.end_ms)
        elif isinstance(body, Subscribe):
            offering = self.bonds[body.bond].offering
            assert offering is not None
            self.move(SETTLEMENT, sender, offering_escrow(body.bond), body.units * offering.price)
            offering.orders.append((sender, body.units, 0, 0))
        elif isinstance(body, CancelSubscription):
            offering = self.bonds[body.bond].offering
            assert offering is not None
            order = next(order for order in offering.orders if order[0] == sender)
            offering.orders.remove(order)
            self.move(SETTLEMENT, offering_escrow(body.bond), sender, order[1] * offering.price)
        elif isinstance(body, SettleTrade):
            self.move(body.bond, body.seller, body.buyer, body.units)
            self.move(SETTLEMENT, body.buyer, body.seller, body.amount)
            self.settled_trades.add(trade_payload(CHAIN_ID, body))
            event("trade settled")
        else:
            assert isinstance(body, SpendProceeds)
            self.move(SETTLEMENT, sender, body.recipient, body.amount)
            self.bonds[body.bond].spent += body.amount


# --- the machine -----------------------------------------------------------------------------


class BondModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.chain = BondChain()
        self.saved_budget = bond_rules.PAYMENTS_PER_BLOCK
        balances = {(SETTLEMENT, account.public_key): FUNDS for account in GENESIS_HOLDERS}
        self.model = Model(per_block=self.saved_budget, balances=balances)
        self.queued: list[Transaction] = []
        self.trades: list[tuple[SigningKey, SettleTrade]] = []
        #: (bond, payment, holder) of every share paid so far.
        self.paid: set[tuple[str, int, bytes]] = set()
        assert self.chain.state.balances(SETTLEMENT) == self.model.holdings(SETTLEMENT)

    def teardown(self) -> None:
        bond_rules.PAYMENTS_PER_BLOCK = self.saved_budget

    @initialize(
        budget=st.sampled_from([1, 2, 3, 5, 1_000]),
        units=st.integers(8, 60),
        rate=st.sampled_from([0, 4_550, 5_000, 123_457]),
        first_period_days=st.sampled_from([0, 0, 92, 240]),
        restricted=st.booleans(),
        offer=st.sampled_from([0, 1, 2]),
        min_total=st.sampled_from([0, 0, 10, 60]),
        orders=st.lists(st.integers(1, 30), max_size=len(INVESTORS)),
    )
    def start(
        self,
        budget: int,
        units: int,
        rate: int,
        first_period_days: int,
        restricted: bool,
        offer: int,
        min_total: int,
        orders: list[int],
    ) -> None:
        """Payments of at most ``budget`` holders a block; a first bond, most investors approved,
        and (``offer`` 1 or 2) all or half of its units offered until 20 seconds on, for which
        investor ``i`` asks ``orders[i]``."""
        bond_rules.PAYMENTS_PER_BLOCK = self.model.per_block = budget
        self.issue_bond("BOND-A", units, 10_000, rate, 2, first_period_days, 2, 30, 15, 10, 0, restricted)
        for account in INVESTORS[:4]:
            self.queue(VILLAGE, ApproveHolder("BOND-A", account.public_key))
        if offer:
            now = self.chain.time_ms
            on_sale = units // offer
            self.queue(
                VILLAGE, OpenOffering("BOND-A", on_sale, 10_000, now, now + 20_000, 1, 0, min(min_total, on_sale))
            )
        self.seal(1_000)
        for account, asked in zip(INVESTORS, orders, strict=False):
            self.queue(account, Subscribe("BOND-A", asked))
        self.seal(1_000)

    def queue(self, signer: SigningKey, body: Body) -> Transaction:
        transaction = self.chain.sign(signer, body)
        self.queued.append(transaction)
        if len(self.queued) >= MAX_QUEUED:
            self.seal(1_000)
        return transaction

    # --- transactions ---------------------------------------------------------------------

    @rule(
        bond=st.sampled_from(BONDS),
        units=st.integers(8, 60),
        face=st.sampled_from([1_000, 3_333, 10_000]),
        rate=st.sampled_from([0, 4_550, 5_000, 123_457]),
        frequency=st.sampled_from([1, 2, 4, 12]),
        first_period_days=st.sampled_from([0, 0, 92, 240]),
        coupons=st.integers(1, 3),
        first_s=st.sampled_from([10, 30, 60]),
        spacing_s=st.sampled_from([5, 15, 30]),
        maturity_s=st.sampled_from([0, 10]),
        payer=st.sampled_from([0, 0, 1]),
        restricted=st.booleans(),
    )
    def issue_bond(
        self,
        bond: str,
        units: int,
        face: int,
        rate: int,
        frequency: int,
        first_period_days: int,
        coupons: int,
        first_s: int,
        spacing_s: int,
        maturity_s: int,
        payer: int,
        restricted: bool,
    ) -> None:
        """Coupons ``first_s`` seconds after the head, then every ``spacing_s``; the maturity
        ``maturity_s`` after the last coupon (0: the last coupon and the redemption at once)."""
        now = self.chain.time_ms
        times = tuple(now + (first_s + spacing_s * index) * 1_000 for index in range(coupons)) if rate else ()
        maturity = (times[-1] if times else now + first_s * 1_000) + (maturity_s * 1_000 if times else 0)
        body = IssueBond(
            asset=bond,
            name="Forest road bond",
            units=units,
            registrar=b"",
            policy="restricted" if restricted else "open",
            settlement=SETTLEMENT,
            face=face,
            rate=rate,
            frequency=frequency,
            first_period_days=first_period_days if rate else 0,
            coupon_times=times,
            maturity_ms=maturity,
            issue_ms=now,
            paying=PAYERS[payer].public_key,
            proceeds=b"",
            use_of_proceeds="forest road repair",
            green=True,
        )
        consent = PAYERS[payer].sign(paying_consent_payload(CHAIN_ID, VILLAGE.public_key, body))
        self.queue(VILLAGE, replace(body, paying_consent=consent))

    @rule(
        which=which,
        who=investor,
        action=st.sampled_from([ApproveHolder, ApproveHolder, RevokeHolder, Freeze, Unfreeze]),
    )
    def registrar_acts(self, which: int, who: int, action: type[ApproveHolder]) -> None:
        self.queue(VILLAGE, action(self.some_bond(which), INVESTORS[who].public_key))

    @rule(who=investor, freeze=st.booleans())
    def bank_freezes(self, who: int, freeze: bool) -> None:
        """The settlement asset's registrar freezes or unfreezes an investor in it."""
        self.queue(BANK, (Freeze if freeze else Unfreeze)(SETTLEMENT, INVESTORS[who].public_key))

    @rule(
        pick=st.integers(0, 99),
        fraction=st.sampled_from([1, 2]),
        price=st.sampled_from([1, 7, 10_000]),
        start_s=st.sampled_from([0, 2]),
        end=st.sampled_from(["soon", "later", "at the payment"]),
        min_units=st.sampled_from([1, 1, 2]),
        max_units=st.sampled_from([0, 0, 5, 20]),
        min_total=st.sampled_from([0, 0, 3, 20]),
    )
    def open_offering(
        self,
        pick: int,
        fraction: int,
        price: int,
        start_s: int,
        end: str,
        min_units: int,
        max_units: int,
        min_total: int,
    ) -> None:
        """Mostly of a bond that has had no offering yet."""
        now = self.chain.time_ms
        fresh = [name for name, terms in self.model.bonds.items() if terms.offering is None]
        bond = fresh[pick % len(fresh)] if fresh and pick % 5 else BONDS[pick % len(BONDS)]
        terms = self.model.bonds.get(bond)
        next_time = terms.times[terms.next_payment] if terms and terms.next_payment < len(terms.times) else now
        end_ms = {"soon": now + 3_000, "later": now + 15_000, "at the payment": next_time}[end]
        units = self.model.balance(bond, VILLAGE.public_key) // fraction
        self.queue(
            VILLAGE, OpenOffering(bond, units, price, now + start_s * 1_000, end_ms, min_units, max_units, min_total)
        )

    def offered(self, pick: int) -> str:
        """Mostly a bond whose offering is open; now and then any."""
        open_now = [
            name
            for name, bond in self.model.bonds.items()
            if bond.offering is not None and bond.offering.status is OfferingStatus.OPEN
        ]
        return open_now[pick % len(open_now)] if open_now and pick % 5 else BONDS[pick % len(BONDS)]

    @rule(who=investor, pick=st.integers(0, 99), units=st.sampled_from([1, 2, 5, 20]))
    def subscribe(self, who: int, pick: int, units: int) -> None:
        self.queue(INVESTORS[who], Subscribe(self.offered(pick), units))

    @rule(who=investor, pick=st.integers(0, 99))
    def cancel_subscription(self, who: int, pick: int) -> None:
        self.queue(INVESTORS[who], CancelSubscription(self.offered(pick)))

    @rule(who=investor, which=which, units=st.sampled_from([1, 2, 7]))
    def village_sells(self, who: int, which: int, units: int) -> None:
        """The village hands units it holds to an investor (outside any offering)."""
        self.queue(VILLAGE, Transfer(self.some_bond(which), INVESTORS[who].public_key, units))

    def some_bond(self, pick: int) -> str:
        """Mostly a bond that was issued; now and then either id."""
        issued = sorted(self.model.bonds)
        return issued[pick % len(issued)] if issued and pick % 5 else BONDS[pick % len(BONDS)]

    def holder(self, bond: str, pick: int) -> SigningKey:
        """Mostly one of the parties holding the bond; now and then anyone."""
        holders = sorted(address for address in self.model.holdings(bond) if not is_chain_account(address))
        if not holders or pick % 5 == 0:
            return PARTIES[pick % len(PARTIES)]
        return signer_of(holders[pick % len(holders)])

    @rule(pick=st.integers(0, 99), recipient=party, which=which, units=st.sampled_from([1, 3, 0]))
    def transfer_units(self, pick: int, recipient: int, which: int, units: int) -> None:
        """``units`` 0: the sender's whole holding."""
        bond = self.some_bond(which)
        source = self.holder(bond, pick)
        amount = units or self.model.balance(bond, source.public_key)
        if amount:
            self.queue(source, Transfer(bond, PARTIES[recipient].public_key, amount))

    @rule(
        seller=st.integers(0, 99),
        buyer=party,
        which=which,
        units=st.sampled_from([1, 2, 5, 0]),
        amount=st.sampled_from([1, 5_000, 50_000]),
        by_seller=st.booleans(),
        forged=st.sampled_from([False, False, False, True]),
        deadline_ms=st.sampled_from([500, 60_000, 60_000]),
    )
    def settle_trade(
        self,
        seller: int,
        buyer: int,
        which: int,
        units: int,
        amount: int,
        by_seller: bool,
        forged: bool,
        deadline_ms: int,
    ) -> None:
        """Signed by the counterparty over the terms (or, forged, by the sender itself); ``units``
        0: the seller's whole holding."""
        bond = self.some_bond(which)
        selling, buying = self.holder(bond, seller), PARTIES[buyer]
        units = units or max(1, self.model.balance(bond, selling.public_key))
        sender, counterparty = (selling, buying) if by_seller else (buying, selling)
        terms = SettleTrade(
            bond, selling.public_key, buying.public_key, units, amount, self.chain.time_ms + deadline_ms,
            f"trade-{len(self.trades)}".encode(), bytes(64),
        )  # fmt: skip
        signer = sender if forged else counterparty
        trade = replace(terms, counterparty_signature=signer.sign(trade_payload(CHAIN_ID, terms)))
        self.trades.append((sender, trade))
        self.queue(sender, trade)

    @precondition(lambda self: self.trades)
    @rule(pick=st.integers(min_value=0))
    def replay_trade(self, pick: int) -> None:
        """A trade sent again: refused once it has settled."""
        sender, trade = self.trades[pick % len(self.trades)]
        self.queue(sender, trade)

    @rule(which=which, amount=st.sampled_from([1, 1_000, 100_000]))
    def spend_proceeds(self, which: int, amount: int) -> None:
        self.queue(VILLAGE, SpendProceeds(self.some_bond(which), CONTRACTOR.public_key, amount, "road repair"))

    def paying_account(self, pick: int) -> SigningKey:
        """Mostly the paying account of a bond that was issued."""
        issued = sorted(self.model.bonds)
        if issued and pick % 5:
            return signer_of(self.model.bonds[issued[pick % len(issued)]].paying)
        return PAYERS[pick % len(PAYERS)]

    @rule(pick=st.integers(0, 99), keep=st.sampled_from([0, 0, 1, 100]))
    def drain_paying_account(self, pick: int, keep: int) -> None:
        """A paying account sends away all but ``keep``: the next payment it owes may be missed."""
        account = self.paying_account(pick)
        balance = self.model.balance(SETTLEMENT, account.public_key)
        if balance > keep:
            self.queue(account, Transfer(SETTLEMENT, SAVER.public_key, balance - keep))

    @rule(pick=st.integers(0, 99), amount=st.sampled_from([1, 100, 10_000, FUNDS]))
    def refill_paying_account(self, pick: int, amount: int) -> None:
        self.queue(SAVER, Transfer(SETTLEMENT, self.paying_account(pick).public_key, amount))

    @precondition(lambda self: any(bond.payment is not None for bond in self.model.bonds.values()))
    @rule(pick=st.integers(min_value=0))
    def transfer_during_payment(self, pick: int) -> None:
        """A holder of a bond being paid sends a unit to the village (always allowed to hold it)."""
        bond = next(bond for bond in self.model.bonds.values() if bond.payment is not None)
        holders = sorted(address for address in self.model.holdings(bond.name) if address != VILLAGE.public_key)
        if holders:
            holder = signer_of(holders[pick % len(holders)])
            self.queue(holder, Transfer(bond.name, VILLAGE.public_key, 1))

    # --- blocks ---------------------------------------------------------------------------

    @rule(advance_ms=st.sampled_from([0, 1_000, 1_000, 2_000, 5_000]))
    def seal(self, advance_ms: int) -> None:
        self.seal_at(self.chain.time_ms + advance_ms)

    @rule()
    def seal_at_next_step(self) -> None:
        """An empty block exactly at the soonest offering end or payment time still ahead."""
        now = self.chain.time_ms
        ahead = [time_ms for time_ms in self.step_times() if time_ms > now]
        self.seal_at(min(ahead, default=now + 1_000))

    @rule(skip=st.integers(1, 5))
    def seal_past_several_steps(self, skip: int) -> None:
        """A block that comes late: it reaches the ``skip + 1`` soonest steps still ahead at once
        (an offering's end and the payment after it, two coupons, a coupon and the maturity)."""
        now = self.chain.time_ms
        ahead = sorted({time_ms for time_ms in self.step_times() if time_ms > now})
        self.seal_at(ahead[min(skip, len(ahead) - 1)] if ahead else now + 20_000)

    @precondition(
        lambda self: (
            len(self.chain.changes) >= 15
            and not all(bond.redeemed for bond in self.model.bonds.values())
        )
    )
    @rule()
    def run_to_maturity(self) -> None:
        """Unfreeze everyone in the settlement asset, mint each paying account more than it may
        owe, and seal blocks at each next step until every bond is redeemed and every unit burned."""
        self.seal_at(self.chain.time_ms)
        for asset, address in sorted(self.model.frozen):
            if asset == SETTLEMENT:
                self.queue(BANK, Unfreeze(SETTLEMENT, address))
        self.seal_at(self.chain.time_ms)
        for payer in PAYERS:
            if self.model.balance(SETTLEMENT, payer.public_key) < FUNDS:
                self.queue(BANK, Mint(SETTLEMENT, payer.public_key, FUNDS))
        self.seal_at(self.chain.time_ms)
        for _ in range(500):
            if all(bond.redeemed for bond in self.model.bonds.values()):
                break
            self.seal_at(max(self.chain.time_ms, min(self.step_times(), default=0)))
        for name, bond in self.model.bonds.items():
            assert bond.redeemed, name
            assert self.chain.state.load_asset_state(name).supply == 0
            assert self.chain.state.balances(name) == {}

    def step_times(self) -> list[int]:
        times = [self.chain.time_ms for bond in self.model.bonds.values() if bond.missed]
        return times + [time_ms for bond in self.model.bonds.values() if (time_ms := bond.next_step_ms()) is not None]

    def seal_at(self, timestamp_ms: int) -> None:
        """Seal the queued transactions at ``timestamp_ms``; the model predicts the block and
        everything it changes, and both are compared."""
        now = max(timestamp_ms, self.chain.time_ms)
        assert self.chain.block is not None
        height = self.chain.block.height + 1
        expected_events = self.model.automatic_steps(now, height)
        included: list[Transaction] = []
        locked: set[bytes] = set()
        stopped: set[bytes] = set()
        for transaction in self.queued:
            # After a refused transaction, the sender's later ones in the block skip a nonce.
            reason = "nonce" if transaction.sender in stopped else self.model.refusal(transaction, now)
            if reason is None:
                self.model.apply(transaction, now)
                included.append(transaction)
            else:
                stopped.add(transaction.sender)
                if reason == "locked":
                    locked.add(transaction.hash)
        queued, self.queued = self.queued, []
        refused = self.chain.seal(queued, at_ms=now)
        assert self.chain.block.header.timestamp_ms == now
        why = [(type(transaction.body).__name__, error.rule, error.message) for transaction, error in refused]
        assert [tx.hash for tx in self.chain.block.transactions] == [tx.hash for tx in included], why
        for transaction, error in refused:
            if transaction.hash in locked:
                assert isinstance(error, PaymentInProgress), error.message
                event("transfer refused: payment in progress")
        events = list(self.chain.changes[-1].events)
        assert events == expected_events
        for paid in events:
            share = (paid.bond, paid.index, paid.holder)
            assert share not in self.paid, f"{share} paid twice"
            self.paid.add(share)
        self.check_state()

    # --- what must hold after every block -------------------------------------------------

    def check_state(self) -> None:
        chain, model = self.chain, self.model
        for asset in [SETTLEMENT, *model.bonds]:
            balances = chain.state.balances(asset)
            assert balances == model.holdings(asset), asset
            state = chain.state.load_asset_state(asset)
            assert state.supply == sum(balances.values()) and state.holders == len(balances), asset
        assert sum(chain.state.balances(SETTLEMENT).values()) == model.settlement_supply
        for name, bond in model.bonds.items():
            self.check_bond(bond)
            self.check_escrows(name)

    def check_bond(self, bond: ModelBond) -> None:
        chain, name = self.chain, bond.name
        asset_state = chain.state.load_asset_state(name)
        # Units change only by the redemption's burns.
        assert asset_state.supply == bond.issued - bond.burned
        assert asset_state.locked == (bond.payment is not None)
        stored = chain.bond_state(name)
        assert (stored.next_payment, stored.missed_ms, stored.cured_ms, stored.raised, stored.spent) == (
            bond.next_payment, bond.missed_ms, bond.cured_ms, bond.raised, bond.spent,
        )  # fmt: skip
        assert stored.records == tuple(bond.records)
        payment = bond.payment
        assert stored.paying == (payment is not None)
        assert stored.late == (payment is not None and payment.late)
        if payment is not None:
            event("payment goes on over blocks")
            assert (stored.units, stored.reserved, stored.paid, stored.holders_paid) == (
                payment.units, payment.reserve - payment.paid, payment.paid, payment.holders,
            )  # fmt: skip
        if bond.missed:
            event("payment missed")
        offering = bond.offering
        if offering is None:
            assert chain.state.load_entry(offering_key(name)) is None
            return
        stored_offering = chain.offering(name)
        assert (stored_offering.status, stored_offering.allotted, stored_offering.unsold) == (
            offering.status, offering.allotted, offering.unsold,
        )  # fmt: skip
        assert (stored_offering.refunded, stored_offering.proceeds, stored_offering.settled_height) == (
            offering.refunded, offering.proceeds, offering.settled_height,
        )  # fmt: skip
        subscriptions = [(s.subscriber, s.units, s.allotted, s.refunded) for s in chain.subscriptions(name)]
        assert subscriptions == offering.orders

    def check_escrows(self, bond: str) -> None:
        """From the chain alone: the escrows hold something only while their offering or
        payment is in progress, and the payment escrow what is left of the sum reserved."""
        chain = self.chain
        raw = chain.state.load_entry(offering_key(bond))
        if raw is None or chain.offering(bond).status is not OfferingStatus.OPEN:
            assert chain.balance(offering_escrow(bond), SETTLEMENT) == 0
            assert chain.balance(offering_escrow(bond), bond) == 0
        stored = chain.bond_state(bond)
        assert chain.balance(payment_escrow(bond), SETTLEMENT) == (stored.reserved if stored.paying else 0)
        assert chain.balance(payment_escrow(bond), bond) == 0


def signer_of(address: bytes) -> SigningKey:
    return next(key for key in [*PARTIES, *PAYERS] if key.public_key == address)


BondModel.TestCase.settings = settings(max_examples=EXAMPLES, stateful_step_count=100, deadline=None)
TestBondModel = BondModel.TestCase
