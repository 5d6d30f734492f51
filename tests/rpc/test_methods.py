"""``tx_submit``, ``tx_wait`` and ``mempool_status`` against a real node: real store, mempool,
replica and HTTP server; and every numeric param of every method out of its range."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any, cast

import pytest

from mura.chain import codec
from mura.chain.address import encode_address
from mura.chain.keys import SigningKey
from mura.chain.transaction import Mint, Transaction, Transfer, sign_transaction
from mura.genesis.testnet import DEFAULT_TREASURY_AMOUNT
from mura.rpc.declarations import Method
from mura.rpc.jsonrpc import JsonRpcEngine
from mura.rpc.methods import node_methods
from mura.rpc.node_view import NodeView
from mura.rpc.server import RpcLimits

from .conftest import StartNode
from .support import DEADLINE, PAUSED, Serve, TestNode, issue, wait_until

ALICE = SigningKey.from_private_bytes(bytes(range(32)))
NOBODY = SigningKey.from_private_bytes(bytes(range(1, 33)))


def as_hex(transaction: Transaction) -> str:
    return "0x" + transaction.encoded.hex()


def hash_hex(transaction: Transaction) -> str:
    return "0x" + transaction.hash.hex()


def mistype(address: str) -> str:
    """``address`` with one character changed, which its checksum catches."""
    position = len(address) - 10
    return address[:position] + ("q" if address[position] != "q" else "p") + address[position + 1 :]


# --- tx_submit ---------------------------------------------------------------------------------


@pytest.mark.parametrize("by_name", [False, True], ids=["by-position", "by-name"])
async def test_tx_submit_admits_and_the_transfer_becomes_final(node: TestNode, by_name: bool) -> None:
    transaction = node.sign(Transfer("NAC", ALICE.public_key, 250))
    params: Any = {"raw_transaction_hex": as_hex(transaction)} if by_name else [as_hex(transaction)]
    transaction_hash = await node.rpc.result("tx_submit", params)
    assert transaction_hash == "0x" + transaction.hash.hex()

    final = await node.rpc.result("tx_wait", [transaction_hash])
    assert final["hash"] == transaction_hash and final["block_height"] >= 1
    assert await node.rpc.result("account_getBalance", [node.address(ALICE), "NAC"]) == 250
    assert await node.rpc.result("account_getBalance", {"address": node.address(node.treasury)}) == (
        DEFAULT_TREASURY_AMOUNT - 250
    )


async def test_tx_submit_accepts_hex_without_prefix(paused: TestNode) -> None:
    transaction = paused.sign(Transfer("NAC", ALICE.public_key, 1))
    assert await paused.rpc.result("tx_submit", [transaction.encoded.hex()]) == "0x" + transaction.hash.hex()
    assert transaction.hash in paused.node.mempool


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("zz", "transaction is not hex text"),
        ("0x00", None),
        ("0x" + codec.encode(["x", bytes(32), 0, "steal", [], bytes(64)]).hex(),
         "transaction.kind: unknown transaction kind 'steal'"),
        ("0x" + "00" * 3000, None),
    ],
    ids=["not-hex", "not-a-transaction", "unknown-kind", "too-large"],
)
async def test_tx_submit_malformed_is_invalid_params(paused: TestNode, raw: str, reason: str | None) -> None:
    error = await paused.rpc.error("tx_submit", [raw])
    assert error["code"] == -32602 and error["data"]["param"] == "raw_transaction_hex"
    assert error["data"]["rule"] in ("malformed", "unknown_kind")
    assert error["data"]["reason"] == reason if reason else error["data"]["reason"]
    assert len(paused.node.mempool) == 0


async def test_tx_submit_truncated_and_non_string(paused: TestNode) -> None:
    truncated = as_hex(paused.sign(Transfer("NAC", ALICE.public_key, 1)))[:-2]
    assert (await paused.rpc.error("tx_submit", [truncated]))["data"]["rule"] == "malformed"
    error = await paused.rpc.error("tx_submit", [5])
    assert error["data"] == {"param": "raw_transaction_hex", "reason": "expected a string, got integer"}


@pytest.mark.parametrize(
    ("build", "rule", "facts"),
    [
        (lambda node: Transaction(node.chain_id, node.treasury.public_key, 0, Transfer("NAC", ALICE.public_key, 5),
                                  bytes(64)),
         "bad_signature", {}),
        (lambda node: sign_transaction(node.treasury, chain_id="another-net", nonce=0,
                                       body=Transfer("NAC", ALICE.public_key, 5)),
         "wrong_chain_id", {"got": "another-net"}),
        (lambda node: node.sign(Transfer("NAC", ALICE.public_key, 5), nonce=65), "nonce_too_high",
         {"expected": 0, "got": 65, "max_gap": 64}),
        (lambda node: node.sign(Transfer("NAC", ALICE.public_key, 0)), "non_positive_amount", {"amount": 0}),
        (lambda node: node.sign(Mint("NAC", ALICE.public_key, 5), key=node.validator), "not_asset_issuer",
         {"asset": "NAC"}),
        (lambda node: node.sign(issue("BOND"), key=node.validator), "not_an_issuer", {}),
        (lambda node: node.sign(Transfer("XYZ", ALICE.public_key, 5)), "unknown_asset", {"asset": "XYZ"}),
        (lambda node: node.sign(Transfer("NAC", ALICE.public_key, 5, "x" * 257)), "memo_too_long",
         {"bytes": 257, "limit": 256}),
        (lambda node: node.sign(issue("JPYT")), "asset_exists", {"asset": "JPYT"}),
        (lambda node: node.sign(issue("bond")), "invalid_asset_id", {"asset": "bond"}),
        (lambda node: node.sign(issue("BOND", decimals=19)), "invalid_asset_terms", {"field": "decimals"}),
    ],
    ids=["bad-signature", "wrong-chain", "nonce-too-high", "zero-amount", "not-the-asset-issuer", "not-an-issuer",
         "unknown-asset", "memo-too-long", "asset-exists", "invalid-asset-id", "invalid-terms"],
)
async def test_tx_submit_refused_by_a_rule(
    paused: TestNode, build: Callable[[TestNode], Transaction], rule: str, facts: dict[str, Any]
) -> None:
    error = await paused.rpc.error("tx_submit", [as_hex(build(paused))])
    assert (error["code"], error["message"], error["data"]["rule"]) == (-32010, "Transaction refused", rule)
    assert error["data"]["message"]
    assert {name: error["data"][name] for name in facts} == facts
    assert len(paused.node.mempool) == 0


async def test_tx_submit_nonce_too_low_says_the_expected_nonce(node: TestNode) -> None:
    for _ in range(7):
        await node.finalize(node.sign(Transfer("NAC", ALICE.public_key, 1)))
    error = await node.rpc.error("tx_submit", [as_hex(node.sign(Transfer("NAC", ALICE.public_key, 99), nonce=5))])
    assert error == {
        "code": -32010,
        "message": "Transaction refused",
        "data": {
            "rule": "nonce_too_low", "expected": 7, "got": 5, "message": "nonce 5 was already used; the next is 7"
        },
    }


@pytest.mark.parametrize(
    ("second", "rule"),
    [
        (lambda node, first: first, "duplicate_transaction"),
        (lambda node, first: node.sign(Transfer("NAC", ALICE.public_key, DEFAULT_TREASURY_AMOUNT)),
         "pending_spend_exceeds_balance"),
    ],
    ids=["duplicate", "pending-spend"],
)
async def test_tx_submit_refused_by_the_mempool(
    paused: TestNode, second: Callable[[TestNode, Transaction], Transaction], rule: str
) -> None:
    first = paused.sign(Transfer("NAC", ALICE.public_key, 1))
    await paused.submit(first)
    error = await paused.rpc.error("tx_submit", [as_hex(second(paused, first))])
    assert (error["code"], error["message"], error["data"]["rule"]) == (-32011, "Mempool refused", rule)


async def test_tx_submit_mempool_full(start_node: StartNode) -> None:
    node = await start_node({**PAUSED, "mempool.max_transactions": 1})
    await node.submit(node.sign(Transfer("NAC", ALICE.public_key, 1)))
    error = await node.rpc.error("tx_submit", [as_hex(node.sign(Transfer("NAC", ALICE.public_key, 1)))])
    assert error["code"] == -32011
    assert (error["data"]["rule"], error["data"]["transactions"]) == ("mempool_full", 1)


async def test_tx_submit_mint_past_the_largest_supply_is_refused_and_the_sender_goes_on(node: TestNode) -> None:
    """The treasury minting 2^64 - 1 over a supply that is not zero: refused at once, not
    admitted to block every later transaction of the treasury."""
    error = await node.rpc.error("tx_submit", [as_hex(node.sign(Mint("NAC", ALICE.public_key, 2**64 - 1)))])
    assert (error["code"], error["data"]["rule"]) == (-32010, "supply_overflow")
    facts = {name: error["data"][name] for name in ("asset", "amount", "supply")}
    assert facts == {"asset": "NAC", "amount": 2**64 - 1, "supply": DEFAULT_TREASURY_AMOUNT}
    assert len(node.node.mempool) == 0
    final = await node.finalize(node.sign(Transfer("NAC", ALICE.public_key, 1)))
    assert final["nonce"] == 0


async def test_an_idle_primary_waits_out_a_parked_transaction_and_wakes_for_a_ready_one(start_node: StartNode) -> None:
    """Idle for a minute: a transaction parked behind a missing nonce is no reason to
    propose, and the missing one, once it arrives, is final at once, not after the minute."""
    node = await start_node({"consensus.empty_block_interval_ms": 60_000})
    next_nonce = node.sign(Transfer("NAC", ALICE.public_key, 1)).nonce
    parked = node.sign(Transfer("NAC", ALICE.public_key, 2), nonce=next_nonce + 1)
    await node.submit(parked)
    assert node.node.replica is not None and not node.node.replica.application.has_pending_transactions()
    assert node.node.admission._woken_at_height == -1, "the parked transaction woke the primary"
    missing = node.sign(Transfer("NAC", ALICE.public_key, 1))
    assert missing.nonce + 1 == parked.nonce
    await node.submit(missing)
    final = await node.rpc.result("tx_wait", ["0x" + parked.hash.hex(), 10])
    assert final["nonce"] == parked.nonce


async def test_versions_of_one_nonce_in_one_batch_cost_one_signature_check(
    paused: TestNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty replacements of one pending transaction sent together: one is verified and
    admitted; the others are refused before their signatures are checked."""
    await paused.submit(paused.sign(Transfer("NAC", ALICE.public_key, 1)))
    verifier = paused.node.verifier
    assert verifier is not None
    verified: list[int] = []
    real = verifier.verify_async

    async def counting(transactions: Any) -> set[bytes]:
        verified.append(len(transactions))
        return await real(transactions)

    monkeypatch.setattr(verifier, "verify_async", counting)
    versions = [paused.sign(Transfer("NAC", ALICE.public_key, 2 + index), nonce=0) for index in range(20)]
    batch = [
        {"jsonrpc": "2.0", "id": index, "method": "tx_submit", "params": [as_hex(version)]}
        for index, version in enumerate(versions)
    ]
    status, answers = await paused.rpc.post(batch)
    assert status == 200
    admitted = [answer for answer in answers if "result" in answer]
    refused = [answer["error"]["data"]["rule"] for answer in answers if "error" in answer]
    assert len(admitted) == 1 and refused == ["replacement_too_soon"] * 19
    assert sum(verified) == 1
    assert [tx.hash for tx in paused.node.mempool.pending_for(paused.treasury.public_key)] == [
        versions[admitted[0]["id"]].hash
    ]


