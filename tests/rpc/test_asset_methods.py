"""``asset_list``, ``asset_get`` and ``asset_getHolders`` against a real node (real store,
replica and blocks), and the asset rules' refusals as ``tx_submit`` answers them."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from mura.chain.keys import SigningKey
from mura.chain.transaction import ApproveHolder, Freeze, Mint, Transaction, Transfer
from mura.genesis.testnet import DEFAULT_BANK_AMOUNT, DEFAULT_TREASURY_AMOUNT

from .support import DEADLINE, TestNode, issue, wait_until

ALICE = SigningKey.from_private_bytes(bytes(range(32)))
REGISTRAR = SigningKey.from_private_bytes(bytes(range(2, 34)))
ACCOUNTS = [SigningKey.from_private_bytes(bytes([index]) * 32) for index in range(10, 15)]


def as_hex(transaction: Transaction) -> str:
    return "0x" + transaction.encoded.hex()


async def refusal(node: TestNode, transaction: Transaction) -> dict[str, Any]:
    """The data of ``tx_submit``'s refusal of a transaction that breaks a chain rule."""
    error = await node.rpc.error("tx_submit", [as_hex(transaction)])
    assert (error["code"], error["message"]) == (-32010, "Transaction refused"), error
    assert error["data"]["message"]
    return error["data"]  # type: ignore[no-any-return]


# --- asset_list ------------------------------------------------------------------------------------


async def test_asset_list_shows_the_genesis_assets(paused: TestNode) -> None:
    assert await paused.checked("asset_list") == {
        "assets": [
            {"id": "JPYT", "name": "JPY Token", "decimals": 0, "issuer": paused.address(paused.bank),
             "policy": "open", "reissuable": True, "supply": DEFAULT_BANK_AMOUNT, "holders": 1, "expired": False},
            {"id": "NAC", "name": "Nishiawakura Coin", "decimals": 2, "issuer": paused.address(paused.treasury),
             "policy": "open", "reissuable": True, "supply": DEFAULT_TREASURY_AMOUNT, "holders": 1, "expired": False},
        ],
        "next_cursor": None,
    }


