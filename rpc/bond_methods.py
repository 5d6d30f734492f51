"""The bond methods: ``bond_list``, ``bond_get``, ``bond_getPayments``,
``bond_getUseOfProceeds`` and ``offering_get``.

They read only final data, through ``NodeView``: the bond's state entries (terms,
schedule state, offering, subscriptions, spending by purpose) and the store's
payment history (each holder's share of each payment the chain made). An asset id
no issue created is ``UNKNOWN_ASSET``; a plain asset is ``NOT_A_BOND``. Every list
comes in pages of at most ``limit`` items with a ``next_cursor`` (see ``params``),
so each call reads a bounded number of entries; a bond's schedule has at most
``MAX_COUPONS + 1`` payments and ``bond_get`` shows all of them.

The status of a payment not yet made depends on now: the later of the node's clock
and the head block's timestamp (the chain makes a payment at the first block whose
timestamp reaches its time, so between that time and that block it shows ``due``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mura.chain import codec
from mura.chain.address import decode_address, encode_address
from mura.chain.assets import AssetTerms, asset_key
from mura.chain.bonds import (
    MAX_COUPONS,
    MAX_PURPOSE_LENGTH,
    BondState,
    BondTerms,
    Offering,
    Subscription,
    label_problem,
    offering_escrow,
)
from mura.chain.errors import Invalid
from mura.chain.pending import (
    BOND_PREFIX,
    PROCEEDS_USE_PREFIX,
    SUBSCRIPTION_PREFIX,
    bond_key,
    bond_state_key,
    offering_key,
    subscriber_key,
    subscription_key,
)
from mura.rpc.asset_methods import known_asset
from mura.rpc.bond_render import (
    BOND_SCHEMA,
    BOND_SUMMARY_SCHEMA,
    OFFERING_SCHEMA,
    PAYMENT_SCHEMA,
    SHARE_SCHEMA,
    SUBSCRIPTION_SCHEMA,
    records_by_index,
    render_bond_summary,
    render_bond_terms,
    render_offering,
    render_payment,
    render_schedule,
    render_share,
    render_subscription,
)
from mura.rpc.declarations import STRING, Method, Param, ParamInvalid, ParamType, Result, integer
from mura.rpc.errors import NO_OFFERING, NOT_A_BOND, UNKNOWN_ASSET, InvalidParams
from mura.rpc.node_view import ChainReader, NodeView
from mura.rpc.params import ASSET, address_type, check_asset_cursor, cursor_param, limit_param

#: The most bonds ``bond_list`` returns at once: each costs a few reads.
MAX_BOND_PAGE = 100
_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
_AMOUNT: dict[str, Any] = {**_COUNT, "description": "Smallest units of the settlement asset."}
_NEXT_CURSOR: dict[str, Any] = {
    "type": ["string", "null"],
    "description": "Pass it as cursor for the next page; null on the last page.",
}
_NUMBER_CURSOR = re.compile(r"[0-9]{1,10}")
_MAX_SEQUENCE = 2**32 - 1


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class FoundBond:
    """A bond as the methods read it: its asset terms, bond terms and schedule state."""

    asset: AssetTerms
    terms: BondTerms
    state: BondState
    #: Its settlement asset's decimals.
    settlement_decimals: int


def find_bond(store: ChainReader, bond: str) -> FoundBond:
    """The bond ``bond``; ``UNKNOWN_ASSET`` for an id no issue created, ``NOT_A_BOND`` for a plain asset."""
    asset = known_asset(store, bond)
    terms_entry = store.load_entry(bond_key(bond))
    if terms_entry is None:
        raise NOT_A_BOND.error({"asset": bond})
    terms = BondTerms.decode(terms_entry)
    state_entry = store.load_entry(bond_state_key(bond))
    state = BondState() if state_entry is None else BondState.decode(state_entry)
    settlement = store.load_asset(terms.settlement)
    assert settlement is not None, f"bond {bond} settles in {terms.settlement}, which was never issued"
    return FoundBond(asset, terms, state, settlement.decimals)


def entitled_units(store: ChainReader, found: FoundBond) -> int:
    """Units a payment made now would be paid on: every unit but the issuer's and the offering's."""
    bond = found.asset.asset
    held_apart = store.load_balance(found.asset.issuer, bond) + store.load_balance(offering_escrow(bond), bond)
    return max(0, store.load_asset_state(bond).supply - held_apart)


def _check_cursor_text(value: Any) -> str:
    text: str = STRING.check(value)
    if len(text) > 128:
        raise ParamInvalid(f"not a cursor this node returned: {len(text)} characters")
    return text


def _number_cursor(text: str, maximum: int) -> int:
    """A cursor that is a payment index or a subscription's sequence."""
    if _NUMBER_CURSOR.fullmatch(text) is None or int(text) > maximum:
        raise InvalidParams(f"not a cursor this node returned: expected a number from 0 to {maximum}", param="cursor")
    return int(text)


