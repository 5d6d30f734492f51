"""The books of bonds, checked block by block as the final chain is replayed.

For each block the audit compares what every bond looked like before it (the
state at the end of the previous block) with what it looks like after, and with
the payment events the block reports:

- Conservation: in every asset, the balances change by what its supply changes,
  and the supply only by the block's issues, mints and burns and the units a
  redemption retires (so the settlement asset is conserved, and bond units are).
- Escrows: the offering's escrow holds the units on sale and every live
  subscription's price while the offering is open, nothing after; the payment
  escrow holds what is left of a payment's reserve while it is made, nothing
  otherwise; a bond's units are locked exactly while a payment is made.
- Payments: a holder's share is the payment's amount on the units it held at the
  end of the block before the payment started; each holder is paid once per
  payment; a finished payment's record adds up its events (holders, units,
  amount), and its amount and what rounding retained make the sum due on the
  units it was made on; it is late exactly when it was missed, or fell due while
  an earlier one was missed.
- Timing: no step before its time; once a payment's time has passed it is made,
  under way or missed, unless the bond was busy with an earlier step in that
  block; a payment is missed only when the paying account held too little, made
  only when it held enough, and after a miss made in the first block that finds
  it holding enough; none starts in the block that allots the offering; an
  offering is allotted in the first block at or past its end, pro rata: nobody
  gets more than it asked, everything is allotted when it is oversubscribed, and
  each share is within one unit of the exact pro-rata share.

It also tells which blocks had a bond step due when they began (``steps_due``):
an idle chain proposes those early (``next_due_ms``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import cast

from mura.chain.assets import AssetTerms, asset_key, split_asset_key
from mura.chain.block import Block
from mura.chain.bond_rules import load_bond, load_bond_state, load_offering
from mura.chain.bonds import (
    BondState,
    BondTerms,
    Offering,
    OfferingStatus,
    PaymentEvent,
    PaymentKind,
    Subscription,
    is_chain_account,
    offering_escrow,
    payment_escrow,
)
from mura.chain.pending import (
    BALANCE_PREFIX,
    BOND_PREFIX,
    BOND_QUEUE_PREFIX,
    SUBSCRIPTION_PREFIX,
    MemoryState,
    StateChanges,
    approval_key,
    bond_state_key,
    decode_balance,
    frozen_key,
    missed_key,
)
from mura.chain.transaction import Burn, IssueAsset, IssueBond, Mint

#: A page size that reads a whole table.
_EVERY = 1 << 62


@dataclass(frozen=True)
class BondView:
    """One bond as a state shows it."""

    terms: BondTerms
    asset: AssetTerms
    state: BondState
    offering: Offering | None
    #: Units held by each holder a payment pays (neither the issuer nor a chain account).
    holders: dict[bytes, int]
    issuer_units: int
    escrow_units: int
    supply: int
    locked: bool
    missed: bool
    paying_balance: int
    offering_escrow_balance: int
    payment_escrow_balance: int
    #: While the offering is open: its subscriptions, and the subscribers that may receive the bond.
    subscriptions: tuple[Subscription, ...] = ()
    eligible: frozenset[bytes] = frozenset()

    @classmethod
    def read(cls, state: MemoryState, bond: str) -> BondView:
        terms, asset = load_bond(state, bond), state.load_asset(bond)
        assert terms is not None and asset is not None
        entries = state.load_entries_after(BALANCE_PREFIX + asset_key(bond), b"", _EVERY)
        balances = {holder: decode_balance(value) for holder, value in entries}
        escrow = offering_escrow(bond)
        asset_state = state.load_asset_state(bond)
        offering = load_offering(state, bond)
        subscriptions: tuple[Subscription, ...] = ()
        if offering is not None and offering.status is OfferingStatus.OPEN:
            subscriptions = subscriptions_of(state, bond)
        return cls(
            terms=terms,
            asset=asset,
            state=load_bond_state(state, bond),
            offering=offering,
            holders={
                holder: units
                for holder, units in balances.items()
                if holder != asset.issuer and not is_chain_account(holder)
            },
            issuer_units=balances.get(asset.issuer, 0),
            escrow_units=balances.get(escrow, 0),
            supply=asset_state.supply,
            locked=asset_state.locked,
            missed=state.load_entry(missed_key(bond)) is not None,
            paying_balance=state.load_balance(terms.paying, terms.settlement),
            offering_escrow_balance=state.load_balance(escrow, terms.settlement),
            payment_escrow_balance=state.load_balance(payment_escrow(bond), terms.settlement),
            subscriptions=subscriptions,
            eligible=frozenset(
                item.subscriber for item in subscriptions if _may_receive(state, asset, item.subscriber)
            ),
        )

    @property
    def entitled_units(self) -> int:
        """Units the next payment is made on: all but the issuer's and the offering's."""
        return self.supply - self.issuer_units - self.escrow_units

    def next_due(self) -> int:
        """What the next payment takes from the paying account."""
        return self.terms.payment_amount(self.state.next_payment, self.entitled_units)

    def payable(self) -> bool:
        return self.paying_balance >= self.next_due()


@dataclass
class AuditedPayment:
    """A payment started: the holders it must pay, the units it is made on, and what it paid so far."""

    expected: dict[bytes, int]
    units: int
    #: Whether it was made late (``BondAudit._check_starts``).
    late: bool
    paid: Counter[bytes] = field(default_factory=Counter)
    amount: int = 0
    #: Blocks in which it paid someone.
    blocks: int = 0


@dataclass
class BondAudit:
    """Replays alongside the final chain and collects what breaks the books of bonds.

    For each block: ``views`` of the bonds before it, ``check_block`` with its changes
    before they are committed, ``check_after`` once they are."""

    problems: list[str] = field(default_factory=list)
    #: Heights whose block began with a bond step due (its timestamp reached it).
    steps_due: set[int] = field(default_factory=set)
    #: Payments (bond, index) whose holders were paid over more than one block.
    spread: set[tuple[str, int]] = field(default_factory=set)
    #: Every payment started, by (bond, index): whom it had to pay, and what it paid.
    payments: dict[tuple[str, int], AuditedPayment] = field(default_factory=dict)
    _bonds: list[str] = field(default_factory=list)
    _views: dict[str, BondView] = field(default_factory=dict)
    _paid: set[tuple[str, int, bytes]] = field(default_factory=set)
    _missed: set[tuple[str, int]] = field(default_factory=set)
    #: By bond: the timestamp of the block in which its last late payment started.
    _cured: dict[str, int] = field(default_factory=dict)

    def views(self) -> dict[str, BondView]:
        """Every bond as the last block checked left it (as genesis did, before the first)."""
        return dict(self._views)

    def check_block(
        self, before_state: MemoryState, before: dict[str, BondView], block: Block, changes: StateChanges
    ) -> None:
        """Before ``changes`` are committed: the block's conservation, and whether a bond step was due."""
        stamp = block.header.timestamp_ms
        if any(_step_due(view, stamp) for view in before.values()):
            self.steps_due.add(block.height)
        self._check_conservation(before_state, before, block, changes)

    def check_after(self, state: MemoryState, before: dict[str, BondView], block: Block, changes: StateChanges) -> None:
        """After the block is committed: each bond's escrows, payments and steps."""
        for bond, view in before.items():
            events = [event for event in changes.events if event.bond == bond]
            # A bond the block did not touch looks as it did: its view is not read again.
            after = BondView.read(state, bond) if _touched(view, changes) else view
            self._views[bond] = after
            self._check_bond(state, view, after, block, events)
        for transaction in block.transactions:
            if isinstance(transaction.body, IssueBond):
                bond = transaction.body.asset
                self._bonds.append(bond)
                self._views[bond] = BondView.read(state, bond)
                self._check_escrows(self._views[bond], block.height)
        stray = [event for event in changes.events if event.bond not in before]
        if stray:
            self.fail(block.height, f"payment events of {stray[0].bond}, which was no bond before the block")

    def check_final(self, state: MemoryState) -> None:
        """The final state: every bond it holds was issued in the chain, and every payment made
        so far has its record."""
        known = {split_asset_key(suffix)[0] for suffix, _ in state.load_entries_after(BOND_PREFIX, b"", 1_000)}
        if known != set(self._bonds):
            self.problems.append(f"the state holds bonds {sorted(known)}, the chain issued {sorted(self._bonds)}")
        for bond in self._bonds:
            view = BondView.read(state, bond)
            made = {index for (name, index) in self.payments if name == bond}
            expected = set(range(view.state.next_payment + (1 if view.state.paying else 0)))
            if made != expected:
                self.problems.append(f"{bond}: payments {sorted(made)} started, {sorted(expected)} made or under way")

    def fail(self, height: int, problem: str) -> None:
        self.problems.append(f"block {height}: {problem}")

    # --- conservation -------------------------------------------------------------------------

    def _check_conservation(
        self, state: MemoryState, before: dict[str, BondView], block: Block, changes: StateChanges
    ) -> None:
        moved: Counter[str] = Counter()
        for (asset, address), balance in changes.balances.items():
            moved[asset] += balance - state.load_balance(address, asset)
        expected = _supply_changes(block, changes, before)
        for asset in sorted(set(moved) | set(changes.asset_states) | set(expected)):
            old = state.load_asset_state(asset).supply
            new = changes.asset_states[asset].supply if asset in changes.asset_states else old
            if moved[asset] != new - old:
                self.fail(block.height, f"the balances of {asset} changed by {moved[asset]}, its supply by {new - old}")
            if new - old != expected[asset]:
                self.fail(
                    block.height,
                    f"the supply of {asset} changed by {new - old}, its issues, mints, burns and redemptions "
                    f"by {expected[asset]}",
                )

    # --- one bond in one block ---------------------------------------------------------------------

    def _check_bond(
        self, state: MemoryState, before: BondView, after: BondView, block: Block, events: list[PaymentEvent]
    ) -> None:
        height, stamp = block.height, block.header.timestamp_ms
        self._check_escrows(after, height)
        self._check_offering(state, before, after, block)
        self._check_starts(before, after, height, stamp)
        for event in events:
            self._check_event(before.terms, event, height)
        for index in {event.index for event in events}:
            payment = self.payments.get((before.terms.bond, index))
            if payment is not None:
                payment.blocks += 1
                if payment.blocks > 1:
                    self.spread.add((before.terms.bond, index))
        for record in after.state.records[len(before.state.records) :]:
            self._check_record(after, record.index, height, stamp)
        self._check_timing(before, after, height, stamp)

    def _check_escrows(self, view: BondView, height: int) -> None:
        bond, offering = view.terms.bond, view.offering
        if offering is not None and offering.status is OfferingStatus.OPEN:
            held = (view.escrow_units, view.offering_escrow_balance)
            subscribed = sum(item.units for item in view.subscriptions)
            if held != (offering.units, offering.escrowed) or offering.escrowed != subscribed * offering.price:
                self.fail(
                    height,
                    f"{bond}'s offering escrow holds {held[0]} units and {held[1]} {view.terms.settlement}; on sale "
                    f"{offering.units}, escrowed {offering.escrowed}, subscriptions for {subscribed} units",
                )
        elif view.escrow_units or view.offering_escrow_balance:
            self.fail(height, f"{bond}'s offering escrow is not empty with no offering open")
        reserved = view.state.reserved if view.state.paying else 0
        if view.payment_escrow_balance != reserved:
            self.fail(height, f"{bond}'s payment escrow holds {view.payment_escrow_balance}, its payment {reserved}")
        if view.locked != view.state.paying:
            self.fail(height, f"{bond}'s units locked={view.locked} while paying={view.state.paying}")

    def _check_offering(self, state: MemoryState, before: BondView, after: BondView, block: Block) -> None:
        """Allotment at the first block at or past the window's end, and only there."""
        old, new = before.offering, after.offering
        if old is None or old.status is not OfferingStatus.OPEN or new is None:
            return
        height, stamp = block.height, block.header.timestamp_ms
        if new.status is OfferingStatus.OPEN:
            if stamp >= old.end_ms:
                self.fail(height, f"{old.bond}'s offering ended at {old.end_ms} and was not allotted at {stamp}")
            return
        if stamp < old.end_ms:
            self.fail(height, f"{old.bond}'s offering was allotted at {stamp}, before its end {old.end_ms}")
        self._check_allotment(before, after, subscriptions_of(state, old.bond), height)

    def _check_allotment(
        self, before: BondView, after: BondView, subscriptions: tuple[Subscription, ...], height: int
    ) -> None:
        offering = after.offering
        assert offering is not None
        bond = offering.bond
        if any(item.refunded != (item.units - item.allotted) * offering.price for item in subscriptions):
            self.fail(height, f"{bond}: a refund is not the price of the units asked and not allotted")
        if any(item.allotted and item.subscriber not in before.eligible for item in subscriptions):
            self.fail(height, f"{bond}: units allotted to a subscriber that may not hold the bond")
        eligible = [item for item in subscriptions if item.subscriber in before.eligible]
        requested = sum(item.units for item in eligible)
        allotted = sum(item.allotted for item in subscriptions)
        if offering.status is OfferingStatus.CANCELLED:
            if allotted or requested >= offering.min_total:
                self.fail(
                    height,
                    f"{bond}'s offering cancelled with {requested} units asked, minimum "
                    f"{offering.min_total}, {allotted} allotted",
                )
        elif allotted != min(offering.units, requested) or offering.allotted != allotted:
            self.fail(height, f"{bond}: {allotted} units allotted of {offering.units} on sale, {requested} asked")
        for item in eligible:
            exact = offering.units * item.units
            if item.allotted > item.units or (
                requested > offering.units and abs(item.allotted * requested - exact) >= (requested)
            ):
                self.fail(
                    height,
                    f"{bond}: {item.allotted} units allotted for {item.units} asked, out of "
                    f"{offering.units} on sale and {requested} asked in all",
                )
        proceeds = allotted * offering.price
        if after.state.raised - before.state.raised != proceeds or offering.proceeds != proceeds:
            self.fail(height, f"{bond}: proceeds of {allotted} units at {offering.price} are not {proceeds}")

    def _check_starts(self, before: BondView, after: BondView, height: int, stamp: int) -> None:
        """Payments that start here (never in the block that allotted the offering) pay the
        holders at the end of the previous block, when the paying account holds their sum;
        one missed here found it short."""
        old, new, terms = before.state, after.state, before.terms
        first, last = old.next_payment, new.next_payment + (1 if new.paying else 0)
        for index in range(first, last):
            if (terms.bond, index) in self.payments:
                continue
            if terms.payment_time(index) > stamp:
                self.fail(height, f"{terms.bond} payment {index} started at {stamp}, before its time")
            if index == first and not before.payable():
                self.fail(
                    height,
                    f"{terms.bond} payment {index} made though the paying account held "
                    f"{before.paying_balance} of the {before.next_due()} due",
                )
            if _allotted_here(before, after):
                self.fail(height, f"{terms.bond} payment {index} started in the block that allotted the offering")
            # Late: missed, or fallen due before the last late payment started (the bond in default).
            late = (terms.bond, index) in self._missed or terms.payment_time(index) < self._cured.get(terms.bond, 0)
            if late:
                self._cured[terms.bond] = stamp
            self.payments[(terms.bond, index)] = AuditedPayment(dict(before.holders), before.entitled_units, late)
        if after.missed and new.missed_ms == stamp and not new.paying:
            self._missed.add((terms.bond, new.next_payment))
            if new.next_payment == first and not old.paying and before.payable():
                self.fail(
                    height,
                    f"{terms.bond} payment {first} missed though the paying account held "
                    f"{before.paying_balance} of the {before.next_due()} due",
                )

    def _check_event(self, terms: BondTerms, event: PaymentEvent, height: int) -> None:
        key = (event.bond, event.index, event.holder)
        if key in self._paid:
            self.fail(height, f"{event.bond} payment {event.index} paid {event.holder.hex()[:12]} twice")
        self._paid.add(key)
        payment = self.payments.get((event.bond, event.index))
        if payment is None:
            self.fail(height, f"{event.bond} payment {event.index} paid a holder before it started")
            return
        held = payment.expected.get(event.holder, 0)
        due = terms.payment_amount(event.index, held)
        if event.units != held or event.amount != due:
            self.fail(
                height,
                f"{event.bond} payment {event.index} paid {event.holder.hex()[:12]} {event.amount} "
                f"on {event.units} units; it held {held} units when the payment started, due {due}",
            )
        payment.paid[event.holder] += event.units
        payment.amount += event.amount

    def _check_record(self, after: BondView, index: int, height: int, stamp: int) -> None:
        terms, record = after.terms, after.state.records[index]
        payment = self.payments.get((terms.bond, index))
        if record.index != index or payment is None:
            self.fail(height, f"{terms.bond} recorded payment {record.index} as its {index}th, or without starting it")
            return
        held = {holder: units for holder, units in payment.expected.items() if units}
        if dict(payment.paid) != held:
            self.fail(
                height,
                f"{terms.bond} payment {index} paid {len(payment.paid)} holders "
                f"({sum(payment.paid.values())} units); {len(held)} held {sum(held.values())} units when it "
                f"started",
            )
        paid = (len(payment.paid), payment.units, payment.amount)
        if (record.holders, record.units, record.amount) != paid:
            self.fail(
                height,
                f"{terms.bond} payment {index} records {record.holders} holders, {record.units} "
                f"units, {record.amount} paid; its events: {paid[0]} holders, {paid[2]} paid, on {paid[1]} "
                f"units entitled when it started",
            )
        due = terms.payment_amount(index, record.units)
        if record.amount + record.retained != due:
            self.fail(
                height, f"{terms.bond} payment {index}: {record.amount} paid and {record.retained} retained, {due} due"
            )
        if (record.height, record.time_ms) != (height, stamp):
            self.fail(height, f"{terms.bond} payment {index} records block {record.height} at {record.time_ms}")
        if record.late != payment.late:
            self.fail(height, f"{terms.bond} payment {index} records late={record.late}, made late={payment.late}")
        if terms.payment_kind(index) is PaymentKind.REDEMPTION and (after.supply or after.holders):
            self.fail(height, f"{terms.bond} redeemed, yet {after.supply} units remain")

    def _check_timing(self, before: BondView, after: BondView, height: int, stamp: int) -> None:
        """Once its time has passed, the next payment is made, under way, or missed (and made
        in the first block that finds the paying account able to), unless the bond was busy
        with an earlier step here."""
        terms, state = after.terms, after.state
        index = state.next_payment
        if index >= terms.payment_count or terms.payment_time(index) > stamp or state.paying:
            return
        if after.missed:
            if before.missed and before.state.next_payment == index and before.payable():
                self.fail(
                    height,
                    f"{terms.bond} payment {index}, missed at {state.missed_ms}, not made at {stamp} though the "
                    f"paying account held {before.paying_balance} of the {before.next_due()} due",
                )
        elif state == before.state and after.offering == before.offering:
            self.fail(
                height,
                f"{terms.bond} payment {index} due at {terms.payment_time(index)} neither made, "
                f"under way nor missed at {stamp}",
            )


