"""Fixtures for the RPC tests: real servers on loopback, a real HTTP client, and real
nodes (``mura.node.Node``) with a LevelDB store in a temporary directory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mura.bench.ports import free_port_range
from mura.genesis.testnet import TestnetLayout, generate_testnet
from mura.rpc.declarations import Method
from mura.rpc.server import HealthReport, RpcLimits, RpcServer, always_healthy

from .support import PAUSED, Endpoint, Serve, TestNode, start_test_node

StartNode = Callable[..., Awaitable[TestNode]]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def serve(http: aiohttp.ClientSession) -> AsyncIterator[Serve]:
    """``await serve(methods, limits=..., health=...)``: a started server on 127.0.0.1, stopped at teardown."""
    servers: list[RpcServer] = []

    async def start(
        methods: Iterable[Method],
        *,
        limits: RpcLimits = RpcLimits(),
        health: Callable[[], HealthReport] = always_healthy,
    ) -> Endpoint:
        server = RpcServer(host="127.0.0.1", port=0, methods=methods, limits=limits, health=health)
        await server.start()
        servers.append(server)
        return Endpoint(server, http)

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture(scope="session")
def testnet(tmp_path_factory: pytest.TempPathFactory) -> TestnetLayout:
    """Keys and a genesis for a one-validator network; each node gets its own data directory."""
    return generate_testnet(tmp_path_factory.mktemp("testnet"), validators=1)


@pytest.fixture(scope="session")
def testnet_of_four(tmp_path_factory: pytest.TempPathFactory) -> TestnetLayout:
    """Keys and a genesis for a four-validator network, of which the tests start one."""
    # Free peer ports, so the lone node started never reaches a testnet running on this machine.
    return generate_testnet(tmp_path_factory.mktemp("testnet4"), validators=4, base_peer_port=free_port_range(4))


@pytest.fixture
async def start_node(
    testnet: TestnetLayout, tmp_path: Path, http: aiohttp.ClientSession
) -> AsyncIterator[StartNode]:
    """``await start_node({setting: value}, layout=...)``: a started node, stopped at teardown."""
    nodes: list[TestNode] = []

    async def start(settings: dict[str, Any] | None = None, *, layout: TestnetLayout = testnet) -> TestNode:
        data_dir = tmp_path / f"node-{len(nodes)}"
        node = await start_test_node(layout, data_dir, http, settings or {})
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        await node.node.stop()


@pytest.fixture
async def node(start_node: StartNode) -> TestNode:
    """A running node producing a block every few tens of milliseconds."""
    return await start_node()


@pytest.fixture
async def paused(start_node: StartNode) -> TestNode:
    """A running node that never proposes: what is submitted stays pending."""
    return await start_node(PAUSED)
