"""Subscriptions on real validator processes: a websocket on one node is sent each block as
it becomes final there, the block holding a transfer submitted to another node included."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mura.chain.keys import SigningKey
from mura.chain.transaction import Transfer
from mura.tests.node.cluster import Cluster

pytestmark = pytest.mark.processes

SUBSCRIBE = {"jsonrpc": "2.0", "id": 1, "method": "chain_subscribe", "params": ["final_blocks"]}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path / "testnet")
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.close()


async def get_block(http: aiohttp.ClientSession, port: int, height: int) -> dict[str, Any]:
    request = {"jsonrpc": "2.0", "id": 2, "method": "chain_getBlock", "params": [height]}
    async with http.post(f"http://127.0.0.1:{port}/", json=request) as response:
        return (await response.json())["result"]  # type: ignore[no-any-return]


async def test_a_subscriber_is_sent_the_block_holding_a_transfer_submitted_elsewhere(cluster: Cluster) -> None:
    port = cluster.rpc_ports[1]
    async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{port}/ws") as socket:
        await socket.send_json(SUBSCRIBE)
        subscription = (await asyncio.wait_for(socket.receive_json(), 10))["result"]
        transaction_hash = cluster.submit(0, cluster.sign(cluster.treasury, Transfer(
            "NAC", SigningKey.generate().public_key, 777)))
        headers: list[dict[str, Any]] = []
        async with asyncio.timeout(60):
            while True:
                notification = await socket.receive_json()
                assert notification["method"] == "chain_subscription"
                assert notification["params"]["subscription"] == subscription
                header = notification["params"]["result"]
                headers.append(header)
                if header["transaction_count"] and transaction_hash in (
                    await get_block(http, port, header["height"])
                )["transactions"]:
                    break
        heights = [header["height"] for header in headers]
        assert heights == list(range(heights[0], heights[0] + len(heights))), "each final block once, in order"
        final = await get_block(http, port, heights[-1])
        assert headers[-1] == {key: value for key, value in final.items() if key != "transactions"}
