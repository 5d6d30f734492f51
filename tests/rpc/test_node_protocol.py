"""JSON-RPC 2.0 as a real node speaks it: every standard error code, batches mixing good,
bad and notification requests, the body and batch limits, and the OpenRPC document."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from mura.chain.keys import SigningKey
from mura.chain.transaction import Transfer

from .conftest import StartNode
from .support import TestNode, schema_problems

ALICE = SigningKey.from_private_bytes(bytes(range(32)))

SERVED = {
    "chain_status", "chain_getBlock", "chain_getTransaction", "chain_getCertificate", "chain_validators",
    "account_getBalance", "account_get", "account_getBalances", "account_getTransactions",
    "asset_list", "asset_get", "asset_getHolders",
    "bond_list", "bond_get", "bond_getPayments", "offering_get", "bond_getUseOfProceeds",
    "governance_getProposals",
    "tx_submit", "tx_wait", "mempool_status", "chain_subscribe", "chain_unsubscribe", "rpc.discover",
}


def request(method: str, params: Any = None, request_id: Any = None, *, notification: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    if not notification:
        message["id"] = request_id
    return message


# --- the five standard errors --------------------------------------------------------------------


async def test_parse_error(paused: TestNode) -> None:
    status, response = await paused.rpc.post(raw=b'{"jsonrpc": "2.0", "method": "chain_status", "id": 1')
    assert status == 200 and response["id"] is None
    assert (response["error"]["code"], response["error"]["message"]) == (-32700, "Parse error")
    assert response["error"]["data"]["reason"]


@pytest.mark.parametrize(
    ("message", "echoed_id"),
    [
        ({"method": "chain_status", "id": 3}, 3),
        ({"jsonrpc": "2.0", "method": 7, "id": "x"}, "x"),
        ({"jsonrpc": "2.0", "method": "chain_status", "params": "height", "id": 4}, 4),
        ([], None),
    ],
    ids=["no-version", "method-not-a-string", "params-not-structured", "empty-batch"],
)
async def test_invalid_request(paused: TestNode, message: Any, echoed_id: Any) -> None:
    status, response = await paused.rpc.post(message)
    assert status == 200 and response["id"] == echoed_id
    assert (response["error"]["code"], response["error"]["message"]) == (-32600, "Invalid Request")
    assert response["error"]["data"]["reason"]


async def test_method_not_found(paused: TestNode) -> None:
    error = await paused.rpc.error("chain_getEverything", [])
    assert error == {"code": -32601, "message": "Method not found", "data": {"method": "chain_getEverything"}}


async def test_invalid_params(paused: TestNode) -> None:
    error = await paused.rpc.error("chain_status", [1])
    assert error == {
        "code": -32602,
        "message": "Invalid params",
        "data": {"position": 0, "reason": "chain_status takes at most 0 params, got 1"},
    }
    error = await paused.rpc.error("chain_getBlock", {"height": 1})
    assert error["data"] == {
        "param": "height", "reason": "unexpected param 'height'; chain_getBlock takes: block, full_transactions"
    }


async def test_internal_error_hides_the_detail_and_the_node_keeps_serving(
    paused: TestNode, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(paused.node.mempool, "status", broken)
    error = await paused.rpc.error("mempool_status")
    assert error == {"code": -32603, "message": "Internal error", "data": {"method": "mempool_status"}}
    assert "secret internal detail" in caplog.text
    assert (await paused.rpc.result("chain_status"))["height"] == 0


# --- batches and notifications --------------------------------------------------------------------


async def test_batch_mixing_good_bad_and_notification_requests(paused: TestNode) -> None:
    notified = paused.sign(Transfer("NAC", ALICE.public_key, 3))
    batch = [
        request("chain_status", request_id=1),
        request("tx_submit", ["0x" + notified.encoded.hex()], notification=True),
        request("chain_nothing", request_id=2),
        42,
        request("account_getBalance", ["tnac1typo"], request_id=3),
        request("chain_getBlock", [0], request_id="genesis"),
        request("chain_nothing", notification=True),
    ]
    status, responses = await paused.rpc.post(batch)
    assert status == 200 and len(responses) == 5
    by_id = {response["id"]: response for response in responses if response["id"] is not None}
    assert by_id[1]["result"]["height"] == 0
    assert by_id[2]["error"]["code"] == -32601
    assert by_id[3]["error"]["code"] == -32602 and by_id[3]["error"]["data"]["param"] == "address"
    assert by_id["genesis"]["result"]["height"] == 0
    [invalid] = [response for response in responses if response["id"] is None]
    assert invalid["error"]["code"] == -32600
    assert notified.hash in paused.node.mempool, "a notification runs though nothing answers it"


async def test_batch_of_notifications_only_has_no_body(paused: TestNode) -> None:
    transaction = paused.sign(Transfer("NAC", ALICE.public_key, 1))
    batch = [
        request("tx_submit", ["0x" + transaction.encoded.hex()], notification=True),
        request("x", notification=True),
    ]
    assert await paused.rpc.post(batch) == (204, None)
    assert transaction.hash in paused.node.mempool


# --- limits -----------------------------------------------------------------------------------------


async def test_oversized_body_and_batch_are_refused_naming_the_limit(start_node: StartNode) -> None:
    node = await start_node({"rpc.max_body_bytes": 2048, "rpc.max_batch": 3})
    status, response = await node.rpc.post(request("chain_status", {"padding": "x" * 3000}, 1))
    assert status == 413 and response["error"]["code"] == -32600
    assert (response["error"]["data"]["limit"], response["error"]["data"]["max_body_bytes"]) == ("max_body_bytes", 2048)

    status, response = await node.rpc.post([request("chain_status", request_id=n) for n in range(4)])
    assert status == 200 and response["error"]["code"] == -32600
    data = response["error"]["data"]
    assert (data["limit"], data["max_batch_length"], data["got"]) == ("max_batch_length", 3, 4)

    status, responses = await node.rpc.post([request("chain_status", request_id=n) for n in range(3)])
    assert status == 200 and sorted(response["id"] for response in responses) == [0, 1, 2]


# --- rpc.discover ------------------------------------------------------------------------------------


async def test_discover_lists_exactly_the_methods_served(paused: TestNode) -> None:
    document = await paused.rpc.result("rpc.discover")
    names = [method["name"] for method in document["methods"]]
    assert len(names) == len(set(names))
    assert set(names) == SERVED == set(paused.rpc.server.engine.methods)
    assert document["openrpc"] == "1.2.6" and document["info"]["title"] and document["info"]["version"]
    assert all(str(code) in document["info"]["description"] for code in (-32700, -32600, -32601, -32602, -32603))
    for method in document["methods"]:
        assert method["summary"] and method["result"]["schema"] and method["paramStructure"] == "either"
        for error in method.get("errors", []):
            assert -32099 <= error["code"] <= -32000 and error["message"] and "data" in error["data"]


def readme_methods() -> list[str]:
    """The methods the README's *JSON-RPC API* table lists, in its order."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## JSON-RPC API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([A-Za-z_.]+)` \|", section, flags=re.MULTILINE)


