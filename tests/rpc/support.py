"""What the RPC tests share besides fixtures: the HTTP endpoint helper, and a real
node (``mura.node.Node``) running in the test's event loop.

``TestNode`` is a single-validator network: a real store in a temporary
directory, the real mempool, replica, peer server and RPC server on free
ports. Its one validator is the primary of every view and a quorum alone, so
blocks become final within a few tens of milliseconds. ``PAUSED`` settings
make a node whose primary never proposes, for tests that need transactions to
stay pending.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from mura.chain.address import encode_address
from mura.chain.keys import SigningKey, load_key
from mura.chain.transaction import Body, IssueAsset, Transaction, sign_transaction
from mura.config import load_config
from mura.genesis.testnet import TestnetLayout, node_config_path
from mura.node import Node
from mura.rpc.server import RpcServer

#: Settings every test node runs with: free ports, blocks every 20 ms.
FAST: dict[str, Any] = {
    "rpc.listen": "127.0.0.1:0",
    "p2p.listen": "127.0.0.1:0",
    "consensus.block_interval_ms": 20,
    "consensus.empty_block_interval_ms": 20,
}
#: A node whose primary never proposes within a test: transactions stay pending.
PAUSED: dict[str, Any] = {
    "consensus.block_interval_ms": 3_600_000,
    "consensus.empty_block_interval_ms": 3_599_999,
    "consensus.base_timeout_ms": 3_600_000,
    "consensus.max_timeout_ms": 3_600_000,
}
DEADLINE = 10.0


@dataclass
class Endpoint:
    """A started ``RpcServer`` and a client session that talks to it over HTTP."""

    server: RpcServer
    session: aiohttp.ClientSession

    async def post(self, payload: Any = None, *, raw: bytes | None = None, **options: Any) -> tuple[int, Any]:
        """POST a JSON payload (or raw bytes); the HTTP status and the decoded body (None if empty)."""
        body = raw if raw is not None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        async with self.session.post(self.server.url, data=body, headers=headers, **options) as response:
            text = await response.text()
            if text:
                assert response.content_type == "application/json"
            return response.status, json.loads(text) if text else None

    async def call(self, method: str, params: Any = None, *, request_id: Any = 1) -> dict[str, Any]:
        """One request; the whole Response object, after checking its envelope."""
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if params is not None:
            request["params"] = params
        status, response = await self.post(request)
        assert status == 200
        assert response["jsonrpc"] == "2.0" and response["id"] == request_id
        assert ("result" in response) != ("error" in response)
        return response  # type: ignore[no-any-return]

    async def result(self, method: str, params: Any = None) -> Any:
        """The result of a call that must succeed."""
        response = await self.call(method, params)
        assert "error" not in response, response
        return response["result"]

    async def error(self, method: str, params: Any = None) -> dict[str, Any]:
        """The error object of a call that must fail."""
        response = await self.call(method, params)
        assert "result" not in response, response
        return response["error"]  # type: ignore[no-any-return]


#: ``await serve(methods, limits=..., health=...)``: a started server (see conftest).
Serve = Callable[..., Awaitable[Endpoint]]


_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "string": lambda value: isinstance(value, str),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "number": lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
    "boolean": lambda value: isinstance(value, bool),
    "null": lambda value: value is None,
}


def schema_problems(value: Any, schema: Mapping[str, Any], path: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema``: the part of JSON Schema the OpenRPC document uses
    (type, required, properties, items, enum, anyOf, oneOf, minimum, maximum, pattern)."""
    if "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf") or schema["oneOf"]
        if all(schema_problems(value, option, path) for option in options):
            return [f"{path}: matches none of its schemas"]
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_JSON_TYPES[kind](value) for kind in kinds):
            return [f"{path}: {value!r} is not {' or '.join(kinds)}"]
    problems: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: {value} is below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: {value} is above {schema['maximum']}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        problems += [f"{path}: lacks {name}" for name in schema.get("required", ()) if name not in value]
        for name, item in value.items():
            if name in schema.get("properties", {}):
                problems += schema_problems(item, schema["properties"][name], f"{path}.{name}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problems += schema_problems(item, schema["items"], f"{path}[{index}]")
    return problems


async def wait_until(condition: Callable[[], Any], what: str, *, timeout: float = DEADLINE) -> Any:
    """Await until ``condition()`` is truthy and return it; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.005)
    return result


def issue(
    asset: str,
    *,
    name: str = "Nishiawakura bond",
    decimals: int = 0,
    supply: int = 0,
    reissuable: bool = True,
    cap: int = 0,
    registrar: bytes = b"",
    policy: str = "open",
    expiry_ms: int = 0,
) -> IssueAsset:
    """The body issuing ``asset``: open, reissuable, no supply yet, unless told otherwise."""
    return IssueAsset(asset, name, decimals, supply, reissuable, cap, registrar, policy, expiry_ms)


@dataclass
class TestNode:
    """A started single-validator node, its RPC endpoint, and the testnet's keys: the treasury
    (issuer of NAC), the bank (issuer of JPYT) and the validator."""

    __test__ = False  # not a pytest test class, despite its name

    node: Node
    rpc: Endpoint
    treasury: SigningKey
    validator: SigningKey
    bank: SigningKey

    @property
    def prefix(self) -> str:
        return self.node.address_prefix

    @property
    def chain_id(self) -> str:
        return self.node.rules.chain_id

    def address(self, key: SigningKey | bytes) -> str:
        return encode_address(key if isinstance(key, bytes) else key.public_key, self.prefix)

    def sign(self, body: Body, *, key: SigningKey | None = None, nonce: int | None = None) -> Transaction:
        """``body`` signed by ``key`` (the treasury) with the next nonce this node would accept."""
        key = key or self.treasury
        if nonce is None:
            assert self.node.store is not None
            pending = {transaction.nonce for transaction in self.node.mempool.pending_for(key.public_key)}
            nonce = self.node.store.load_account(key.public_key).nonce
            while nonce in pending:
                nonce += 1
        return sign_transaction(key, chain_id=self.chain_id, nonce=nonce, body=body)

    async def submit(self, transaction: Transaction) -> str:
        return await self.rpc.result("tx_submit", ["0x" + transaction.encoded.hex()])  # type: ignore[no-any-return]

    async def checked(self, method: str, params: Any = None) -> Any:
        """The result of a call that must succeed, checked against the method's declared result schema."""
        result = await self.rpc.result(method, params)
        problems = schema_problems(result, self.rpc.server.engine.methods[method].result.schema)
        assert problems == [], problems
        return result

    async def finalize(self, transaction: Transaction) -> dict[str, Any]:
        """Submit and wait until final; the final transaction as tx_wait returns it."""
        return await self.rpc.result("tx_wait", [await self.submit(transaction), DEADLINE])  # type: ignore[no-any-return]

    @property
    def height(self) -> int:
        assert self.node.store is not None
        return self.node.store.height


async def start_test_node(
    layout: TestnetLayout, data_dir: Path, session: aiohttp.ClientSession, settings: dict[str, Any]
) -> TestNode:
    """Start validator 0 of ``layout`` with its data in ``data_dir``; the caller stops ``node``."""
    validator = layout.genesis.validators[0]
    # Each test node is its own validator as far as signing goes: a vote record beside its data.
    own = {"data_dir": str(data_dir), "vote_record": str(data_dir.with_name(data_dir.name + ".votes"))}
    config = load_config(node_config_path(layout.directory, validator.name), {**FAST, **own, **settings})
    node = Node(config)
    try:
        await node.start()
    except BaseException:
        await node.stop()
        raise
    assert node.rpc is not None
    keys = layout.directory / "keys"
    return TestNode(
        node,
        Endpoint(node.rpc, session),
        load_key(keys / "treasury.key"),
        load_key(keys / f"{validator.name}.key"),
        load_key(keys / "bank.key"),
    )
