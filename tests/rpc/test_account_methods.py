"""``account_get``, ``account_getBalance``, ``account_getBalances`` and ``account_getTransactions``
against a real node: balances per asset now and after past blocks, and an account's history
newest first, page after page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mura.chain.address import encode_address
from mura.chain.keys import SigningKey
from mura.chain.transaction import Burn, Freeze, Mint, Transfer
from mura.genesis.testnet import DEFAULT_BANK_AMOUNT, DEFAULT_TREASURY_AMOUNT, generate_testnet

from .conftest import StartNode
from .support import TestNode, issue, wait_until

ALICE = SigningKey.from_private_bytes(bytes(range(32)))
NOBODY = SigningKey.from_private_bytes(bytes(range(1, 33)))
ADDRESS_METHODS = ["account_getBalance", "account_get", "account_getBalances", "account_getTransactions"]


def mistype(address: str) -> str:
    """``address`` with one character changed, which its checksum catches."""
    position = len(address) - 10
    return address[:position] + ("q" if address[position] != "q" else "p") + address[position + 1 :]


# --- account_get ----------------------------------------------------------------------------------


async def test_account_get_shows_balances_per_asset_roles_and_the_next_nonce(paused: TestNode) -> None:
    for _ in range(2):
        await paused.submit(paused.sign(Transfer("NAC", ALICE.public_key, 1)))
    assert await paused.checked("account_get", [paused.address(paused.treasury)]) == {
        "address": paused.address(paused.treasury),
        "public_key": "0x" + paused.treasury.public_key.hex(),
        "nonce": 0,
        "pending": 2,
        "next_nonce": 2,
        "roles": ["issuer"],
        "balances": [{"asset": "NAC", "balance": DEFAULT_TREASURY_AMOUNT, "decimals": 2}],
        "more_balances": False,
    }
    bank = await paused.checked("account_get", [paused.address(paused.bank)])
    assert (bank["roles"], bank["balances"]) == (["issuer"], [{"asset": "JPYT", "balance": DEFAULT_BANK_AMOUNT,
                                                               "decimals": 0}])
    validator = await paused.checked("account_get", [paused.address(paused.validator)])
    assert (validator["roles"], validator["balances"]) == (["validator"], [])
    nobody = await paused.checked("account_get", {"address": paused.address(NOBODY)})
    assert (nobody["nonce"], nobody["next_nonce"], nobody["roles"], nobody["balances"]) == (0, 0, [], [])


async def test_account_get_after_mint_burn_and_payments_in_two_assets(node: TestNode) -> None:
    await node.finalize(node.sign(Mint("NAC", ALICE.public_key, 500)))
    await node.finalize(node.sign(Burn("NAC", 100)))
    await node.finalize(node.sign(Transfer("JPYT", ALICE.public_key, 7), key=node.bank))
    alice = await node.checked("account_get", [node.address(ALICE)])
    assert alice["balances"] == [
        {"asset": "JPYT", "balance": 7, "decimals": 0}, {"asset": "NAC", "balance": 500, "decimals": 2},
    ]
    treasury = await node.checked("account_get", [node.address(node.treasury)])
    assert (treasury["balances"], treasury["nonce"], treasury["pending"]) == (
        [{"asset": "NAC", "balance": DEFAULT_TREASURY_AMOUNT - 100, "decimals": 2}], 2, 0,
    )


# --- account_getBalance -----------------------------------------------------------------------------


async def test_balance_in_the_default_asset_or_the_asset_named(paused: TestNode) -> None:
    treasury, bank = paused.address(paused.treasury), paused.address(paused.bank)
    assert await paused.checked("account_getBalance", [treasury]) == DEFAULT_TREASURY_AMOUNT
    assert await paused.checked("account_getBalance", [treasury.upper()]) == DEFAULT_TREASURY_AMOUNT
    assert await paused.checked("account_getBalance", [treasury, "JPYT"]) == 0
    assert await paused.checked("account_getBalance", {"address": bank, "asset": "JPYT"}) == DEFAULT_BANK_AMOUNT
    assert await paused.checked("account_getBalance", {"address": paused.address(NOBODY)}) == 0


async def test_balance_of_an_unknown_or_malformed_asset(paused: TestNode) -> None:
    treasury = paused.address(paused.treasury)
    assert await paused.rpc.error("account_getBalance", [treasury, "XYZ"]) == {
        "code": -32024, "message": "Unknown asset", "data": {"asset": "XYZ"},
    }
    malformed = await paused.rpc.error("account_getBalance", [treasury, "N A C"])
    assert (malformed["code"], malformed["data"]["param"], malformed["data"]["rule"]) == (
        -32602, "asset", "invalid_asset_id",
    )


async def test_balance_on_a_network_without_a_default_asset_asks_for_one(
    start_node: StartNode, tmp_path: Path
) -> None:
    layout = generate_testnet(tmp_path / "no-assets", validators=1)
    document = json.loads(layout.genesis_path.read_text())
    document["assets"] = []
    layout.genesis_path.write_text(json.dumps(document))
    node = await start_node(layout=layout)
    error = await node.rpc.error("account_getBalance", [node.address(node.treasury)])
    assert error == {
        "code": -32602, "message": "Invalid params",
        "data": {"param": "asset", "reason": "this network has no default asset: name one (asset_list lists them)"},
    }
    assert (await node.checked("chain_status"))["default_asset"] is None


@pytest.mark.parametrize("method", ADDRESS_METHODS)
@pytest.mark.parametrize(
    ("value", "reason", "rule"),
    [
        (mistype(encode_address(ALICE.public_key, "tnac")), "address checksum does not match: it has a typo",
         "invalid_address"),
        (encode_address(ALICE.public_key, "nac"), "address is for network 'nac', this network uses 'tnac'",
         "invalid_address"),
        ("tnac1bio", "address contains characters that cannot appear in an address: 'bio'", "invalid_address"),
        (12, "expected a string, got integer", None),
    ],
    ids=["typo", "other-network", "bad-characters", "not-a-string"],
)
async def test_a_mistyped_address_is_invalid_params(
    paused: TestNode, method: str, value: Any, reason: str, rule: str | None
) -> None:
    error = await paused.rpc.error(method, [value])
    expected: dict[str, Any] = {"param": "address", "reason": reason}
    if rule is not None:
        expected["rule"] = rule
    assert error == {"code": -32602, "message": "Invalid params", "data": expected}


# --- account_getBalances ------------------------------------------------------------------------------


async def test_balances_now_and_after_past_blocks(node: TestNode) -> None:
    alice = node.address(ALICE)
    before = node.height
    yen = (await node.finalize(node.sign(Transfer("JPYT", ALICE.public_key, 7000), key=node.bank)))["block_height"]
    coin = (await node.finalize(node.sign(Transfer("NAC", ALICE.public_key, 1250))))["block_height"]
    back = (await node.finalize(node.sign(Transfer("JPYT", node.bank.public_key, 7000), key=ALICE)))["block_height"]

    async def balances(height: int | None) -> list[dict[str, Any]]:
        found = await node.checked("account_getBalances", {"address": alice, "height": height})
        assert found["address"] == alice and found["next_cursor"] is None
        assert height is None or found["height"] == height
        return found["balances"]  # type: ignore[no-any-return]

    await wait_until(lambda: node.height > back, "a block after the payment back")
    yen_only = [{"asset": "JPYT", "balance": 7000, "decimals": 0}]
    both = [*yen_only, {"asset": "NAC", "balance": 1250, "decimals": 2}]
    assert await balances(before) == []
    assert await balances(yen) == yen_only
    assert await balances(coin) == both
    assert await balances(back - 1) == both
    assert await balances(back) == await balances(None) == [{"asset": "NAC", "balance": 1250, "decimals": 2}]
    assert await balances(0) == []
    bank_then = await node.checked("account_getBalances", [node.address(node.bank), yen])
    assert bank_then["balances"] == [{"asset": "JPYT", "balance": DEFAULT_BANK_AMOUNT - 7000, "decimals": 0}]


async def test_balances_page_by_asset_id(node: TestNode) -> None:
    for asset in ("BOND-A", "BOND-B"):
        await node.finalize(node.sign(issue(asset, supply=10)))
    treasury = node.address(node.treasury)
    first = await node.checked("account_getBalances", {"address": treasury, "limit": 2})
    assert ([item["asset"] for item in first["balances"]], first["next_cursor"]) == (["BOND-A", "BOND-B"], "BOND-B")
    second = await node.checked("account_getBalances", {"address": treasury, "cursor": "BOND-B", "limit": 2})
    assert ([item["asset"] for item in second["balances"]], second["next_cursor"]) == (["NAC"], None)


async def test_a_balances_page_looks_at_twice_its_limit_of_held_assets(node: TestNode) -> None:
    """Anyone may send an account dust of many assets: a page looks at no more than twice
    its limit of the assets the account ever held, so a page of emptied holdings may come
    back with nothing but the cursor to go on from."""
    for asset in ("A1", "A2"):
        await node.finalize(node.sign(issue(asset, supply=10)))
        await node.finalize(node.sign(Transfer(asset, ALICE.public_key, 10)))
        await node.finalize(node.sign(Transfer(asset, node.treasury.public_key, 10), key=ALICE))
    await node.finalize(node.sign(Transfer("NAC", ALICE.public_key, 5)))
    alice = node.address(ALICE)
    first = await node.checked("account_getBalances", {"address": alice, "limit": 1})
    assert (first["balances"], first["next_cursor"]) == ([], "A2")
    second = await node.checked("account_getBalances", {"address": alice, "limit": 1, "cursor": "A2"})
    assert (second["balances"], second["next_cursor"]) == ([{"asset": "NAC", "balance": 5, "decimals": 2}], None)


async def test_balances_above_the_head_and_bad_params(paused: TestNode) -> None:
    treasury = paused.address(paused.treasury)
    assert await paused.rpc.error("account_getBalances", [treasury, 5]) == {
        "code": -32020, "message": "Block not found", "data": {"height": 5, "head": 0},
    }
    negative = await paused.rpc.error("account_getBalances", [treasury, -1])
    assert negative["data"] == {"param": "height", "reason": "must be at least 0, got -1"}
    cursor = await paused.rpc.error("account_getBalances", {"address": treasury, "cursor": "a-b"})
    assert (cursor["data"]["param"], cursor["data"]["reason"][:33]) == ("cursor", "not a cursor this node returned: ")
    limit = await paused.rpc.error("account_getBalances", {"address": treasury, "limit": 1001})
    assert limit["data"] == {"param": "limit", "reason": "must be at most 1000, got 1001"}


# --- account_getTransactions -------------------------------------------------------------------------


async def test_transactions_newest_first_page_after_page(node: TestNode) -> None:
    alice = node.address(ALICE)
    sent = [await node.finalize(node.sign(Transfer("NAC", ALICE.public_key, amount, f"payment {amount}")))
            for amount in range(1, 6)]
    sent.append(await node.finalize(node.sign(Transfer("JPYT", ALICE.public_key, 9), key=node.bank)))
    sent.append(await node.finalize(node.sign(Transfer("NAC", node.treasury.public_key, 2), key=ALICE)))

    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        page = await node.checked("account_getTransactions", {"address": alice, "cursor": cursor, "limit": 3})
        assert page["address"] == alice
        pages.append(page["transactions"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        last = page["transactions"][-1]
        assert cursor == f"{last['block_height']}:{last['index']}"
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [transaction for page in pages for transaction in page] == sent[::-1]
    assert pages[-1][0]["body"]["memo"] == "payment 1"
    only_newest = await node.checked("account_getTransactions", [alice, None, 1])
    assert only_newest["transactions"] == [sent[-1]] and only_newest["next_cursor"] is not None
    everything = await node.checked("account_getTransactions", [alice])
    assert everything == {"address": alice, "transactions": sent[::-1], "next_cursor": None}


async def test_transactions_name_the_account_a_registrar_acted_on(node: TestNode) -> None:
    await node.finalize(node.sign(issue("LAND", supply=5)))
    frozen = await node.finalize(node.sign(Freeze("LAND", ALICE.public_key)))
    history = await node.checked("account_getTransactions", [node.address(ALICE)])
    assert history["transactions"] == [frozen]
    nobody = await node.checked("account_getTransactions", [node.address(NOBODY)])
    assert nobody == {"address": node.address(NOBODY), "transactions": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "param", "reason"),
    [
        ({"cursor": "12"}, "cursor", "not a cursor this node returned: expected HEIGHT:INDEX, got '12'"),
        ({"cursor": "a:b"}, "cursor", "not a cursor this node returned: expected HEIGHT:INDEX, got 'a:b'"),
        ({"cursor": "-1:0"}, "cursor", "not a cursor this node returned: expected HEIGHT:INDEX, got '-1:0'"),
        ({"cursor": "9999999999999999999:0"}, "cursor", "not a cursor this node returned: height or index out of "
         "range"),
        ({"cursor": 12}, "cursor", "expected a string, got integer"),
        ({"limit": 101}, "limit", "must be at most 100, got 101"),
        ({"limit": 0}, "limit", "must be at least 1, got 0"),
    ],
    ids=["no-index", "not-numbers", "negative", "height-out-of-range", "not-text", "limit-over-100", "limit-zero"],
)
async def test_transactions_invalid_params(paused: TestNode, params: dict[str, Any], param: str, reason: str) -> None:
    error = await paused.rpc.error("account_getTransactions", {"address": paused.address(ALICE), **params})
    assert error == {"code": -32602, "message": "Invalid params", "data": {"param": param, "reason": reason}}
