"""The rules of bonds: issuing one, its offering, trades, spending its proceeds, and the
payments the chain makes on it.

The transaction rules follow the ``validate_*`` / ``process_*`` pattern of
``chain.state``. ``process_bonds`` is the automatic step that runs before a
block's transactions, after lapses: it allots offerings whose window has ended
and pays coupons and redemptions whose time the block's timestamp has reached.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Protocol, cast

from mura.chain import codec
from mura.chain.assets import (
    AssetState,
    AssetTerms,
    TransferPolicy,
    asset_id_problem,
    asset_key,
    asset_name_problem,
    split_asset_key,
)
from mura.chain.bonds import (
    FREQUENCIES,
    MAX_COUPONS,
    MAX_FIRST_PERIOD_DAYS,
    MAX_LABEL_LENGTH,
    MAX_PURPOSE_LENGTH,
    MAX_SUBSCRIBERS,
    MAX_TRADE_WINDOW_MS,
    RATE_SCALE,
    BondState,
    BondTerms,
    Offering,
    OfferingStatus,
    PaymentEvent,
    PaymentKind,
    PaymentRecord,
    Subscription,
    allot,
    is_chain_account,
    label_problem,
    offering_escrow,
    payment_escrow,
)
from mura.chain.checks import (
    validate_amount,
    validate_approved,
    validate_asset,
    validate_funds,
    validate_new_asset,
    validate_not_chain_account,
    validate_not_frozen,
)
from mura.chain.errors import (
    AlreadySubscribed,
    BadCounterpartySignature,
    BadPayingConsent,
    BondRedeemed,
    InvalidBondTerms,
    InvalidOfferingTerms,
    InvalidPurpose,
    NoOffering,
    NotABond,
    NotAssetIssuer,
    NotProceedsAccount,
    NotSubscribed,
    NotTradeParty,
    OfferingExists,
    OfferingFull,
    OfferingNotOpen,
    PaymentInProgress,
    ProceedsExceeded,
    SubscriptionOutOfBounds,
    TradeExpired,
    TradeSettled,
)
from mura.chain.keys import verify_signature
from mura.chain.pending import (
    BOND_QUEUE_PREFIX,
    MAX_SUPPLY,
    MISSED_CURSOR_KEY,
    MISSED_PREFIX,
    SUBSCRIPTION_PREFIX,
    PendingState,
    StateReader,
    bond_key,
    bond_queue_key,
    bond_state_key,
    decode_balance,
    issue,
    missed_key,
    offering_key,
    proceeds_use_key,
    subscriber_key,
    subscription_key,
    trade_key,
)
from mura.chain.transaction import (
    CancelSubscription,
    IssueBond,
    OpenOffering,
    SettleTrade,
    SpendProceeds,
    Subscribe,
    Transaction,
    paying_consent_payload,
    trade_id,
    trade_payload,
)

#: Most holders the chain pays in one block, over every bond together (a retried or
#: scheduled bond with nobody to pay counts as one): a larger payment goes on over the
#: next blocks, and the bond's units do not move until it is done.
PAYMENTS_PER_BLOCK = 1_000

# --- reading and writing a bond's entries ---------------------------------------------


class _EntryReads(Protocol):
    def load_entry(self, key: bytes) -> bytes | None: ...



def load_bond(state: PendingState | _EntryReads, bond: str) -> BondTerms | None:
    raw = state.entry(bond_key(bond)) if isinstance(state, PendingState) else state.load_entry(bond_key(bond))
    return None if raw is None else BondTerms.decode(raw)


def load_bond_state(state: PendingState | _EntryReads, bond: str) -> BondState:
    key = bond_state_key(bond)
    raw = state.entry(key) if isinstance(state, PendingState) else state.load_entry(key)
    return BondState() if raw is None else BondState.decode(raw)


def load_offering(state: PendingState | _EntryReads, bond: str) -> Offering | None:
    key = offering_key(bond)
    raw = state.entry(key) if isinstance(state, PendingState) else state.load_entry(key)
    return None if raw is None else Offering.decode(raw)


def _set_bond_state(pending: PendingState, bond: str, state: BondState) -> None:
    pending.set_entry(bond_state_key(bond), None if state == BondState() else state.encode())


def _set_offering(pending: PendingState, offering: Offering) -> None:
    pending.set_entry(offering_key(offering.bond), offering.encode())


def _move(pending: PendingState, asset: str, source: bytes, target: bytes, amount: int) -> None:
    """Move ``amount`` of ``asset`` between two accounts (the rules were checked before)."""
    if amount == 0 or source == target:
        return
    pending.set_balance(source, asset, pending.balance(source, asset) - amount)
    pending.set_balance(target, asset, pending.balance(target, asset) + amount)


def _set_locked(pending: PendingState, bond: str, locked: bool) -> None:
    state = pending.asset_state(bond)
    pending.set_asset_state(bond, replace(state, locked=locked))


# --- checks bonds share ---------------------------------------------------------------


def validate_bond(pending: PendingState, bond: str) -> tuple[AssetTerms, BondTerms]:
    """A transaction names an issued bond."""
    asset = validate_asset(pending, bond)
    terms = load_bond(pending, bond)
    if terms is None:
        raise NotABond(f"{bond} is an asset but not a bond", asset=bond)
    return asset, terms


def validate_not_redeemed(pending: PendingState, terms: BondTerms) -> None:
    """Nothing more happens to a redeemed bond."""
    if load_bond_state(pending, terms.bond).next_payment >= terms.payment_count:
        raise BondRedeemed(f"{terms.bond} has been redeemed", asset=terms.bond)


def validate_not_locked(pending: PendingState, asset: str) -> None:
    """A bond's units do not move from the first block whose timestamp reaches a payment's
    time until the chain has paid every holder (or found the paying account short): a
    payment that waits for room in a busy block still pays the holders at the end of the
    block before its time came."""
    state = pending.asset_state(asset)
    if state.locked:
        raise PaymentInProgress(
            f"a payment on {asset} is being made: its units move again once every holder is paid", asset=asset
        )
    if 0 < state.due_ms <= pending.timestamp_ms:
        raise PaymentInProgress(
            f"a payment on {asset} is due and waits for its turn: its units move again once it is made",
            asset=asset,
        )


# --- issue_bond -------------------------------------------------------------------------


def validate_issue_bond(pending: PendingState, transaction: Transaction) -> None:
    """An account with the issuer role issues a bond under a new, valid id, with terms in
    bounds (each named by ``invalid_bond_terms``'s ``field``)."""
    body = cast(IssueBond, transaction.body)
    validate_new_asset(pending, transaction.sender, body.asset, "a bond")
    field, problem = _bond_terms_problem(pending, body)
    if problem is not None:
        raise InvalidBondTerms(problem, field=field)
    validate_paying_consent(transaction.chain_id, transaction.sender, body)


def validate_paying_consent(chain_id: str, issuer: bytes, body: IssueBond) -> None:
    """A paying account other than the issuer has signed its consent to pay the bond on
    these terms; the issuer paying needs none."""
    if not body.paying or body.paying == issuer:
        if body.paying_consent:
            raise BadPayingConsent("the issuer pays this bond itself: it carries no paying account's consent")
        return
    payload = paying_consent_payload(chain_id, issuer, body)
    if not verify_signature(body.paying, body.paying_consent, payload):
        raise BadPayingConsent(
            "the paying account has not signed its consent to pay this bond on these terms",
            paying=body.paying.hex(),
        )


def _bond_terms_problem(pending: PendingState, body: IssueBond) -> tuple[str, str | None]:
    """The first field of a bond's terms that is out of bounds, and why (None if none)."""
    name_problem = asset_name_problem(body.name)
    if name_problem is not None:
        return "name", name_problem
    if body.policy not in {policy.value for policy in TransferPolicy}:
        return "policy", f"the transfer policy must be open or restricted, got {body.policy!r}"
    if not 0 < body.units <= MAX_SUPPLY:
        return "units", f"a bond issues 1 to {MAX_SUPPLY} units, got {body.units}"
    settlement_problem = asset_id_problem(body.settlement)
    if settlement_problem is not None:
        return "settlement", settlement_problem
    settlement = pending.asset(body.settlement)
    if settlement is None:
        return "settlement", f"no asset {body.settlement!r} has been issued"
    if settlement.restricted or settlement.expiry_ms or load_bond(pending, body.settlement) is not None:
        return "settlement", "the settlement asset must be an open asset that does not expire and is not a bond"
    if not 0 < body.face or body.face * body.units > MAX_SUPPLY:
        return "face", f"the face value must be positive and face * units at most {MAX_SUPPLY}"
    if not 0 <= body.rate <= RATE_SCALE:
        return "rate", f"the rate is 0 to {RATE_SCALE} millionths (0 % to 100 %) a year, got {body.rate}"
    if body.frequency not in FREQUENCIES:
        return "frequency", f"the coupon frequency is one of {', '.join(map(str, FREQUENCIES))} a year"
    if not 0 <= body.first_period_days <= MAX_FIRST_PERIOD_DAYS:
        return "first_period_days", f"an odd first period is 1 to {MAX_FIRST_PERIOD_DAYS} days (0: regular)"
    times_problem = _schedule_problem(body, pending.timestamp_ms)
    if times_problem is not None:
        return times_problem
    for field, account in (("paying", body.paying), ("proceeds", body.proceeds), ("registrar", body.registrar)):
        if is_chain_account(account):
            return field, f"the {field} account cannot be a chain account"
    label = label_problem(body.use_of_proceeds, "the use of proceeds", MAX_LABEL_LENGTH, required=False)
    if label is not None:
        return "use_of_proceeds", label
    return "", None


def _schedule_problem(body: IssueBond, timestamp_ms: int) -> tuple[str, str] | None:
    times = body.coupon_times
    if len(times) > MAX_COUPONS:
        return "coupon_times", f"a bond lists at most {MAX_COUPONS} coupon times, got {len(times)}"
    if bool(times) != bool(body.rate):
        return "coupon_times", "a bond with a rate lists its coupon times, and one without lists none"
    if body.first_period_days and not times:
        return "first_period_days", "only a bond with coupons has a first period"
    if any(later <= earlier for earlier, later in itertools.pairwise(times)):
        return "coupon_times", "coupon times must increase"
    if times and times[0] <= body.issue_ms:
        return "coupon_times", "the first coupon time must be after the issue time"
    if body.maturity_ms <= body.issue_ms or (times and times[-1] > body.maturity_ms):
        return "maturity_ms", "the maturity must be after the issue time and no earlier than the last coupon"
    if times and times[0] <= timestamp_ms:
        return "coupon_times", f"the first coupon time {times[0]} is not after the block's timestamp {timestamp_ms}"
    if body.maturity_ms <= timestamp_ms:
        return "maturity_ms", f"the maturity {body.maturity_ms} is not after the block's timestamp {timestamp_ms}"
    return None


def process_issue_bond(pending: PendingState, transaction: Transaction) -> None:
    body = cast(IssueBond, transaction.body)
    issuer = transaction.sender
    asset = AssetTerms(
        asset=body.asset,
        name=body.name,
        decimals=0,
        issuer=issuer,
        reissuable=False,
        cap=0,
        registrar=body.registrar or issuer,
        policy=TransferPolicy(body.policy),
        expiry_ms=0,
    )
    terms = BondTerms(
        bond=body.asset,
        settlement=body.settlement,
        face=body.face,
        rate=body.rate,
        frequency=body.frequency,
        first_period_days=body.first_period_days,
        coupon_times=body.coupon_times,
        maturity_ms=body.maturity_ms,
        issue_ms=body.issue_ms,
        paying=body.paying or issuer,
        proceeds=body.proceeds or issuer,
        use_of_proceeds=body.use_of_proceeds,
        green=body.green,
    )
    issue(pending, asset, [(issuer, body.units)])
    _set_due(pending, body.asset, terms.payment_time(0))
    pending.set_entry(bond_key(body.asset), terms.encode())
    pending.set_flag(bond_queue_key(terms.payment_time(0), body.asset), True)


# --- the offering -------------------------------------------------------------------------


def validate_open_offering(pending: PendingState, transaction: Transaction) -> None:
    """A bond's issuer, not frozen in it, puts units it holds on sale once, at a positive
    price, over a window that ends after the block's timestamp and no later than the
    bond's next payment, with per-subscriber bounds within the units on sale."""
    body = cast(OpenOffering, transaction.body)
    asset, terms = validate_bond(pending, body.bond)
    if transaction.sender != asset.issuer:
        raise NotAssetIssuer(f"only the issuer of {body.bond} may offer it", asset=body.bond)
    if load_offering(pending, body.bond) is not None:
        raise OfferingExists(f"{body.bond} already has an offering (a bond has one)", asset=body.bond)
    validate_not_redeemed(pending, terms)
    validate_not_locked(pending, body.bond)
    validate_not_frozen(pending, body.bond, transaction.sender, "sender")
    field, problem = _offering_problem(pending, body, terms)
    if problem is not None:
        raise InvalidOfferingTerms(problem, field=field)
    validate_funds(pending, transaction.sender, body.bond, body.units)


def _offering_problem(pending: PendingState, body: OpenOffering, terms: BondTerms) -> tuple[str, str | None]:
    if body.units <= 0:
        return "units", "an offering puts at least one unit on sale"
    if body.price <= 0 or body.units * body.price > MAX_SUPPLY:
        return "price", f"the price must be positive and units * price at most {MAX_SUPPLY}"
    if body.end_ms <= body.start_ms:
        return "end_ms", "the window must end after it starts"
    if body.end_ms <= pending.timestamp_ms:
        return "end_ms", f"the window's end {body.end_ms} is not after the block's timestamp {pending.timestamp_ms}"
    state = load_bond_state(pending, body.bond)
    if body.end_ms > terms.payment_time(state.next_payment):
        return "end_ms", "the window must end no later than the bond's next payment"
    if not 1 <= body.min_units <= body.units:
        return "min_units", f"the minimum per subscriber is 1 to {body.units} units"
    if body.max_units and not body.min_units <= body.max_units <= body.units:
        return "max_units", f"the maximum per subscriber is {body.min_units} to {body.units} units (0: no maximum)"
    if body.min_total > body.units:
        return "min_total", f"the minimum total is at most the {body.units} units on sale"
    return "", None


def process_open_offering(pending: PendingState, transaction: Transaction) -> None:
    body = cast(OpenOffering, transaction.body)
    _move(pending, body.bond, transaction.sender, offering_escrow(body.bond), body.units)
    _set_offering(
        pending,
        Offering(
            body.bond,
            body.units,
            body.price,
            body.start_ms,
            body.end_ms,
            body.min_units,
            body.max_units,
            body.min_total,
        ),
    )
    pending.set_flag(bond_queue_key(body.end_ms, body.bond), True)


def _open_offering(pending: PendingState, bond: str, *, to_cancel: bool = False) -> Offering:
    """The bond's offering, taking subscriptions (or cancellations) at the block's timestamp."""
    offering = load_offering(pending, bond)
    if offering is None:
        raise NoOffering(f"{bond} has no offering", asset=bond)
    now = pending.timestamp_ms
    starts = 0 if to_cancel else offering.start_ms
    if offering.status is not OfferingStatus.OPEN or not starts <= now < offering.end_ms:
        raise OfferingNotOpen(
            f"the offering of {bond} takes {'cancellations' if to_cancel else 'subscriptions'} from "
            f"{starts} until before {offering.end_ms} (milliseconds since the epoch); it is {now}",
            asset=bond,
            start_ms=offering.start_ms,
            end_ms=offering.end_ms,
        )
    return offering


def validate_subscribe(pending: PendingState, transaction: Transaction) -> None:
    """An account subscribes once, while the offering's window is open, for units within
    its bounds, paying their price from a balance of the settlement asset; of a restricted
    bond only an approved holder; nobody frozen in the bond or the settlement asset."""
    body = cast(Subscribe, transaction.body)
    asset, terms = validate_bond(pending, body.bond)
    offering = _open_offering(pending, body.bond)
    if pending.entry(subscriber_key(body.bond, transaction.sender)) is not None:
        raise AlreadySubscribed(f"this account already subscribed to {body.bond}: cancel to change", asset=body.bond)
    if not offering.min_units <= body.units <= offering.max_per_subscriber:
        raise SubscriptionOutOfBounds(
            f"a subscription to {body.bond} is {offering.min_units} to {offering.max_per_subscriber} units, "
            f"got {body.units}",
            minimum=offering.min_units,
            maximum=offering.max_per_subscriber,
            units=body.units,
        )
    if offering.subscribers >= MAX_SUBSCRIBERS:
        raise OfferingFull(f"the offering of {body.bond} holds {MAX_SUBSCRIBERS} subscriptions", asset=body.bond)
    validate_approved(pending, asset, transaction.sender, "sender")
    validate_not_frozen(pending, body.bond, transaction.sender, "sender")
    validate_not_frozen(pending, terms.settlement, transaction.sender, "sender")
    validate_funds(pending, transaction.sender, terms.settlement, body.units * offering.price)


def process_subscribe(pending: PendingState, transaction: Transaction) -> None:
    body = cast(Subscribe, transaction.body)
    terms = cast(BondTerms, load_bond(pending, body.bond))
    offering = cast(Offering, load_offering(pending, body.bond))
    cost = body.units * offering.price
    _move(pending, terms.settlement, transaction.sender, offering_escrow(body.bond), cost)
    pending.set_entry(
        subscription_key(body.bond, offering.sequence), Subscription(transaction.sender, body.units).encode()
    )
    pending.set_entry(subscriber_key(body.bond, transaction.sender), offering.sequence.to_bytes(4, "big"))
    _set_offering(
        pending,
        replace(
            offering,
            subscribers=offering.subscribers + 1,
            subscribed=offering.subscribed + body.units,
            escrowed=offering.escrowed + cost,
            sequence=offering.sequence + 1,
        ),
    )


def validate_cancel_subscription(pending: PendingState, transaction: Transaction) -> None:
    """A subscriber withdraws its subscription before the offering's window ends."""
    body = cast(CancelSubscription, transaction.body)
    validate_bond(pending, body.bond)
    _open_offering(pending, body.bond, to_cancel=True)
    if pending.entry(subscriber_key(body.bond, transaction.sender)) is None:
        raise NotSubscribed(f"this account has no subscription to {body.bond}", asset=body.bond)


def process_cancel_subscription(pending: PendingState, transaction: Transaction) -> None:
    body = cast(CancelSubscription, transaction.body)
    terms = cast(BondTerms, load_bond(pending, body.bond))
    offering = cast(Offering, load_offering(pending, body.bond))
    index_key = subscriber_key(body.bond, transaction.sender)
    sequence = int.from_bytes(cast(bytes, pending.entry(index_key)), "big")
    key = subscription_key(body.bond, sequence)
    subscription = Subscription.decode(cast(bytes, pending.entry(key)))
    refund = subscription.units * offering.price
    _move(pending, terms.settlement, offering_escrow(body.bond), transaction.sender, refund)
    pending.set_entry(key, None)
    pending.set_entry(index_key, None)
    _set_offering(
        pending,
        replace(
            offering,
            subscribers=offering.subscribers - 1,
            subscribed=offering.subscribed - subscription.units,
            escrowed=offering.escrowed - refund,
        ),
    )


def close_offering(pending: PendingState, asset: AssetTerms, terms: BondTerms, offering: Offering) -> int:
    """Allot an offering whose window has ended, in one block; return the subscriptions visited.

    Subscribers no longer allowed to receive the bond (a restricted bond's revoked
    holders, accounts frozen in it) get their payment back and no units. Below the
    minimum total, everyone is refunded and the units return to the issuer. Otherwise
    ``allot`` shares the units, each subscriber's unused payment is refunded, the
    proceeds go to the proceeds account, and unsold units return to the issuer.
    """
    bond = offering.bond
    escrow = offering_escrow(bond)
    entries = pending.committed_entries_after(SUBSCRIPTION_PREFIX + asset_key(bond), b"", MAX_SUBSCRIBERS)
    subscriptions = [(suffix, Subscription.decode(value)) for suffix, value in entries]
    eligible = [
        (suffix, subscription)
        for suffix, subscription in subscriptions
        if (not asset.restricted or pending.approved(asset, subscription.subscriber))
        and not pending.frozen(bond, subscription.subscriber)
    ]
    requested = sum(subscription.units for _, subscription in eligible)
    cancelled = bool(offering.min_total) and requested < offering.min_total
    shares = [0] * len(eligible) if cancelled else allot(offering.units, [item.units for _, item in eligible])
    allotted_by_key = {suffix: share for (suffix, _), share in zip(eligible, shares, strict=True)}
    refunded = 0
    for suffix, subscription in subscriptions:
        allotted = allotted_by_key.get(suffix, 0)
        refund = (subscription.units - allotted) * offering.price
        _move(pending, bond, escrow, subscription.subscriber, allotted)
        _move(pending, terms.settlement, escrow, subscription.subscriber, refund)
        refunded += refund
        key = SUBSCRIPTION_PREFIX + asset_key(bond) + suffix
        pending.set_entry(key, replace(subscription, allotted=allotted, refunded=refund).encode())
    allotted_total = sum(shares)
    proceeds = allotted_total * offering.price
    _move(pending, terms.settlement, escrow, terms.proceeds, proceeds)
    _move(pending, bond, escrow, asset.issuer, offering.units - allotted_total)
    state = load_bond_state(pending, bond)
    _set_bond_state(pending, bond, replace(state, raised=state.raised + proceeds))
    _set_offering(
        pending,
        replace(
            offering,
            status=OfferingStatus.CANCELLED if cancelled else OfferingStatus.SETTLED,
            allotted=allotted_total,
            unsold=offering.units - allotted_total,
            refunded=refunded,
            proceeds=proceeds,
            settled_height=pending.height,
        ),
    )
    return max(1, len(subscriptions))


# --- trades and proceeds -------------------------------------------------------------------


def validate_settle_trade(pending: PendingState, transaction: Transaction) -> None:
    """A trade of a bond's units against its settlement asset is sent by its seller or its
    buyer (two accounts) and signed over the same terms by the other, no later than its
    deadline (at most 30 days ahead), once; its units are not being paid on; both parties
    may hold a restricted bond, neither is frozen in either asset, the seller holds the
    units and the buyer the amount."""
    body = cast(SettleTrade, transaction.body)
    asset, terms = validate_bond(pending, body.bond)
    if transaction.sender not in (body.seller, body.buyer) or body.seller == body.buyer:
        raise NotTradeParty("a trade is sent by its seller or its buyer, two different accounts")
    validate_amount(body.units)
    validate_amount(body.amount)
    now = pending.timestamp_ms
    if now > body.deadline_ms or (now and body.deadline_ms > now + MAX_TRADE_WINDOW_MS):
        raise TradeExpired(
            f"the trade's deadline {body.deadline_ms} has passed or is more than 30 days ahead of {now}",
            deadline_ms=body.deadline_ms,
        )
    identity = trade_id(transaction.chain_id, body)
    if pending.flag(trade_key(identity)):
        raise TradeSettled("this trade has already settled", trade=identity.hex())
    validate_not_redeemed(pending, terms)
    validate_not_locked(pending, body.bond)
    for party, role in ((body.seller, "seller"), (body.buyer, "buyer")):
        validate_approved(pending, asset, party, role)
        validate_not_frozen(pending, body.bond, party, role)
        validate_not_frozen(pending, terms.settlement, party, role)
    validate_funds(pending, body.seller, body.bond, body.units)
    validate_funds(pending, body.buyer, terms.settlement, body.amount)
    counterparty = body.buyer if transaction.sender == body.seller else body.seller
    if not verify_signature(counterparty, body.counterparty_signature, trade_payload(transaction.chain_id, body)):
        raise BadCounterpartySignature(
            "the counterparty's signature does not verify over the trade's terms", counterparty=counterparty.hex()
        )


def process_settle_trade(pending: PendingState, transaction: Transaction) -> None:
    body = cast(SettleTrade, transaction.body)
    terms = cast(BondTerms, load_bond(pending, body.bond))
    _move(pending, body.bond, body.seller, body.buyer, body.units)
    _move(pending, terms.settlement, body.buyer, body.seller, body.amount)
    pending.set_flag(trade_key(trade_id(transaction.chain_id, body)), True)


def validate_spend_proceeds(pending: PendingState, transaction: Transaction) -> None:
    """A bond's proceeds account pays out of what its offering raised and was not yet spent,
    for a purpose of 1 to 64 printable characters, to an account that is not a chain
    account, neither frozen in the settlement asset."""
    body = cast(SpendProceeds, transaction.body)
    _, terms = validate_bond(pending, body.bond)
    if transaction.sender != terms.proceeds:
        raise NotProceedsAccount(f"only the proceeds account of {body.bond} spends its proceeds", asset=body.bond)
    validate_amount(body.amount)
    problem = label_problem(body.purpose, "a purpose", MAX_PURPOSE_LENGTH, required=True)
    if problem is not None:
        raise InvalidPurpose(problem)
    validate_not_chain_account(body.recipient, "recipient")
    validate_not_frozen(pending, terms.settlement, transaction.sender, "sender")
    validate_not_frozen(pending, terms.settlement, body.recipient, "recipient")
    state = load_bond_state(pending, body.bond)
    left = state.raised - state.spent
    if body.amount > left:
        raise ProceedsExceeded(
            f"{body.amount} exceeds the {left} of {body.bond}'s proceeds not yet spent", amount=body.amount, left=left
        )
    validate_funds(pending, transaction.sender, terms.settlement, body.amount)


def process_spend_proceeds(pending: PendingState, transaction: Transaction) -> None:
    body = cast(SpendProceeds, transaction.body)
    terms = cast(BondTerms, load_bond(pending, body.bond))
    _move(pending, terms.settlement, transaction.sender, body.recipient, body.amount)
    state = load_bond_state(pending, body.bond)
    _set_bond_state(pending, body.bond, replace(state, spent=state.spent + body.amount))
    key = proceeds_use_key(body.bond, body.purpose)
    raw = pending.entry(key)
    spent = 0 if raw is None else decode_balance(raw)
    pending.set_entry(key, codec.encode(spent + body.amount))


# --- the payments the chain makes -------------------------------------------------------------


def process_bonds(pending: PendingState) -> None:
    """Before a block's transactions (after lapses): every bond step that is due.

    The steps scheduled at a time the block's timestamp has reached run soonest first
    (then by id), within ``PAYMENTS_PER_BLOCK`` holders paid or subscriptions allotted:
    a bond's offering is allotted once its window has ended, then its payments are made
    in schedule order, each in full or not at all (see ``advance_bond``). Then the bonds
    whose payment was missed are looked at (see ``_missed_bonds``); those whose paying
    account now covers the payment make it, within a budget of their own. A missed bond
    that still cannot pay costs a few reads and writes nothing.
    """
    budget = PAYMENTS_PER_BLOCK
    after = b""
    while budget > 0:
        entries = pending.committed_entries_after(BOND_QUEUE_PREFIX, after, _QUEUE_PAGE)
        for suffix, _ in entries:
            time_ms, bond = int.from_bytes(suffix[:8], "big"), split_asset_key(suffix[8:])[0]
            if time_ms > pending.timestamp_ms or budget <= 0:
                break
            key = BOND_QUEUE_PREFIX + suffix
            if pending.flag(key):
                budget -= advance_bond(pending, bond, budget, key, first=budget == PAYMENTS_PER_BLOCK)
        else:
            if len(entries) == _QUEUE_PAGE:
                after = entries[-1][0]
                continue
        break
    budget = PAYMENTS_PER_BLOCK
    for bond, index in _missed_bonds(pending):
        if budget <= 0:
            return
        if pending.entry(missed_key(bond)) is not None and _payable(_PendingReader(pending), bond, index):
            budget -= advance_bond(pending, bond, budget, None, first=budget == PAYMENTS_PER_BLOCK)


#: Scheduled steps read at a time while looking for those due.
_QUEUE_PAGE = 16
#: Missed bonds looked at per block (a bond's issuer can leave many bonds unpaid).
MISSED_CHECKS_PER_BLOCK = 1_000


def _missed_bonds(pending: PendingState) -> list[tuple[str, int]]:
    """The bonds of the committed missed set to look at in this block, with the payment each
    missed: all of them while they are at most ``MISSED_CHECKS_PER_BLOCK``; when they are
    more, that many in key order from where the last block stopped (``MISSED_CURSOR_KEY``),
    wrapping round, so each is looked at every few blocks."""
    if not pending.committed_entries_after(MISSED_PREFIX, b"", 1):
        # No bond in default (the usual case): not even the cursor is read.
        return []
    cursor = pending.entry(MISSED_CURSOR_KEY) or b""
    limit = MISSED_CHECKS_PER_BLOCK
    entries = pending.committed_entries_after(MISSED_PREFIX, cursor, limit)
    if len(entries) < limit and cursor:
        entries += [
            (suffix, value)
            for suffix, value in pending.committed_entries_after(MISSED_PREFIX, b"", limit - len(entries))
            if suffix <= cursor
        ]
    if len(entries) == limit:
        pending.set_entry(MISSED_CURSOR_KEY, entries[-1][0])
    elif cursor:
        pending.set_entry(MISSED_CURSOR_KEY, None)
    return [(split_asset_key(suffix)[0], _missed_payment(value)[0]) for suffix, value in entries]


def _missed_payment(value: bytes) -> tuple[int, int]:
    """A missed set entry: the payment missed, and the timestamp of the first block that missed it."""
    index, missed_ms = codec.read_fields(codec.decode(value), "missed", 2)
    return codec.read_int(index, "missed.index"), codec.read_int(missed_ms, "missed.missed_ms")


def advance_bond(pending: PendingState, bond: str, budget: int, queued: bytes | None, *, first: bool) -> int:
    """Make ``bond``'s due steps within ``budget``; return what they cost (at least 1).

    An ended offering is allotted when its subscriptions fit in the budget, or when it is
    the block's first step (so one offering of up to ``MAX_SUBSCRIBERS`` is allotted in one
    block). Its bond's payments wait while the allotment does, and never start in the
    block that allotted: a payment pays the holders at the end of the block before it starts.

    A payment starts at the first block whose timestamp reaches its time. Its sum, the
    amount due on every unit not held by the issuer or the offering's escrow, moves from
    the paying account to the payment escrow; if the paying account holds less, nothing
    is paid and the payment is missed (see ``process_bonds`` for the retries). Holders are
    then paid in account order, up to the budget per block; while that takes more than one
    block the bond's units do not move. What rounding leaves returns to the paying account.
    """
    asset = cast(AssetTerms, pending.asset(bond))
    terms = cast(BondTerms, load_bond(pending, bond))
    cost = 0
    offering = load_offering(pending, bond)
    if offering is not None and offering.status is OfferingStatus.OPEN and offering.end_ms <= pending.timestamp_ms:
        if offering.subscribers <= budget or first:
            cost += close_offering(pending, asset, terms, offering)
        _reschedule(pending, terms, queued)
        return max(1, cost)
    allotted_now = offering is not None and offering.settled_height == pending.height
    if allotted_now and offering is not None and offering.status is not OfferingStatus.OPEN:
        _reschedule(pending, terms, queued)
        return 1
    while cost < budget:
        state = load_bond_state(pending, bond)
        index = state.next_payment
        if index >= terms.payment_count:
            break
        if not state.paying:
            if terms.payment_time(index) > pending.timestamp_ms:
                break
            cost += 1
            if not _start_payment(pending, asset, terms, state):
                break
        if cost >= budget:
            break
        done, visited = _pay_holders(pending, asset, terms, budget - cost)
        cost += visited
        if not done:
            break
    _reschedule(pending, terms, queued)
    return max(1, cost)


def _entitled_units(pending: PendingState, asset: AssetTerms) -> int:
    """Units a payment is made on: all but the issuer's own and any in the offering's escrow."""
    bond = asset.asset
    return (
        pending.asset_state(bond).supply
        - pending.balance(asset.issuer, bond)
        - pending.balance(offering_escrow(bond), bond)
    )


def _start_payment(pending: PendingState, asset: AssetTerms, terms: BondTerms, state: BondState) -> bool:
    index = state.next_payment
    units = _entitled_units(pending, asset)
    due = terms.payment_amount(index, units)
    if pending.balance(terms.paying, terms.settlement) < due:
        if not state.missed_ms:
            _set_bond_state(pending, terms.bond, replace(state, missed_ms=pending.timestamp_ms))
            _set_due(pending, terms.bond, 0)
            pending.set_entry(missed_key(terms.bond), codec.encode([index, pending.timestamp_ms]))
        return False
    _move(pending, terms.settlement, terms.paying, payment_escrow(terms.bond), due)
    late = bool(state.missed_ms) or terms.payment_time(index) < state.cured_ms
    _set_bond_state(
        pending,
        terms.bond,
        replace(
            state,
            missed_ms=0,
            cured_ms=pending.timestamp_ms if late else state.cured_ms,
            late=late,
            paying=True,
            units=units,
            reserved=due,
            paid=0,
            holders_paid=0,
            cursor=b"",
        ),
    )
    _set_locked(pending, terms.bond, True)
    pending.set_entry(missed_key(terms.bond), None)
    return True


def _pay_holders(pending: PendingState, asset: AssetTerms, terms: BondTerms, budget: int) -> tuple[bool, int]:
    """Pay up to ``budget`` holders of the payment in progress; return whether it is done and
    the holders visited."""
    bond = terms.bond
    state = load_bond_state(pending, bond)
    index = state.next_payment
    redemption = terms.payment_kind(index) is PaymentKind.REDEMPTION
    holders = pending.holders_after(bond, state.cursor, budget)
    paid = 0
    count = 0
    redeemed = 0
    for holder in holders:
        if holder == asset.issuer or is_chain_account(holder):
            continue
        units = pending.balance(holder, bond)
        amount = terms.payment_amount(index, units)
        pending.set_balance(holder, terms.settlement, pending.balance(holder, terms.settlement) + amount)
        if redemption:
            pending.set_balance(holder, bond, 0)
            redeemed += units
        pending.events.append(PaymentEvent(bond, index, holder, units, amount))
        paid += amount
        count += 1
    escrow = payment_escrow(bond)
    pending.set_balance(escrow, terms.settlement, pending.balance(escrow, terms.settlement) - paid)
    if redeemed:
        supply = pending.asset_state(bond)
        pending.set_asset_state(bond, replace(supply, supply=supply.supply - redeemed))
    state = replace(
        state,
        reserved=state.reserved - paid,
        paid=state.paid + paid,
        holders_paid=state.holders_paid + count,
        cursor=holders[-1] if holders else state.cursor,
    )
    done = len(holders) < budget
    if done:
        _finish_payment(pending, asset, terms, state)
    else:
        _set_bond_state(pending, bond, state)
    return done, max(1, len(holders))


def _finish_payment(pending: PendingState, asset: AssetTerms, terms: BondTerms, state: BondState) -> None:
    bond = terms.bond
    index = state.next_payment
    _move(pending, terms.settlement, payment_escrow(bond), terms.paying, state.reserved)
    if terms.payment_kind(index) is PaymentKind.REDEMPTION:
        # The issuer's own units (unsold, or bought back) are redeemed to nobody: burned.
        own = pending.balance(asset.issuer, bond)
        pending.set_balance(asset.issuer, bond, 0)
        supply = pending.asset_state(bond)
        pending.set_asset_state(bond, replace(supply, supply=supply.supply - own))
    record = PaymentRecord(
        index=index,
        late=state.late,
        height=pending.height,
        time_ms=pending.timestamp_ms,
        units=state.units,
        holders=state.holders_paid,
        amount=state.paid,
        retained=state.reserved,
    )
    _set_bond_state(
        pending,
        bond,
        BondState(
            next_payment=index + 1,
            cured_ms=state.cured_ms,
            records=(*state.records, record),
            raised=state.raised,
            spent=state.spent,
        ),
    )
    _set_locked(pending, bond, False)
    _set_due(pending, bond, terms.payment_time(index + 1) if index + 1 < terms.payment_count else 0)


def _set_due(pending: PendingState, bond: str, due_ms: int) -> None:
    state = pending.asset_state(bond)
    pending.set_asset_state(bond, replace(state, due_ms=due_ms))


def _reschedule(pending: PendingState, terms: BondTerms, queued: bytes | None) -> None:
    """Keep one queue entry at the bond's next step: its next payment's time (already past
    while a payment goes on or waits for room), or its offering's end; none while a missed
    payment waits in the retry set, or once it is redeemed."""
    bond = terms.bond
    state = load_bond_state(pending, bond)
    times = []
    offering = load_offering(pending, bond)
    if offering is not None and offering.status is OfferingStatus.OPEN:
        times.append(offering.end_ms)
    if state.next_payment < terms.payment_count and pending.entry(missed_key(bond)) is None:
        times.append(terms.payment_time(state.next_payment))
    wanted = bond_queue_key(min(times), bond) if times else None
    if queued is not None and queued != wanted:
        pending.set_flag(queued, False)
    if wanted is not None:
        pending.set_flag(wanted, True)


def next_bond_due_ms(state: StateReader) -> int | None:
    """The time of the soonest scheduled bond step, or of a missed payment the paying
    account can now cover (due at once: among the first ``_DUE_MISSED_LOOKS`` missed bonds;
    the others are made at the next block), or None."""
    times = []
    first = state.load_entries_after(BOND_QUEUE_PREFIX, b"", 1)
    if first:
        times.append(int.from_bytes(first[0][0][:8], "big"))
    for suffix, value in state.load_entries_after(MISSED_PREFIX, b"", _DUE_MISSED_LOOKS):
        index, missed_ms = _missed_payment(value)
        if _payable(state, split_asset_key(suffix)[0], index):
            times.append(missed_ms)
            break
    return min(times) if times else None


#: Missed bonds ``next_bond_due_ms`` looks at.
_DUE_MISSED_LOOKS = 16


class _PaymentReads(Protocol):
    """What ``_payable`` reads: a ``StateReader``, or a block's working copy through ``_PendingReader``."""

    def load_asset(self, asset: str) -> AssetTerms | None: ...

    def load_asset_state(self, asset: str) -> AssetState: ...

    def load_balance(self, address: bytes, asset: str) -> int: ...

    def load_entry(self, key: bytes) -> bytes | None: ...


def _payable(state: _PaymentReads, bond: str, index: int) -> bool:
    """Whether the bond's paying account covers its payment ``index`` (the one it missed):
    a few reads, and its terms decoded."""
    asset = state.load_asset(bond)
    terms = load_bond(state, bond)
    if asset is None or terms is None or index >= terms.payment_count:
        return False
    units = (
        state.load_asset_state(bond).supply
        - state.load_balance(asset.issuer, bond)
        - state.load_balance(offering_escrow(bond), bond)
    )
    return state.load_balance(terms.paying, terms.settlement) >= terms.payment_amount(index, units)


class _PendingReader:
    """The reads ``_payable`` makes, through a block's working copy."""

    def __init__(self, pending: PendingState) -> None:
        self._pending = pending

    def load_asset(self, asset: str) -> AssetTerms | None:
        return self._pending.asset(asset)

    def load_asset_state(self, asset: str) -> AssetState:
        return self._pending.asset_state(asset)

    def load_balance(self, address: bytes, asset: str) -> int:
        return self._pending.balance(address, asset)

    def load_entry(self, key: bytes) -> bytes | None:
        return self._pending.entry(key)