async def test_tx_submit_replaces_a_pending_transaction_and_the_replaced_one_reads_as_dropped(paused: TestNode) -> None:
    first = paused.sign(Transfer("NAC", ALICE.public_key, 1))
    await paused.submit(first)
    waiting = asyncio.create_task(paused.rpc.error("tx_wait", [hash_hex(first), 30]))
    await wait_until(lambda: paused.node.finality.waiting == 1, "tx_wait to register")
    second = paused.sign(Transfer("NAC", ALICE.public_key, 2), nonce=0)
    assert await paused.submit(second) == hash_hex(second)
    dropped = {
        "code": -32023,
        "message": "Transaction dropped",
        "data": {
            "transaction_hash": hash_hex(first),
            "rule": "replaced",
            "message": f"replaced by transaction {second.hash.hex()} with the same sender and nonce",
            "replaced_by": hash_hex(second),
        },
    }
    # The waiting call wakes at once with the reason; later calls answer it at once.
    assert await asyncio.wait_for(waiting, DEADLINE) == dropped
    assert await paused.rpc.error("tx_wait", [hash_hex(first), 30]) == dropped
    assert await paused.rpc.error("chain_getTransaction", [hash_hex(first)]) == dropped
    # The replaced one stays out while its replacement is pending; a third version must wait its turn.
    again = await paused.rpc.error("tx_submit", [as_hex(first)])
    assert (again["code"], again["data"]["rule"], again["data"]["replaced_by"]) == (
        -32011, "replaced", hash_hex(second),
    )
    third = await paused.rpc.error("tx_submit", [as_hex(paused.sign(Transfer("NAC", ALICE.public_key, 3), nonce=0))])
    assert (third["code"], third["data"]["rule"]) == (-32011, "replacement_too_soon")
    assert 0 < third["data"]["retry_after_seconds"] <= 1
    assert [transaction.hash for transaction in paused.node.mempool.pending_for(paused.treasury.public_key)] == [
        second.hash
    ]