def _allotted_here(before: BondView, after: BondView) -> bool:
    old, new = before.offering, after.offering
    return old is not None and new is not None and old.status is OfferingStatus.OPEN and new.status is not old.status


def _touched(view: BondView, changes: StateChanges) -> bool:
    """Whether ``changes`` write an entry of the bond (its balances, states, offering,
    subscriptions, approvals, queue) or a settlement balance its view holds."""
    terms = view.terms
    bond = asset_key(terms.bond)
    accounts = (terms.paying, offering_escrow(terms.bond), payment_escrow(terms.bond))
    settlement = {BALANCE_PREFIX + asset_key(terms.settlement) + account for account in accounts}
    return any(
        key[1:].startswith(bond) or (key[:1] == BOND_QUEUE_PREFIX and key[9:] == bond) or key in settlement
        for key in changes.entries
    )


def _step_due(view: BondView, stamp: int) -> bool:
    """Whether a block dated ``stamp`` on this state has a step of the bond to take."""
    offering, state, terms = view.offering, view.state, view.terms
    if offering is not None and offering.status is OfferingStatus.OPEN and offering.end_ms <= stamp:
        return True
    if state.next_payment >= terms.payment_count:
        return False
    if state.paying:
        return True
    if view.missed:
        return view.payable()
    return terms.payment_time(state.next_payment) <= stamp


