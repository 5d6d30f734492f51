"""``bond_list``, ``bond_get``, ``bond_getPayments``, ``offering_get`` and
``bond_getUseOfProceeds`` over HTTP.

The first part serves them from a real LevelDB store holding one bond in a state
written here entry by entry (a coupon paid, an offering allotted, proceeds spent), so
that every value the methods show is known in advance, with the node's clock fixed.
The second runs a bond's whole life on a real node, through real signed transactions
and the payments the chain makes itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import pytest

from mura.chain import codec
from mura.chain.address import encode_address
from mura.chain.assets import AssetState, AssetTerms, TransferPolicy
from mura.chain.bonds import (
    BondState,
    BondTerms,
    Offering,
    OfferingStatus,
    PaymentEvent,
    PaymentRecord,
    Subscription,
)
from mura.chain.keys import SigningKey
from mura.chain.pending import (
    PendingState,
    bond_key,
    bond_state_key,
    offering_key,
    proceeds_use_key,
    subscriber_key,
    subscription_key,
)
from mura.chain.store import Store
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
    paying_consent_payload,
    trade_payload,
)
from mura.rpc.bond_methods import BondMethods
from mura.rpc.node_view import NodeView
from mura.tests.ledger_fixtures import ACCOUNTS, ASSET, GENESIS_TIME_MS, ISSUER, certify, genesis, seal

from .support import DEADLINE, Endpoint, Serve, TestNode, schema_problems, wait_until

PREFIX = "tnac"
BOND = "NISHI-2031"
#: A bond with no payment made, no offering and nothing spent.
NEW_BOND = "NISHI-2032"
DAY_MS = 86_400_000
T0 = GENESIS_TIME_MS
#: The node's clock in these tests: past the second coupon, before maturity.
NOW_MS = T0 + 2 * DAY_MS + 5
ALICE, BOB, CAROL = ACCOUNTS[0], ACCOUNTS[1], ACCOUNTS[2]
TERMS = BondTerms(
    bond=BOND, settlement=ASSET, face=10_000, rate=4_550, frequency=2, first_period_days=0,
    coupon_times=(T0 + 1_000, T0 + 2 * DAY_MS), maturity_ms=T0 + 3 * DAY_MS, issue_ms=T0,
    paying=ISSUER.public_key, proceeds=ACCOUNTS[4].public_key, use_of_proceeds="forest road repair", green=True,
)  # fmt: skip
#: Coupon 0 at height 1: alice's 3 units got floor(68.25), bob's 5 floor(113.75); of 182 reserved, 1 stayed.
RECORD = PaymentRecord(index=0, late=False, height=1, time_ms=T0 + 1_000, units=8, holders=2, amount=181, retained=1)
#: Six units for 10,000 each; asked 3, 4 and 2 (a cancelled subscription left sequence 1 free): 2, 3 and 1 allotted.
OFFERING = Offering(
    BOND, units=6, price=10_000, start_ms=T0, end_ms=T0 + 500, min_units=1, max_units=0, min_total=0,
    status=OfferingStatus.SETTLED, subscribers=3, subscribed=9, escrowed=0, sequence=4, allotted=6, unsold=0,
    refunded=30_000, proceeds=60_000, settled_height=1,
)  # fmt: skip
SUBSCRIPTIONS = {0: Subscription(ALICE.public_key, 3, 2, 10_000), 2: Subscription(BOB.public_key, 4, 3, 10_000),
                 3: Subscription(CAROL.public_key, 2, 1, 10_000)}  # fmt: skip
SPENT = {"forest road": 25_000, "bridge": 10_000}


def address(key: SigningKey | bytes) -> str:
    return encode_address(key if isinstance(key, bytes) else key.public_key, PREFIX)


def bond_asset(bond: str) -> AssetTerms:
    return AssetTerms(bond, "Nishiawakura forest bond", 0, ISSUER.public_key, False, 0, ISSUER.public_key,
                      TransferPolicy.RESTRICTED, 0)  # fmt: skip


@dataclass
class StoreView:
    """The part of ``NodeView`` the bond methods read: a store and the address prefix."""

    store: Store
    address_prefix: str = PREFIX


def write_bonds(store: Store) -> None:
    """Block 1: both bonds issued, ``BOND`` with its coupon paid, offering allotted and proceeds spent."""
    pending = PendingState(store, timestamp_ms=T0 + 1_000, height=1)
    for bond, terms in ((BOND, TERMS), (NEW_BOND, replace(TERMS, bond=NEW_BOND))):
        pending.issue(bond_asset(bond))
        pending.set_asset_state(bond, AssetState(supply=10))
        pending.set_entry(bond_key(bond), terms.encode())
    pending.set_balance(ISSUER.public_key, NEW_BOND, 10)
    for holder, units in ((ISSUER, 2), (ALICE, 3), (BOB, 5)):
        pending.set_balance(holder.public_key, BOND, units)
    pending.set_entry(bond_state_key(BOND), BondState(next_payment=1, records=(RECORD,), raised=60_000,
                                                       spent=35_000).encode())  # fmt: skip
    pending.set_entry(offering_key(BOND), OFFERING.encode())
    for sequence, subscription in SUBSCRIPTIONS.items():
        pending.set_entry(subscription_key(BOND, sequence), subscription.encode())
        pending.set_entry(subscriber_key(BOND, subscription.subscriber), sequence.to_bytes(4, "big"))
    for purpose, amount in SPENT.items():
        pending.set_entry(proceeds_use_key(BOND, purpose), codec.encode(amount))
    events = (PaymentEvent(BOND, 0, ALICE.public_key, 3, 68), PaymentEvent(BOND, 0, BOB.public_key, 5, 113))
    parent = store.load_block(0)
    assert parent is not None
    block, _ = seal(store, parent, [], timestamp_ms=T0 + 1_000)
    store.save_block(block, certify(block), replace(pending.finish(), events=events))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "chain") as opened:
        opened.initialize(*genesis())
        write_bonds(opened)
        yield opened


@pytest.fixture
async def rpc(serve: Serve, store: Store) -> Endpoint:
    methods = BondMethods(cast(NodeView, StoreView(store)), clock_ms=lambda: NOW_MS)
    return await serve(methods.declarations())


async def checked(rpc: Endpoint, method: str, params: Any) -> Any:
    """The result of a call that must succeed, checked against its declared schema."""
    result = await rpc.result(method, params)
    assert schema_problems(result, rpc.server.engine.methods[method].result.schema) == []
    return result


def holders_in_account_order() -> list[SigningKey]:
    return sorted([ALICE, BOB], key=lambda key: key.public_key)


# --- bond_get -------------------------------------------------------------------------------------


async def test_bond_get_shows_terms_schedule_and_offering(rpc: Endpoint) -> None:
    assert await checked(rpc, "bond_get", [BOND]) == {
        "id": BOND, "name": "Nishiawakura forest bond", "settlement": "NAC", "settlement_decimals": 2,
        "face": 10_000, "rate": 4_550, "rate_percent": "0.455%", "maturity_ms": T0 + 3 * DAY_MS,
        "maturity_time": "2023-11-17T22:13:20Z", "use_of_proceeds": "forest road repair", "green": True,
        "supply": 10, "holders": 3, "redeemed": False,
        "issuer": address(ISSUER), "registrar": address(ISSUER), "policy": "restricted", "frequency": 2,
        "first_period_days": 0, "issue_ms": T0, "issue_time": "2023-11-14T22:13:20Z",
        "paying": address(ISSUER), "proceeds": address(ACCOUNTS[4]),
        # The issuer's genesis balance of NAC; alice and bob hold the 8 units a payment is paid on now.
        "paying_balance": 1_000_000, "entitled_units": 8, "locked": False,
        "next_payment": 1, "missed_ms": None, "missed_time": None,
        "payments": [
            {"index": 0, "kind": "coupon", "time_ms": T0 + 1_000, "time": "2023-11-14T22:13:21Z",
             "amount_per_unit": 22, "status": "paid", "required": None,
             "record": {"late": False, "height": 1, "time_ms": T0 + 1_000, "time": "2023-11-14T22:13:21Z",
                        "units": 8, "holders": 2, "amount": 181, "retained": 1}},
            {"index": 1, "kind": "coupon", "time_ms": T0 + 2 * DAY_MS, "time": "2023-11-16T22:13:20Z",
             "amount_per_unit": 22, "status": "due", "required": 182, "record": None},
            {"index": 2, "kind": "redemption", "time_ms": T0 + 3 * DAY_MS, "time": "2023-11-17T22:13:20Z",
             "amount_per_unit": 10_000, "status": "scheduled", "required": 80_000, "record": None},
        ],
        "in_progress": None, "raised": 60_000, "spent": 35_000,
        "offering": {
            "units": 6, "price": 10_000, "start_ms": T0, "start_time": "2023-11-14T22:13:20Z", "end_ms": T0 + 500,
            "end_time": "2023-11-14T22:13:20.500Z", "min_units": 1, "max_units": 6, "min_total": None,
            "status": "settled", "phase": "settled", "subscribers": 3, "subscribed": 9, "escrowed": 0,
            "allotted": 6, "unsold": 0, "refunded": 30_000, "proceeds": 60_000, "settled_height": 1,
        },
        "height": 1, "now_ms": NOW_MS,
    }  # fmt: skip


async def test_bond_get_of_a_bond_without_payments_or_offering(rpc: Endpoint) -> None:
    found = await checked(rpc, "bond_get", {"bond": NEW_BOND})
    assert [(payment["status"], payment["required"]) for payment in found["payments"]] == [
        ("due", 0), ("due", 0), ("scheduled", 0),
    ]
    assert (found["entitled_units"], found["next_payment"], found["offering"], found["raised"]) == (0, 0, None, 0)


@pytest.mark.parametrize("method", ["bond_get", "bond_getPayments", "offering_get", "bond_getUseOfProceeds"])
async def test_an_unknown_asset_and_a_plain_asset_are_errors(rpc: Endpoint, method: str) -> None:
    assert await rpc.error(method, ["XYZ"]) == {"code": -32024, "message": "Unknown asset", "data": {"asset": "XYZ"}}
    assert await rpc.error(method, ["NAC"]) == {"code": -32025, "message": "Not a bond", "data": {"asset": "NAC"}}
    malformed = await rpc.error(method, ["nac"])
    assert (malformed["code"], malformed["data"]["param"], malformed["data"]["rule"]) == (
        -32602, "bond", "invalid_asset_id",
    )


# --- bond_list ------------------------------------------------------------------------------------


async def test_bond_list_lists_bonds_only_a_page_at_a_time(rpc: Endpoint) -> None:
    first = await checked(rpc, "bond_list", {"limit": 1})
    assert [bond["id"] for bond in first["bonds"]] == [BOND] and first["next_cursor"] == BOND
    assert first["bonds"][0] == {
        "id": BOND, "name": "Nishiawakura forest bond", "settlement": "NAC", "settlement_decimals": 2,
        "face": 10_000, "rate": 4_550, "rate_percent": "0.455%", "maturity_ms": T0 + 3 * DAY_MS,
        "maturity_time": "2023-11-17T22:13:20Z", "use_of_proceeds": "forest road repair", "green": True,
        "supply": 10, "holders": 3, "redeemed": False,
    }  # fmt: skip
    second = await checked(rpc, "bond_list", {"cursor": BOND, "limit": 1})
    assert ([bond["id"] for bond in second["bonds"]], second["next_cursor"]) == ([NEW_BOND], None)
    whole = await checked(rpc, "bond_list", [])
    assert ([bond["id"] for bond in whole["bonds"]], whole["next_cursor"]) == ([BOND, NEW_BOND], None)
    assert (await rpc.error("bond_list", {"limit": 101}))["data"]["param"] == "limit"


# --- bond_getPayments ---------------------------------------------------------------------------------


async def test_bond_get_payments_lists_the_payments_made(rpc: Endpoint) -> None:
    found = await checked(rpc, "bond_getPayments", [BOND])
    assert (found["bond"], found["holder"], found["index"], found["shares"], found["next_cursor"]) == (
        BOND, None, None, [], None,
    )
    assert [(payment["index"], payment["status"], payment["record"]["amount"]) for payment in found["payments"]] == [
        (0, "paid", 181),
    ]
    assert (await checked(rpc, "bond_getPayments", {"bond": NEW_BOND}))["payments"] == []


async def test_bond_get_payments_of_one_payment_pages_its_holders(rpc: Endpoint) -> None:
    first, second = holders_in_account_order()
    units = {ALICE.public_key: 3, BOB.public_key: 5}
    amounts = {ALICE.public_key: 68, BOB.public_key: 113}
    expected = [
        {"index": 0, "kind": "coupon", "holder": address(key), "units": units[key.public_key],
         "amount": amounts[key.public_key], "height": 1}
        for key in (first, second)
    ]  # fmt: skip
    page = await checked(rpc, "bond_getPayments", {"bond": BOND, "index": 0, "limit": 1})
    assert (page["shares"], page["next_cursor"], page["index"]) == (expected[:1], address(first), 0)
    assert [payment["index"] for payment in page["payments"]] == [0]
    rest = await checked(rpc, "bond_getPayments", {"bond": BOND, "index": 0, "cursor": page["next_cursor"]})
    assert (rest["shares"], rest["next_cursor"]) == (expected[1:], None)
    assert (await checked(rpc, "bond_getPayments", {"bond": BOND, "index": 1}))["shares"] == []


async def test_bond_get_payments_of_one_holder(rpc: Endpoint) -> None:
    mine = await checked(rpc, "bond_getPayments", {"bond": BOND, "holder": address(BOB)})
    assert (mine["holder"], mine["payments"], mine["next_cursor"]) == (address(BOB), [], None)
    assert mine["shares"] == [
        {"index": 0, "kind": "coupon", "holder": address(BOB), "units": 5, "amount": 113, "height": 1},
    ]
    one = await checked(rpc, "bond_getPayments", {"bond": BOND, "holder": address(ALICE), "index": 0})
    assert [(share["amount"], share["units"]) for share in one["shares"]] == [(68, 3)]
    assert [payment["status"] for payment in one["payments"]] == ["paid"]
    none = await checked(rpc, "bond_getPayments", {"bond": BOND, "holder": address(CAROL), "index": 0})
    assert none["shares"] == []
    after = await checked(rpc, "bond_getPayments", {"bond": BOND, "holder": address(BOB), "cursor": "0"})
    assert after["shares"] == []


@pytest.mark.parametrize(
    ("params", "param", "reason"),
    [
        ({"index": 3}, "index", "bond NISHI-2031 has payments 0 to 2"),
        ({"index": 121}, "index", "must be at most 120, got 121"),
        ({"index": 0, "cursor": "7"}, "cursor", "not a cursor this node returned"),
        ({"cursor": "tnac1"}, "cursor", "not a cursor this node returned: expected a number from 0 to 120"),
        ({"holder": address(ALICE), "cursor": "-1"}, "cursor", "not a cursor this node returned"),
        ({"holder": "tnac1qqq"}, "holder", ""),
        ({"limit": 0}, "limit", "must be at least 1"),
    ],
    ids=["index-past-the-schedule", "index-past-any-schedule", "number-for-an-address-cursor",
         "address-for-an-index-cursor", "negative-index-cursor", "bad-holder", "limit-zero"],
)
async def test_bond_get_payments_invalid_params(rpc: Endpoint, params: dict[str, Any], param: str, reason: str) -> None:
    error = await rpc.error("bond_getPayments", {"bond": BOND, **params})
    assert (error["code"], error["data"]["param"]) == (-32602, param)
    assert error["data"]["reason"].startswith(reason)
    if param == "index" and params["index"] == 3:
        assert error["data"]["payments"] == 3


# --- offering_get ---------------------------------------------------------------------------------------


def subscription(sequence: int) -> dict[str, Any]:
    found = SUBSCRIPTIONS[sequence]
    return {"sequence": sequence, "subscriber": address(found.subscriber), "units": found.units,
            "paid": found.units * 10_000, "allotted": found.allotted, "refunded": found.refunded}  # fmt: skip


async def test_offering_get_pages_the_subscriptions_in_subscription_order(rpc: Endpoint) -> None:
    first = await checked(rpc, "offering_get", {"bond": BOND, "limit": 2})
    assert (first["bond"], first["settlement"], first["settlement_decimals"]) == (BOND, "NAC", 2)
    assert (first["offering"]["status"], first["offering"]["allotted"], first["offering"]["refunded"]) == (
        "settled", 6, 30_000,
    )
    assert (first["subscriptions"], first["next_cursor"]) == ([subscription(0), subscription(2)], "2")
    rest = await checked(rpc, "offering_get", {"bond": BOND, "cursor": "2", "limit": 2})
    assert (rest["subscriptions"], rest["next_cursor"]) == ([subscription(3)], None)
    # Allotted in all: 2 + 3 + 1 = the 6 units on sale; 10,000 refunded to each.
    assert sum(item["allotted"] for item in first["subscriptions"] + rest["subscriptions"]) == 6


async def test_offering_get_of_one_subscriber(rpc: Endpoint) -> None:
    mine = await checked(rpc, "offering_get", {"bond": BOND, "subscriber": address(BOB)})
    assert (mine["subscriptions"], mine["next_cursor"]) == ([subscription(2)], None)
    nobody = await checked(rpc, "offering_get", {"bond": BOND, "subscriber": address(ISSUER)})
    assert nobody["subscriptions"] == []


async def test_offering_get_errors(rpc: Endpoint) -> None:
    assert await rpc.error("offering_get", [NEW_BOND]) == {
        "code": -32026, "message": "No offering", "data": {"bond": NEW_BOND},
    }
    error = await rpc.error("offering_get", {"bond": BOND, "cursor": "x"})
    assert (error["code"], error["data"]["param"]) == (-32602, "cursor")
    assert error["data"]["reason"] == "not a cursor this node returned: expected a subscription's sequence number"


# --- bond_getUseOfProceeds --------------------------------------------------------------------------------


async def test_bond_get_use_of_proceeds_sums_spending_by_purpose(rpc: Endpoint) -> None:
    first = await checked(rpc, "bond_getUseOfProceeds", {"bond": BOND, "limit": 1})
    assert first == {
        "bond": BOND, "settlement": "NAC", "settlement_decimals": 2, "proceeds": address(ACCOUNTS[4]),
        "use_of_proceeds": "forest road repair", "raised": 60_000, "spent": 35_000, "left": 25_000,
        "purposes": [{"purpose": "bridge", "spent": 10_000}], "next_cursor": "bridge",
    }  # fmt: skip
    rest = await checked(rpc, "bond_getUseOfProceeds", {"bond": BOND, "cursor": "bridge"})
    assert (rest["purposes"], rest["next_cursor"]) == ([{"purpose": "forest road", "spent": 25_000}], None)
    empty = await checked(rpc, "bond_getUseOfProceeds", [NEW_BOND])
    assert (empty["raised"], empty["left"], empty["purposes"]) == (0, 0, [])
    error = await rpc.error("bond_getUseOfProceeds", {"bond": BOND, "cursor": "\x00"})
    assert (error["code"], error["data"]["param"]) == (-32602, "cursor")


# --- a bond's life on a real node -------------------------------------------------------------------
#
# A single-validator node makes a block every 20 ms with the wall clock's time. The village
# (the treasury) issues 10 units of a restricted bond settled in JPYT and offers 8; three
# residents ask for 12 in all. A separate paying account holds just enough for the first
# coupon, so the second is missed until the bank funds it.

RESIDENTS = [SigningKey.from_private_bytes(bytes([index]) * 32) for index in (41, 42, 43)]
PAYER = SigningKey.from_private_bytes(bytes([44]) * 32)
LIVE_BOND = "VILLAGE-1"
PRICE = 10_000
#: A coupon on the 8 units the residents hold: floor(8 x 10,000 x 0.455 % / 2).
COUPON_RESERVE = 182


def bond_state_of(node: TestNode) -> BondState:
    assert node.node.store is not None
    entry = node.node.store.load_entry(bond_state_key(LIVE_BOND))
    return BondState() if entry is None else BondState.decode(entry)


def offering_of(node: TestNode) -> Offering | None:
    assert node.node.store is not None
    entry = node.node.store.load_entry(offering_key(LIVE_BOND))
    return None if entry is None else Offering.decode(entry)


async def run(node: TestNode, body: Body, key: SigningKey) -> None:
    await node.finalize(node.sign(body, key=key))


async def issue_and_offer(node: TestNode) -> dict[str, int]:
    """The bond issued, its holders approved, 8 units offered and subscribed (one subscription
    cancelled and made again); the schedule's times, from now."""
    alice, bob, carol = RESIDENTS
    for account, amount in ((PAYER, COUPON_RESERVE), (alice, 100_000), (bob, 100_000), (carol, 100_000)):
        await run(node, Transfer("JPYT", account.public_key, amount), node.bank)
    base = time.time_ns() // 1_000_000
    # Ten transactions must be final before the window ends: a few hundred milliseconds on a quiet machine.
    times = {"issue": base, "end": base + 3_000, "first": base + 4_000, "second": base + 5_500,
             "maturity": base + 7_500}  # fmt: skip
    terms = IssueBond(
        asset=LIVE_BOND, name="Village forest bond", units=10, registrar=b"", policy="restricted", settlement="JPYT",
        face=10_000, rate=4_550, frequency=2, first_period_days=0, coupon_times=(times["first"], times["second"]),
        maturity_ms=times["maturity"], issue_ms=base, paying=PAYER.public_key, proceeds=b"",
        use_of_proceeds="forest road repair", green=True,
    )  # fmt: skip
    # The paying account agrees to pay these terms.
    consent = PAYER.sign(paying_consent_payload(node.chain_id, node.treasury.public_key, terms))
    await run(node, replace(terms, paying_consent=consent), node.treasury)
    for resident in RESIDENTS:
        await run(node, ApproveHolder(LIVE_BOND, resident.public_key), node.treasury)
    await run(node, OpenOffering(LIVE_BOND, 8, PRICE, base, times["end"], 1, 0, 0), node.treasury)
    for resident, units in ((alice, 6), (bob, 4), (carol, 3)):
        await run(node, Subscribe(LIVE_BOND, units), resident)
    await run(node, CancelSubscription(LIVE_BOND), carol)
    await run(node, Subscribe(LIVE_BOND, 2), carol)
    return times