def test_the_readme_lists_every_method_served_once() -> None:
    listed = readme_methods()
    assert len(listed) == len(set(listed)) and set(listed) == SERVED, set(listed) ^ SERVED


async def test_discover_documents_params_results_and_errors(paused: TestNode) -> None:
    methods = {method["name"]: method for method in (await paused.rpc.result("rpc.discover"))["methods"]}
    codes = {name: [error["code"] for error in method.get("errors", [])] for name, method in methods.items()}
    assert codes == {
        "chain_status": [], "chain_getBlock": [-32020, -32040], "chain_getTransaction": [-32021, -32023],
        "chain_getCertificate": [-32020, -32040, -32022], "chain_validators": [-32027],
        "account_getBalance": [-32024], "account_get": [], "account_getBalances": [-32020, -32040],
        "account_getTransactions": [], "asset_list": [], "asset_get": [-32024],
        "asset_getHolders": [-32024, -32020, -32040],
        "bond_list": [], "bond_get": [-32024, -32025], "bond_getPayments": [-32024, -32025],
        "offering_get": [-32024, -32025, -32026], "bond_getUseOfProceeds": [-32024, -32025],
        "tx_submit": [-32010, -32011], "tx_wait": [-32030, -32023, -32000, -32001],
        "mempool_status": [], "rpc.discover": [], "governance_getProposals": [],
        "chain_subscribe": [-32050, -32000], "chain_unsubscribe": [-32050],
    }
    wait_params = methods["tx_wait"]["params"]
    assert [(param["name"], param["required"]) for param in wait_params] == [
        ("transaction_hash", True), ("timeout_seconds", False),
    ]
    assert (wait_params[1]["schema"]["maximum"], wait_params[1]["schema"]["default"]) == (60, 10)
    transaction = paused.sign(Transfer("NAC", ALICE.public_key, 1))
    submit = methods["tx_submit"]
    assert re.fullmatch(submit["params"][0]["schema"]["pattern"], "0x" + transaction.encoded.hex())
    assert re.fullmatch(submit["result"]["schema"]["pattern"], await paused.submit(transaction))
    assert re.fullmatch(methods["account_get"]["params"][0]["schema"]["pattern"], paused.address(ALICE))
    treasury = paused.address(paused.treasury)
    calls: dict[str, list[Any]] = {
        "chain_status": [], "mempool_status": [], "chain_validators": [], "chain_getBlock": [0, True],
        "account_get": [treasury], "account_getBalance": [treasury], "account_getBalances": [treasury],
        "account_getTransactions": [treasury], "asset_list": [], "asset_get": ["NAC"], "asset_getHolders": ["NAC"],
        "bond_list": [], "governance_getProposals": [],
    }
    for name, params in calls.items():
        result = await paused.rpc.result(name, params)
        assert schema_problems(result, methods[name]["result"]["schema"]) == [], name
    for name in ("asset_getHolders", "account_getBalances", "account_getTransactions", "asset_list", "bond_list",
                 "bond_getPayments", "offering_get", "bond_getUseOfProceeds", "governance_getProposals"):
        limit = next(param for param in methods[name]["params"] if param["name"] == "limit")
        assert not limit["required"] and limit["schema"]["minimum"] == 1 and limit["schema"]["maximum"] <= 1000