def _check_purpose_cursor(value: Any) -> str:
    text = _check_cursor_text(value)
    problem = label_problem(text, "a purpose", MAX_PURPOSE_LENGTH, required=True)
    if problem is not None:
        raise ParamInvalid(f"not a cursor this node returned: {problem}")
    return text


def _check_sequence_cursor(value: Any) -> int:
    text = _check_cursor_text(value)
    if _NUMBER_CURSOR.fullmatch(text) is None or int(text) > _MAX_SEQUENCE:
        raise ParamInvalid("not a cursor this node returned: expected a subscription's sequence number")
    return int(text)


class BondMethods:
    """The bond and offering handlers, reading through one ``NodeView``.

    ``clock_ms`` is the node's clock (milliseconds since the epoch): with the head
    block's timestamp it says which payments are due and where an offering stands.
    """

    def __init__(self, node: NodeView, *, clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self._node = node
        self._clock_ms = clock_ms

    def _now_ms(self) -> int:
        return max(self._clock_ms(), self._node.store.head.timestamp_ms)

    async def list_bonds(self, cursor: str | None, limit: int) -> dict[str, Any]:
        """A page of every bond issued, in state key order (shorter ids first, then by id)."""
        store = self._node.store
        entries = store.load_entries_after(BOND_PREFIX, asset_key(cursor) if cursor else b"", limit + 1)
        bonds = [find_bond(store, BondTerms.decode(value).bond) for _, value in entries[:limit]]
        return {
            "bonds": [
                render_bond_summary(
                    found.asset, store.load_asset_state(found.asset.asset), found.terms, found.state,
                    found.settlement_decimals,
                )
                for found in bonds
            ],
            "next_cursor": bonds[-1].asset.asset if len(entries) > limit else None,
        }

    async def get_bond(self, bond: str) -> dict[str, Any]:
        """A bond's terms, where its schedule stands, and its offering."""
        store = self._node.store
        found = find_bond(store, bond)
        asset_state = store.load_asset_state(bond)
        now_ms = self._now_ms()
        offering_entry = store.load_entry(offering_key(bond))
        offering = None if offering_entry is None else Offering.decode(offering_entry)
        entitled = entitled_units(store, found)
        return {
            **render_bond_summary(found.asset, asset_state, found.terms, found.state, found.settlement_decimals),
            **render_bond_terms(found.asset, found.terms, self._node.address_prefix),
            "paying_balance": store.load_balance(found.terms.paying, found.terms.settlement),
            "entitled_units": entitled,
            "locked": asset_state.locked,
            **render_schedule(found.terms, found.state, now_ms=now_ms, entitled=entitled),
            "offering": None if offering is None else render_offering(offering, now_ms),
            "height": store.height,
            "now_ms": now_ms,
        }

    async def get_payments(
        self, bond: str, holder: bytes | None, index: int | None, cursor: str | None, limit: int
    ) -> dict[str, Any]:
        """The payments the chain made of a bond; one payment's shares by holder; or one holder's shares."""
        store = self._node.store
        found = find_bond(store, bond)
        count = found.terms.payment_count
        if index is not None and index >= count:
            raise InvalidParams(f"bond {bond} has payments 0 to {count - 1}", param="index", payments=count)
        now_ms = self._now_ms()
        records = records_by_index(found.state)
        entitled = entitled_units(store, found)

        def payment(number: int) -> dict[str, Any]:
            return render_payment(found.terms, found.state, number, now_ms=now_ms, entitled=entitled, records=records)

        result: dict[str, Any] = {
            "bond": bond,
            "holder": None if holder is None else encode_address(holder, self._node.address_prefix),
            "index": index,
            "payments": [],
            "shares": [],
            "next_cursor": None,
        }
        if holder is not None:
            result.update(self._holder_shares(found, holder, index, cursor, limit))
            result["payments"] = [] if index is None else [payment(index)]
        elif index is not None:
            result.update(self._payment_shares(found, index, cursor, limit))
            result["payments"] = [payment(index)]
        else:
            made = found.state.next_payment + (1 if found.state.paying else 0)
            start = 0 if cursor is None else _number_cursor(cursor, MAX_COUPONS) + 1
            end = min(start + limit, made)
            result["payments"] = [payment(number) for number in range(start, end)]
            result["next_cursor"] = str(end - 1) if end < made else None
        return result

    def _holder_shares(
        self, found: FoundBond, holder: bytes, index: int | None, cursor: str | None, limit: int
    ) -> dict[str, Any]:
        """``holder``'s shares of the bond's payments by index (of payment ``index`` alone when given)."""
        bond = found.asset.asset
        prefix = self._node.address_prefix
        if index is not None:
            after = None if index == 0 else (bond, index - 1)
            shares = self._node.store.load_holder_payments(holder, bond=bond, after=after, limit=1)
            mine = [share for share in shares if share.index == index]
            return {"shares": [render_share(found.terms, share, prefix) for share in mine], "next_cursor": None}
        after = None if cursor is None else (bond, _number_cursor(cursor, MAX_COUPONS))
        shares = self._node.store.load_holder_payments(holder, bond=bond, after=after, limit=limit + 1)
        page = shares[:limit]
        return {
            "shares": [render_share(found.terms, share, prefix) for share in page],
            "next_cursor": str(page[-1].index) if len(shares) > limit else None,
        }

    def _payment_shares(self, found: FoundBond, index: int, cursor: str | None, limit: int) -> dict[str, Any]:
        """The holders' shares of payment ``index``, in account order."""
        prefix = self._node.address_prefix
        after = b""
        if cursor is not None:
            try:
                after = decode_address(cursor, prefix)
            except Invalid as error:
                raise InvalidParams(f"not a cursor this node returned: {error.message}", param="cursor") from None
        shares = self._node.store.load_payment_shares(found.asset.asset, index, after=after, limit=limit + 1)
        page = shares[:limit]
        return {
            "shares": [render_share(found.terms, share, prefix) for share in page],
            "next_cursor": encode_address(page[-1].holder, prefix) if len(shares) > limit else None,
        }

    async def get_offering(
        self, bond: str, subscriber: bytes | None, cursor: int | None, limit: int
    ) -> dict[str, Any]:
        """A bond's offering, and its subscriptions in subscription order (or one subscriber's)."""
        store = self._node.store
        found = find_bond(store, bond)
        entry = store.load_entry(offering_key(bond))
        if entry is None:
            raise NO_OFFERING.error({"bond": bond})
        offering = Offering.decode(entry)
        prefix = self._node.address_prefix
        subscriptions: list[tuple[int, Subscription]] = []
        more = False
        if subscriber is not None:
            sequence_entry = store.load_entry(subscriber_key(bond, subscriber))
            if sequence_entry is not None:
                sequence = int.from_bytes(sequence_entry, "big")
                subscription_entry = store.load_entry(subscription_key(bond, sequence))
                assert subscription_entry is not None, f"subscriber entry of {bond} names no subscription"
                subscriptions.append((sequence, Subscription.decode(subscription_entry)))
        else:
            after = b"" if cursor is None else cursor.to_bytes(4, "big")
            entries = store.load_entries_after(SUBSCRIPTION_PREFIX + asset_key(bond), after, limit + 1)
            more = len(entries) > limit
            subscriptions = [(int.from_bytes(key, "big"), Subscription.decode(value)) for key, value in entries[:limit]]
        return {
            "bond": bond,
            "settlement": found.terms.settlement,
            "settlement_decimals": found.settlement_decimals,
            "offering": render_offering(offering, self._now_ms()),
            "subscriptions": [
                render_subscription(offering, sequence, subscription, prefix)
                for sequence, subscription in subscriptions
            ],
            "next_cursor": str(subscriptions[-1][0]) if more else None,
        }

    async def get_use_of_proceeds(self, bond: str, cursor: str | None, limit: int) -> dict[str, Any]:
        """What the offering raised, what has been spent, and the sum spent for each purpose."""
        store = self._node.store
        found = find_bond(store, bond)
        after = b"" if cursor is None else cursor.encode()
        entries = store.load_entries_after(PROCEEDS_USE_PREFIX + asset_key(bond), after, limit + 1)
        purposes = [
            {"purpose": key.decode(), "spent": codec.read_int(codec.decode(value), "proceeds spent")}
            for key, value in entries[:limit]
        ]
        state = found.state
        return {
            "bond": bond,
            "settlement": found.terms.settlement,
            "settlement_decimals": found.settlement_decimals,
            "proceeds": encode_address(found.terms.proceeds, self._node.address_prefix),
            "use_of_proceeds": found.terms.use_of_proceeds,
            "raised": state.raised,
            "spent": state.spent,
            "left": state.raised - state.spent,
            "purposes": purposes,
            "next_cursor": purposes[-1]["purpose"] if len(entries) > limit else None,
        }

    def declarations(self) -> list[Method]:
        """The bond and offering methods, declared for the engine and for ``rpc.discover``."""
        bond = Param("bond", ASSET, "The bond's asset id, e.g. NISHI-2031.")
        address = address_type(self._node.address_prefix)
        text_cursor = ParamType({"type": "string", "maxLength": 128}, _check_cursor_text)
        bond_errors = (UNKNOWN_ASSET, NOT_A_BOND)
        return [
            Method(
                name="bond_list",
                handler=self.list_bonds,
                summary="Every bond issued, with its settlement asset, face, rate, maturity and whether it has "
                "been redeemed, a page at a time.",
                params=(
                    cursor_param(check_asset_cursor, "a bond id"),
                    limit_param(maximum=MAX_BOND_PAGE, default=MAX_BOND_PAGE),
                ),
                result=Result("bonds", _page_schema("bonds", BOND_SUMMARY_SCHEMA), "A page of bonds."),
                description="Bonds come shorter ids first, then by id (the order of their state keys).",
            ),
            Method(
                name="bond_get",
                handler=self.get_bond,
                summary="A bond's terms (settlement asset, face, rate, schedule, maturity, paying and proceeds "
                "accounts, use of proceeds) and every payment of its schedule with its status: scheduled, due, "
                "paying, paid, paid_late or missed.",
                params=(bond,),
                result=Result("bond", BOND_SCHEMA, "The bond's terms, schedule and offering."),
                errors=bond_errors,
                description="A payment not made is due once its time has passed by the later of the node's clock "
                "and the head block's timestamp (now_ms): the chain makes it at the first block whose timestamp "
                "reaches its time, before that block's transactions. Missed: a block reached its time and the "
                "paying account held less than required, or an earlier payment is missed; the chain makes it at "
                "the first block after the paying account covers it, and then it shows paid_late. A malformed id "
                "is invalid params (-32602); an id no issue created is -32024; "
                "a plain asset is -32025.",
            ),
            Method(
                name="bond_getPayments",
                handler=self.get_payments,
                summary="The payments the chain made of a bond; with index, each holder's share of that payment; "
                "with holder, that holder's shares; a page at a time.",
                params=(
                    bond,
                    Param("holder", address, "An account: its shares of the bond's payments.", required=False),
                    Param(
                        "index",
                        integer(minimum=0, maximum=MAX_COUPONS),
                        "A payment's place in the schedule (coupons from 0, the redemption last).",
                        required=False,
                    ),
                    cursor_param(text_cursor.check, "a payment index, or with index alone an address"),
                    limit_param(),
                ),
                result=Result("payments", _PAYMENTS_SCHEMA, "Payments and holders' shares, and the next cursor."),
                errors=bond_errors,
                description="Without holder or index: payments lists those made (and one being paid), by index, "
                "and shares is empty. With index alone: payments is that payment, shares its holders' shares in "
                "account order. With holder: shares are the holder's, by index (with index too, that one only). "
                "An index past the schedule is invalid params (-32602) with payments: the schedule's length.",
            ),
            Method(
                name="offering_get",
                handler=self.get_offering,
                summary="A bond's offering: terms, phase, totals (subscribed, escrowed, allotted, unsold, "
                "refunded, proceeds) and the subscriptions in subscription order with what each was allotted "
                "and refunded, or one subscriber's.",
                params=(
                    bond,
                    Param("subscriber", address, "An account: its subscription alone.", required=False),
                    cursor_param(_check_sequence_cursor, "a subscription's sequence number"),
                    limit_param(),
                ),
                result=Result("offering", _OFFERING_RESULT_SCHEMA, "The offering and a page of subscriptions."),
                errors=(*bond_errors, NO_OFFERING),
                description="A bond whose issuer opened no offering is -32026. A subscriber with no subscription "
                "(or one cancelled) gets an empty list. allotted and refunded are null until the allotment.",
            ),
            Method(
                name="bond_getUseOfProceeds",
                handler=self.get_use_of_proceeds,
                summary="What a bond's offering raised, what has been spent and what is left, and the sum spent "
                "for each purpose, a page of purposes at a time.",
                params=(bond, cursor_param(_check_purpose_cursor, "a purpose"), limit_param()),
                result=Result("use_of_proceeds", _USE_OF_PROCEEDS_SCHEMA, "The proceeds and their spending."),
                errors=bond_errors,
                description="Purposes come in the order of their UTF-8 bytes.",
            ),
        ]


def _page_schema(name: str, items: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [name, "next_cursor"],
        "properties": {name: {"type": "array", "items": items}, "next_cursor": _NEXT_CURSOR},
    }


_SETTLEMENT_PROPERTIES: dict[str, Any] = {
    "bond": {"type": "string"},
    "settlement": {"type": "string", "description": "The asset amounts are in."},
    "settlement_decimals": {**_COUNT, "description": "Its decimals: 2 means 100 smallest units make one."},
}

_PAYMENTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["bond", "holder", "index", "payments", "shares", "next_cursor"],
    "properties": {
        "bond": {"type": "string"},
        "holder": {"type": ["string", "null"]},
        "index": {"type": ["integer", "null"], "minimum": 0},
        "payments": {"type": "array", "items": PAYMENT_SCHEMA},
        "shares": {"type": "array", "items": SHARE_SCHEMA},
        "next_cursor": _NEXT_CURSOR,
    },
}

