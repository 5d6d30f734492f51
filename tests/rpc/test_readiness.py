"""GET /ready against real nodes: ready and not ready by peers and by blocks behind, the
thresholds overridden by query parameters, and bad parameters refused."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from mura.genesis.testnet import TestnetLayout
from mura.rpc.readiness import ReadinessPolicy, SyncFacts, assess

from .conftest import StartNode
from .support import Serve, TestNode


async def get_ready(node: TestNode, query: str = "") -> tuple[int, dict[str, Any]]:
    async with node.rpc.session.get(node.rpc.server.url + "ready" + query) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


async def test_a_lone_validator_is_ready_by_default(node: TestNode) -> None:
    status, body = await get_ready(node)
    assert status == 200
    assert body["status"] == "ready" and "reasons" not in body
    assert (body["peers"], body["min_peers"], body["blocks_behind"], body["max_behind"]) == (0, 0, 0, 2)
    assert body["height"] <= body["highest_known_height"]


async def test_not_ready_with_fewer_peers_than_asked(node: TestNode) -> None:
    status, body = await get_ready(node, "?min_peers=1&max_behind=0")
    assert status == 503
    assert body["status"] == "not_ready"
    assert body["reasons"] == ["connected to 0 peers, needs at least 1"]
    assert (body["min_peers"], body["max_behind"]) == (1, 0)


async def test_a_validator_without_a_quorum_of_peers_is_not_ready(
    start_node: StartNode, testnet_of_four: TestnetLayout
) -> None:
    node = await start_node(layout=testnet_of_four)
    status, body = await get_ready(node)
    assert status == 503
    assert body["reasons"] == ["connected to 0 peers, needs at least 2"]
    assert (await get_ready(node, "?min_peers=0"))[0] == 200


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("?min_peers=-1", "query parameter min_peers must be a whole number from 0 to 1000000000, got '-1'"),
        ("?max_behind=two", "query parameter max_behind must be a whole number from 0 to 1000000000, got 'two'"),
        ("?peers=1", "unknown query parameter 'peers'; /ready takes min_peers and max_behind"),
    ],
    ids=["negative", "not-a-number", "unknown"],
)
async def test_a_bad_query_parameter_is_refused(paused: TestNode, query: str, reason: str) -> None:
    assert await get_ready(paused, query) == (400, {"status": "error", "reason": reason})


async def test_health_stays_ok_while_not_ready(start_node: StartNode, testnet_of_four: TestnetLayout) -> None:
    node = await start_node(layout=testnet_of_four)
    async with node.rpc.session.get(node.rpc.server.url + "health") as response:
        assert (response.status, await response.json()) == (200, {"status": "ok"})


def test_blocks_behind_the_highest_known_height() -> None:
    facts = SyncFacts(peers=3, height=10, highest_known_height=15)
    ready, body = assess(facts, ReadinessPolicy(min_peers=2, max_behind=2))
    assert not ready and body["blocks_behind"] == 5
    assert body["reasons"] == ["5 blocks behind height 15, may be at most 2"]
    assert assess(facts, ReadinessPolicy(min_peers=2, max_behind=5))[0]
    ready, body = assess(SyncFacts(peers=0, height=1, highest_known_height=9), ReadinessPolicy())
    assert not ready and len(body["reasons"]) == 2


def test_policy_thresholds_cannot_be_negative() -> None:
    with pytest.raises(ValueError):
        ReadinessPolicy(min_peers=-1)


async def test_a_server_without_sync_facts_is_ready_while_it_runs(serve: Serve, http: aiohttp.ClientSession) -> None:
    endpoint = await serve([])
    async with http.get(endpoint.server.url + "ready") as response:
        assert (response.status, await response.json()) == (200, {"status": "ok"})