async def test_an_expired_transaction_reads_as_dropped_until_it_is_submitted_again(start_node: StartNode) -> None:
    node = await start_node({**PAUSED, "mempool.expire_after_seconds": 1, "mempool.rebroadcast_after_ms": 150})
    transaction = node.sign(Transfer("NAC", ALICE.public_key, 1))
    await node.submit(transaction)
    # Woken by the drop, well before its own timeout.
    error = await asyncio.wait_for(node.rpc.error("tx_wait", [hash_hex(transaction), 30]), DEADLINE)
    assert (error["code"], error["data"]["rule"]) == (-32023, "expired")
    assert error["data"]["message"].startswith("pending for 1 s without being included")
    assert (await node.rpc.error("chain_getTransaction", [hash_hex(transaction)]))["code"] == -32023
    await node.submit(transaction)
    pending = await node.rpc.error("chain_getTransaction", [hash_hex(transaction)])
    assert (pending["code"], pending["data"]["pending"]) == (-32021, True)


# --- tx_wait ------------------------------------------------------------------------------------


async def test_tx_wait_wakes_when_the_block_is_committed(node: TestNode) -> None:
    transaction = node.sign(Transfer("NAC", ALICE.public_key, 7))
    transaction_hash = "0x" + transaction.hash.hex()
    waiting = asyncio.create_task(node.rpc.result("tx_wait", [transaction_hash, 30]))
    await wait_until(lambda: node.node.finality.waiting == 1, "tx_wait to register")
    await node.submit(transaction)
    final = await asyncio.wait_for(waiting, DEADLINE)
    assert final["hash"] == transaction_hash and final["body"]["amount"] == 7
    assert node.node.finality.waiting == 0