def _supply_changes(block: Block, changes: StateChanges, before: dict[str, BondView]) -> Counter[str]:
    """How the block's issues, mints, burns and redemptions change each asset's supply."""
    events, entries = changes.events, changes.entries
    expected: Counter[str] = Counter()
    for transaction in block.transactions:
        body = transaction.body
        if isinstance(body, IssueAsset):
            expected[body.asset] += body.supply
        elif isinstance(body, IssueBond):
            expected[body.asset] += body.units
        elif isinstance(body, Mint):
            expected[body.asset] += body.amount
        elif isinstance(body, Burn):
            expected[body.asset] -= body.amount
    for bond, view in before.items():
        redemption = view.terms.payment_count - 1
        expected[bond] -= sum(event.units for event in events if event.bond == bond and event.index == redemption)
        raw = entries.get(bond_state_key(bond))
        if raw is not None and BondState.decode(raw).next_payment > redemption >= view.state.next_payment:
            # The redemption finished here: the issuer's own units are retired with it.
            expected[bond] -= view.issuer_units
    return expected


def subscriptions_of(state: MemoryState, bond: str) -> tuple[Subscription, ...]:
    entries = state.load_entries_after(SUBSCRIPTION_PREFIX + asset_key(bond), b"", _EVERY)
    return tuple(Subscription.decode(value) for _, value in entries)