async def test_asset_list_pages_by_id(node: TestNode) -> None:
    for asset in ("BOND-A", "BOND-B", "ZEN"):
        await node.finalize(node.sign(issue(asset)))
    pages: list[list[str]] = []
    cursor = None
    while True:
        page = await node.checked("asset_list", {"cursor": cursor, "limit": 2})
        pages.append([summary["id"] for summary in page["assets"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [["BOND-A", "BOND-B"], ["JPYT", "NAC"], ["ZEN"]]
    whole = await node.checked("asset_list", [None, 5])
    assert ([summary["id"] for summary in whole["assets"]], whole["next_cursor"]) == (
        ["BOND-A", "BOND-B", "JPYT", "NAC", "ZEN"], None,
    )


@pytest.mark.parametrize(
    ("params", "param", "reason"),
    [
        ({"cursor": "nac"}, "cursor", "not a cursor this node returned: asset id 'nac' is not uppercase"),
        ({"limit": 0}, "limit", "must be at least 1, got 0"),
        ({"limit": 1001}, "limit", "must be at most 1000, got 1001"),
        ({"limit": "5"}, "limit", "expected an integer, got string"),
    ],
    ids=["lowercase-cursor", "limit-zero", "limit-over-the-maximum", "limit-as-text"],
)
async def test_asset_list_invalid_params(paused: TestNode, params: dict[str, Any], param: str, reason: str) -> None:
    error = await paused.rpc.error("asset_list", params)
    assert (error["code"], error["data"]["param"]) == (-32602, param)
    assert error["data"]["reason"].startswith(reason)


# --- asset_get ------------------------------------------------------------------------------------


async def test_asset_get_shows_the_terms_and_the_state(node: TestNode) -> None:
    treasury = node.address(node.treasury)
    assert await node.checked("asset_get", ["NAC"]) == {
        "id": "NAC", "name": "Nishiawakura Coin", "decimals": 2, "issuer": treasury, "registrar": treasury,
        "policy": "open", "reissuable": True, "cap": None, "expiry_ms": None, "expiry_time": None,
        "supply": DEFAULT_TREASURY_AMOUNT, "holders": 1, "expired": False, "lapsed": 0, "lapse_complete": False,
    }
    expiry_ms = int(datetime(2031, 1, 1, tzinfo=UTC).timestamp()) * 1000
    await node.finalize(node.sign(issue("BOND-2031", name="Village bond 2031", decimals=2, supply=5000,
                                        cap=10_000, registrar=REGISTRAR.public_key, policy="restricted",
                                        expiry_ms=expiry_ms)))
    assert await node.checked("asset_get", {"asset": "BOND-2031"}) == {
        "id": "BOND-2031", "name": "Village bond 2031", "decimals": 2, "issuer": treasury,
        "registrar": node.address(REGISTRAR), "policy": "restricted", "reissuable": True, "cap": 10_000,
        "expiry_ms": expiry_ms, "expiry_time": "2031-01-01T00:00:00Z", "supply": 5000, "holders": 1,
        "expired": False, "lapsed": 0, "lapse_complete": False,
    }


async def test_asset_get_an_expiry_past_the_year_9999_has_no_time_text(node: TestNode) -> None:
    far = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp()) * 1000 + 86_400_000
    await node.finalize(node.sign(issue("FOREVER", expiry_ms=far)))
    found = await node.checked("asset_get", ["FOREVER"])
    assert (found["expiry_ms"], found["expiry_time"], found["expired"]) == (far, None, False)


@pytest.mark.parametrize(
    ("asset", "reason"),
    [
        ("nac", "asset id 'nac' is not uppercase letters and digits in groups joined by single hyphens, "
         "starting with a letter (e.g. NAC, NISHI-2031-01)"),
        ("", "an asset id is 1 to 32 characters, got none"),
        ("A" * 33, "an asset id is at most 32 characters, got 33"),
        ("A" * 10_000, "an asset id is at most 32 characters, got 10000"),
    ],
    ids=["lowercase", "empty", "33-characters", "10000-characters"],
)
async def test_asset_get_a_malformed_id_is_invalid_params(paused: TestNode, asset: str, reason: str) -> None:
    error = await paused.rpc.error("asset_get", [asset])
    assert error == {
        "code": -32602, "message": "Invalid params",
        "data": {"param": "asset", "reason": reason, "rule": "invalid_asset_id"},
    }


async def test_asset_get_an_unknown_asset(paused: TestNode) -> None:
    assert await paused.rpc.error("asset_get", ["XYZ"]) == {
        "code": -32024, "message": "Unknown asset", "data": {"asset": "XYZ"},
    }
    assert (await paused.rpc.error("asset_get", [5]))["data"] == {
        "param": "asset", "reason": "expected a string, got integer",
    }


# --- asset_getHolders ---------------------------------------------------------------------------------


async def all_holders(node: TestNode, asset: str, *, limit: int, height: int | None = None) -> list[tuple[str, int]]:
    """Every holder, page after page, all read at one height (the first page's)."""
    found: list[tuple[str, int]] = []
    cursor = None
    while True:
        page = await node.checked("asset_getHolders", {"asset": asset, "height": height, "cursor": cursor,
                                                        "limit": limit})
        assert len(page["holders"]) <= limit and page["asset"] == asset
        height = page["height"]
        found += [(holder["address"], holder["balance"]) for holder in page["holders"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def test_holders_in_account_order_now_and_at_past_heights(node: TestNode) -> None:
    treasury = node.address(node.treasury)
    heights = []
    for amount, account in enumerate(ACCOUNTS, start=1):
        heights.append((await node.finalize(node.sign(Transfer("NAC", account.public_key, 100 * amount))))
                       ["block_height"])
    paid = {node.address(account): 100 * amount for amount, account in enumerate(ACCOUNTS, start=1)}
    everyone = [(treasury, DEFAULT_TREASURY_AMOUNT - sum(paid.values())), *paid.items()]
    public_keys = {node.address(key): key.public_key for key in [node.treasury, *ACCOUNTS]}

    def in_account_order(holders: list[tuple[str, int]]) -> list[tuple[str, int]]:
        return sorted(holders, key=lambda holder: public_keys[holder[0]])

    assert await all_holders(node, "NAC", limit=2) == in_account_order(everyone)
    assert await all_holders(node, "NAC", limit=1000) == in_account_order(everyone)

    # After the second payment's block: the treasury and the first two accounts, as they stood then.
    then = [(treasury, DEFAULT_TREASURY_AMOUNT - 300), (node.address(ACCOUNTS[0]), 100),
            (node.address(ACCOUNTS[1]), 200)]
    assert await all_holders(node, "NAC", limit=1, height=heights[1]) == in_account_order(then)
    assert await all_holders(node, "NAC", limit=1000, height=0) == [(treasury, DEFAULT_TREASURY_AMOUNT)]

    # A holder who gives everything back is no holder now, nor after that block once the chain has
    # moved on (read from history then), and still one at the heights it was.
    back = await node.finalize(node.sign(Transfer("NAC", node.treasury.public_key, 100), key=ACCOUNTS[0]))
    now = await all_holders(node, "NAC", limit=3)
    assert node.address(ACCOUNTS[0]) not in dict(now) and len(now) == len(everyone) - 1
    await wait_until(lambda: node.height > back["block_height"], "a block after the payment back")
    assert await all_holders(node, "NAC", limit=3, height=back["block_height"]) == now
    assert (node.address(ACCOUNTS[0]), 100) in await all_holders(node, "NAC", limit=3, height=heights[-1])
    assert (await node.checked("asset_get", ["NAC"]))["holders"] == len(everyone) - 1


async def test_holders_of_another_asset_and_of_an_asset_issued_later(node: TestNode) -> None:
    assert await all_holders(node, "JPYT", limit=10) == [(node.address(node.bank), DEFAULT_BANK_AMOUNT)]
    before = node.height
    await node.finalize(node.sign(issue("POINTS", supply=50)))
    assert await all_holders(node, "POINTS", limit=10) == [(node.address(node.treasury), 50)]
    assert await all_holders(node, "POINTS", limit=10, height=before) == []


@pytest.mark.parametrize(
    ("params", "param", "reason"),
    [
        (["NAC", -1], "height", "must be at least 0, got -1"),
        (["NAC", 1.5], "height", "expected an integer, got number"),
        (["NAC", None, "tnac1xyz"], "cursor", "not a cursor this node returned: "),
        (["NAC", None, "x" * 129], "cursor", "not a cursor this node returned: 129 characters"),
        (["NAC", None, None, 1001], "limit", "must be at most 1000, got 1001"),
        (["nac"], "asset", "asset id 'nac' is not uppercase"),
    ],
    ids=["negative-height", "fractional-height", "bad-cursor", "long-cursor", "limit-over-the-maximum", "bad-asset"],
)
async def test_holders_invalid_params(paused: TestNode, params: list[Any], param: str, reason: str) -> None:
    error = await paused.rpc.error("asset_getHolders", params)
    assert (error["code"], error["data"]["param"]) == (-32602, param)
    assert error["data"]["reason"].startswith(reason)


async def test_holders_of_an_unknown_asset_and_above_the_head(paused: TestNode) -> None:
    assert await paused.rpc.error("asset_getHolders", ["XYZ"]) == {
        "code": -32024, "message": "Unknown asset", "data": {"asset": "XYZ"},
    }
    assert await paused.rpc.error("asset_getHolders", {"asset": "NAC", "height": 99}) == {
        "code": -32020, "message": "Block not found", "data": {"height": 99, "head": 0},
    }
    other_network = paused.address(ALICE).replace("tnac1", "nac1", 1)
    error = await paused.rpc.error("asset_getHolders", ["NAC", None, other_network])
    assert error["data"]["reason"].startswith("not a cursor this node returned: address is for network")


# --- expiry --------------------------------------------------------------------------------------------


async def test_an_expired_asset_lapses_back_to_its_issuer_and_moves_no_more(node: TestNode) -> None:
    expiry_ms = int(time.time() * 1000) + 3000
    await node.finalize(node.sign(issue("VOUCHER", supply=1000, expiry_ms=expiry_ms)))
    paid = await node.finalize(node.sign(Transfer("VOUCHER", ALICE.public_key, 300)))
    assert node.node.store is not None
    store = node.node.store
    await wait_until(lambda: store.load_asset_state("VOUCHER").lapse_complete, "the voucher to lapse",
                     timeout=DEADLINE)
    found = await node.checked("asset_get", ["VOUCHER"])
    assert {name: found[name] for name in ("expired", "lapsed", "lapse_complete", "supply", "holders")} == {
        "expired": True, "lapsed": 300, "lapse_complete": True, "supply": 1000, "holders": 1,
    }
    assert found["expiry_time"] is not None and found["expiry_ms"] == expiry_ms
    listed = {summary["id"]: summary for summary in (await node.checked("asset_list"))["assets"]}
    assert listed["VOUCHER"]["expired"] is True
    treasury = node.address(node.treasury)
    assert await all_holders(node, "VOUCHER", limit=10) == [(treasury, 1000)]
    lapsed_at = node.height
    await wait_until(lambda: node.height > lapsed_at, "a block after the lapse")
    assert await all_holders(node, "VOUCHER", limit=10, height=lapsed_at) == [(treasury, 1000)]
    assert sorted(await all_holders(node, "VOUCHER", limit=10, height=paid["block_height"])) == sorted(
        [(treasury, 700), (node.address(ALICE), 300)]
    )
    sent = await refusal(node, node.sign(Transfer("VOUCHER", ALICE.public_key, 1)))
    assert (sent["rule"], sent["asset"]) == ("asset_expired", "VOUCHER")
    minted = await refusal(node, node.sign(Mint("VOUCHER", ALICE.public_key, 1)))
    assert (minted["rule"], minted["asset"]) == ("asset_expired", "VOUCHER")


# --- the asset rules, as tx_submit refuses them --------------------------------------------------------


async def test_restricted_and_frozen_transfers_are_refused_naming_the_account(node: TestNode) -> None:
    await node.finalize(node.sign(issue("LAND", supply=100, reissuable=False, registrar=REGISTRAR.public_key,
                                        policy="restricted")))
    alice = node.address(ALICE)
    not_approved = await refusal(node, node.sign(Transfer("LAND", ALICE.public_key, 10)))
    assert {name: not_approved[name] for name in ("rule", "asset", "party", "account", "address")} == {
        "rule": "holder_not_approved", "asset": "LAND", "party": "recipient", "account": ALICE.public_key.hex(),
        "address": alice,
    }
    by_the_issuer = await refusal(node, node.sign(ApproveHolder("LAND", ALICE.public_key)))
    assert (by_the_issuer["rule"], by_the_issuer["asset"]) == ("not_registrar", "LAND")
    fixed = await refusal(node, node.sign(Mint("LAND", ALICE.public_key, 1)))
    assert (fixed["rule"], fixed["asset"]) == ("asset_not_reissuable", "LAND")

    await node.finalize(node.sign(ApproveHolder("LAND", ALICE.public_key), key=REGISTRAR))
    await node.finalize(node.sign(Transfer("LAND", ALICE.public_key, 10)))
    await node.finalize(node.sign(Freeze("LAND", ALICE.public_key), key=REGISTRAR))
    frozen = await refusal(node, node.sign(Transfer("LAND", node.treasury.public_key, 1), key=ALICE))
    assert {name: frozen[name] for name in ("rule", "asset", "party", "address")} == {
        "rule": "account_frozen", "asset": "LAND", "party": "sender", "address": alice,
    }


async def test_supply_rules_are_refused_with_their_facts(node: TestNode) -> None:
    await node.finalize(node.sign(issue("CAPPED", supply=90, cap=100)))
    capped = await refusal(node, node.sign(Mint("CAPPED", ALICE.public_key, 11)))
    assert {name: capped[name] for name in ("rule", "asset", "amount", "supply", "cap")} == {
        "rule": "supply_cap_exceeded", "asset": "CAPPED", "amount": 11, "supply": 90, "cap": 100,
    }
    not_theirs = await refusal(node, node.sign(Mint("NAC", ALICE.public_key, 1), key=node.bank))
    assert (not_theirs["rule"], not_theirs["asset"]) == ("not_asset_issuer", "NAC")
    short = await refusal(node, node.sign(Transfer("JPYT", ALICE.public_key, 1)))
    assert {name: short[name] for name in ("rule", "asset", "balance", "amount")} == {
        "rule": "insufficient_balance", "asset": "JPYT", "balance": 0, "amount": 1,
    }