async def test_tx_wait_answers_at_once_for_a_final_transaction(node: TestNode) -> None:
    first = await node.finalize(node.sign(Transfer("NAC", ALICE.public_key, 3)))
    again = await node.rpc.result("tx_wait", {"transaction_hash": first["hash"], "timeout_seconds": 0.001})
    assert again == first


async def test_tx_wait_times_out_saying_whether_it_is_pending(paused: TestNode) -> None:
    transaction = paused.sign(Transfer("NAC", ALICE.public_key, 1))
    await paused.submit(transaction)
    error = await paused.rpc.error("tx_wait", ["0x" + transaction.hash.hex(), 0.05])
    assert (error["code"], error["message"]) == (-32030, "Wait timed out")
    assert error["data"] == {
        "transaction_hash": "0x" + transaction.hash.hex(), "timeout_seconds": 0.05, "pending": True
    }
    unknown = await paused.rpc.error("tx_wait", ["0x" + "ab" * 32, 0.01])
    assert unknown["code"] == -32030 and unknown["data"]["pending"] is False
    assert paused.node.finality.waiting == 0


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (["0x" + "ab" * 32, 61], "must be at most 60, got 61"),
        (["0x" + "ab" * 32, 0], "must be greater than 0, got 0"),
        (["0x" + "ab" * 32, "5"], "expected a number, got string"),
        (["0xab", 1], "expected 0x and 64 hex digits, got 4 characters"),
    ],
    ids=["over-the-ceiling", "zero", "not-a-number", "short-hash"],
)
async def test_tx_wait_invalid_params(paused: TestNode, params: list[Any], reason: str) -> None:
    error = await paused.rpc.error("tx_wait", params)
    assert error["code"] == -32602 and error["data"]["reason"] == reason


async def test_tx_wait_ceiling_is_configurable(start_node: StartNode) -> None:
    node = await start_node({**PAUSED, "rpc.max_wait_seconds": 2})
    error = await node.rpc.error("tx_wait", ["0x" + "ab" * 32, 3])
    assert error["data"] == {"param": "timeout_seconds", "reason": "must be at most 2, got 3", "maximum": 2.0}