_OFFERING_RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [*_SETTLEMENT_PROPERTIES, "offering", "subscriptions", "next_cursor"],
    "properties": {
        **_SETTLEMENT_PROPERTIES,
        "offering": OFFERING_SCHEMA,
        "subscriptions": {"type": "array", "items": SUBSCRIPTION_SCHEMA},
        "next_cursor": _NEXT_CURSOR,
    },
}

_USE_OF_PROCEEDS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        *_SETTLEMENT_PROPERTIES, "proceeds", "use_of_proceeds", "raised", "spent", "left", "purposes", "next_cursor",
    ],
    "properties": {
        **_SETTLEMENT_PROPERTIES,
        "proceeds": {"type": "string", "description": "The account the proceeds were paid to and are spent from."},
        "use_of_proceeds": {"type": "string", "description": "The bond's label of what the money is for."},
        "raised": {**_AMOUNT, "description": "Paid to the proceeds account by the offering."},
        "spent": {**_AMOUNT, "description": "Spent from them with a stated purpose."},
        "left": {**_AMOUNT, "description": "raised minus spent."},
        "purposes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["purpose", "spent"],
                "properties": {"purpose": {"type": "string"}, "spent": _AMOUNT},
            },
        },
        "next_cursor": _NEXT_CURSOR,
    },
}