async def test_a_bond_from_its_offering_to_its_redemption(node: TestNode) -> None:
    alice, bob, carol = RESIDENTS
    times = await issue_and_offer(node)
    subscribing = await node.checked("offering_get", [LIVE_BOND])
    assert (subscribing["offering"]["phase"], subscribing["offering"]["subscribed"]) == ("subscribing", 12)
    assert [(item["sequence"], item["units"], item["allotted"]) for item in subscribing["subscriptions"]] == [
        (0, 6, None), (1, 4, None), (3, 2, None),
    ]

    # The window's end: 8 units shared pro rata among 12 asked, the largest remainder to bob.
    await wait_until(lambda: offering_of(node) and cast(Offering, offering_of(node)).status is OfferingStatus.SETTLED,
                     "the allotment", timeout=DEADLINE + 5)
    allotted = await node.checked("offering_get", {"bond": LIVE_BOND, "limit": 2})
    assert allotted["offering"] | {"start_time": None, "end_time": None} == {
        "units": 8, "price": PRICE, "start_ms": times["issue"], "start_time": None, "end_ms": times["end"],
        "end_time": None, "min_units": 1, "max_units": 8, "min_total": None, "status": "settled", "phase": "settled",
        "subscribers": 3, "subscribed": 12, "escrowed": 120_000, "allotted": 8, "unsold": 0, "refunded": 40_000,
        "proceeds": 80_000, "settled_height": allotted["offering"]["settled_height"],
    }  # fmt: skip
    assert [(item["subscriber"], item["allotted"], item["refunded"]) for item in allotted["subscriptions"]] == [
        (node.address(alice), 4, 20_000), (node.address(bob), 3, 10_000),
    ]
    assert allotted["next_cursor"] == "1"
    rest = await node.checked("offering_get", {"bond": LIVE_BOND, "cursor": "1"})
    assert [(item["sequence"], item["allotted"], item["refunded"]) for item in rest["subscriptions"]] == [
        (3, 1, 10_000),
    ]

    # The first coupon, on the residents' 8 units: 91, 68 and 22; one unit of the sum reserved stays with the payer.
    await wait_until(lambda: bond_state_of(node).next_payment >= 1, "the first coupon", timeout=DEADLINE + 5)
    shares = await node.checked("bond_getPayments", {"bond": LIVE_BOND, "index": 0})
    paid = {share["holder"]: (share["units"], share["amount"]) for share in shares["shares"]}
    assert paid == {node.address(alice): (4, 91), node.address(bob): (3, 68), node.address(carol): (1, 22)}
    first = shares["payments"][0]
    assert (first["status"], first["record"]["amount"], first["record"]["retained"], first["record"]["late"]) == (
        "paid", 181, 1, False,
    )
    assert await node.rpc.result("account_getBalance", [node.address(PAYER), "JPYT"]) == 1

    # Alice sells bob one unit, delivery versus payment; the village spends part of the proceeds.
    trade = SettleTrade(LIVE_BOND, alice.public_key, bob.public_key, 1, 9_500, times["maturity"], b"t-1", bytes(64))
    trade = replace(trade, counterparty_signature=bob.sign(trade_payload(node.chain_id, trade)))
    await run(node, trade, alice)
    for purpose, amount in (("forest road", 30_000), ("signage", 5_000)):
        await run(node, SpendProceeds(LIVE_BOND, carol.public_key, amount, purpose), node.treasury)
    assert await node.checked("bond_getUseOfProceeds", [LIVE_BOND]) == {
        "bond": LIVE_BOND, "settlement": "JPYT", "settlement_decimals": 0, "proceeds": node.address(node.treasury),
        "use_of_proceeds": "forest road repair", "raised": 80_000, "spent": 35_000, "left": 45_000,
        "purposes": [{"purpose": "forest road", "spent": 30_000}, {"purpose": "signage", "spent": 5_000}],
        "next_cursor": None,
    }  # fmt: skip

    # The payer holds 1 of the 182 the second coupon needs: missed, retried at every block.
    await wait_until(lambda: bond_state_of(node).missed_ms >= times["second"], "the missed coupon",
                     timeout=DEADLINE + 5)
    missed = await node.checked("bond_get", [LIVE_BOND])
    assert [payment["status"] for payment in missed["payments"]] == ["paid", "missed", "scheduled"]
    assert (missed["payments"][1]["required"], missed["paying_balance"], missed["next_payment"]) == (
        COUPON_RESERVE, 1, 1,
    )
    assert missed["missed_ms"] >= times["second"] and missed["missed_time"]
    await run(node, Transfer("JPYT", PAYER.public_key, 81_000), node.bank)
    await wait_until(lambda: bond_state_of(node).next_payment >= 3, "the redemption", timeout=DEADLINE + 5)

    redeemed = await node.checked("bond_get", [LIVE_BOND])
    assert [payment["status"] for payment in redeemed["payments"]] == ["paid", "paid_late", "paid"]
    assert (redeemed["redeemed"], redeemed["next_payment"], redeemed["supply"], redeemed["locked"]) == (
        True, None, 0, False,
    )
    late = redeemed["payments"][1]["record"]
    assert (late["late"], late["amount"], late["retained"], late["holders"]) == (True, 181, 1, 3)
    bob_shares = await node.checked("bond_getPayments", {"bond": LIVE_BOND, "holder": node.address(bob)})
    assert [(share["index"], share["kind"], share["units"], share["amount"]) for share in bob_shares["shares"]] == [
        (0, "coupon", 3, 68), (1, "coupon", 4, 91), (2, "redemption", 4, 40_000),
    ]
    made = await node.checked("bond_getPayments", {"bond": LIVE_BOND, "limit": 2})
    assert ([payment["index"] for payment in made["payments"]], made["next_cursor"]) == ([0, 1], "1")
    listed = await node.checked("bond_list", [])
    assert [(bond["id"], bond["redeemed"], bond["rate_percent"]) for bond in listed["bonds"]] == [
        (LIVE_BOND, True, "0.455%"),
    ]