async def test_tx_wait_holds_no_request_slot_and_over_the_waiting_limit_is_server_busy(
    paused: TestNode, serve: Serve
) -> None:
    rpc = await serve(node_methods(paused.node), limits=RpcLimits(max_concurrent_requests=1, max_waiting=1))
    held = asyncio.create_task(rpc.call("tx_wait", ["0x" + "ab" * 32, 30]))
    await wait_until(lambda: paused.node.finality.waiting == 1, "the first tx_wait to register")
    assert (rpc.server.waiting, rpc.server.in_flight) == (1, 0)
    status = await rpc.result("chain_status")
    assert status["height"] == paused.height, "the one request slot is free while tx_wait waits"
    error = await rpc.error("tx_wait", ["0x" + "cd" * 32, 30])
    assert error == {"code": -32000, "message": "Server busy", "data": {"limit": "max_waiting", "max_waiting": 1}}
    await paused.node.stop()
    stopped = await asyncio.wait_for(held, DEADLINE)
    assert stopped["error"]["code"] == -32001 and stopped["error"]["message"] == "Node stopping"
    assert (rpc.server.waiting, rpc.server.in_flight) == (0, 0)


# --- mempool_status --------------------------------------------------------------------------------


async def test_mempool_status_counts_pending_transactions_and_shows_limits(start_node: StartNode) -> None:
    node = await start_node({**PAUSED, "mempool.max_transactions": 10, "mempool.max_bytes": 100_000})
    assert await node.rpc.result("mempool_status") == {
        "transactions": 0, "bytes": 0, "senders": 0,
        "max_transactions": 10, "max_bytes": 100_000, "max_nonce_gap": 64, "max_per_sender": 1000,
    }
    transactions = [
        node.sign(Transfer("NAC", ALICE.public_key, 1), nonce=0),
        node.sign(Transfer("NAC", NOBODY.public_key, 1), nonce=1),
    ]
    for transaction in transactions:
        await node.submit(transaction)
    status = await node.rpc.result("mempool_status", [])
    assert (status["transactions"], status["senders"]) == (2, 1)
    assert status["bytes"] == sum(len(transaction.encoded) for transaction in transactions)


# --- numbers out of every range -------------------------------------------------------------------


def method_table() -> list[Method]:
    """The node's methods, declared without a node: declaring reads nothing of it but the address prefix."""
    return node_methods(cast(NodeView, SimpleNamespace(address_prefix="tnac")))


def accepts_numbers(schema: Mapping[str, Any]) -> bool:
    kinds = [schema, *schema.get("oneOf", ())]
    return any(kind.get("type") in ("integer", "number") for kind in kinds)


#: ``(method, param)`` for every param of the method table that accepts a JSON number.
NUMERIC_PARAMS = [
    (method.name, param.name)
    for method in method_table()
    for param in method.params
    if accepts_numbers(param.type.schema)
]
#: A valid value for each param a call needs besides the one under test.
VALID_PARAMS: dict[str, Any] = {
    "transaction_hash": "0x" + "ab" * 32,
    "block": 1,
    "address": encode_address(ALICE.public_key, "tnac"),
    "asset": "NAC",
    "bond": "NISHI-2031",
}
#: JSON number literals past the range of any param, and of a float (1e400 reads as infinity).
OUT_OF_RANGE = {"huge": "1" + "0" * 400, "huge-negative": "-1" + "0" * 400, "1e400": "1e400", "-1e400": "-1e400"}


def test_the_numeric_params_are_found() -> None:
    assert {
        ("tx_wait", "timeout_seconds"), ("chain_getBlock", "block"), ("asset_getHolders", "height"),
        ("asset_getHolders", "limit"), ("account_getBalances", "height"), ("account_getTransactions", "limit"),
        ("asset_list", "limit"), ("bond_getPayments", "index"), ("bond_list", "limit"), ("offering_get", "limit"),
    } <= set(NUMERIC_PARAMS)


@pytest.mark.parametrize("literal", list(OUT_OF_RANGE.values()), ids=list(OUT_OF_RANGE))
@pytest.mark.parametrize(("method", "param"), NUMERIC_PARAMS, ids=[".".join(pair) for pair in NUMERIC_PARAMS])
async def test_numbers_out_of_range_are_invalid_params_naming_the_param(
    method: str, param: str, literal: str
) -> None:
    engine = JsonRpcEngine(method_table())
    required = {other.name: VALID_PARAMS[other.name] for other in engine.methods[method].params if other.required}
    request = {"jsonrpc": "2.0", "method": method, "params": {**required, param: "NUMBER"}, "id": 1}
    answer = await engine.handle(json.dumps(request).replace('"NUMBER"', literal))
    assert answer is not None
    error = json.loads(answer)["error"]
    assert (error["code"], error["data"]["param"]) == (-32602, param), error
    assert len(error["data"]["reason"]) < 100, "the reason stays short whatever the number"