def _may_receive(state: MemoryState, asset: AssetTerms, address: bytes) -> bool:
    """Whether ``address`` may be allotted the bond: approved if it is restricted, not frozen in it."""
    approved = not asset.restricted or state.load_entry(approval_key(asset.asset, address)) is not None
    return approved and state.load_entry(frozen_key(asset.asset, address)) is None


def bond_figures(state: MemoryState, audit: BondAudit) -> Counter[str]:
    """What the chain did with bonds: offerings allotted (oversubscribed ones), payments made
    (late ones), bonds redeemed, and payments spread over several blocks."""
    figures: Counter[str] = Counter()
    for suffix, _ in state.load_entries_after(BOND_PREFIX, b"", 1_000):
        bond = split_asset_key(suffix)[0]
        bond_state, offering = load_bond_state(state, bond), load_offering(state, bond)
        if offering is not None and offering.status is not OfferingStatus.OPEN:
            figures["offerings_allotted"] += 1
            figures["offerings_oversubscribed"] += offering.subscribed > offering.units
        figures["bond_payments"] += len(bond_state.records)
        figures["bond_payments_late"] += sum(record.late for record in bond_state.records)
        figures["bonds_redeemed"] += bond_state.next_payment == cast(BondTerms, load_bond(state, bond)).payment_count
    figures["bond_payments_spread"] = len(audit.spread)
    return figures
