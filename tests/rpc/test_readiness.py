"""GET /ready against real nodes: ready and not ready by peers and by blocks behind, the
thresholds overridden by query parameters, and bad parameters refused."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from mura.chain.keys import SigningKey, sha256
from mura.genesis.format import genesis_block
from mura.genesis.testnet import TestnetLayout
from mura.p2p.network import Network
from mura.p2p.settings import PeerAddress
from mura.rpc.readiness import ReadinessPolicy, SyncFacts, assess

from .conftest import StartNode
from .support import Serve, TestNode, wait_until


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
    assert body["reasons"] == ["connected to 0 validators, needs at least 1"]
    assert (body["min_peers"], body["max_behind"]) == (1, 0)


async def test_a_validator_without_a_quorum_of_peers_is_not_ready(
    start_node: StartNode, testnet_of_four: TestnetLayout
) -> None:
    node = await start_node(layout=testnet_of_four)
    status, body = await get_ready(node)
    assert status == 503
    assert body["reasons"] == ["connected to 0 validators, needs at least 2"]
    assert (await get_ready(node, "?min_peers=0"))[0] == 200


async def test_links_to_observers_make_no_validator_ready(
    start_node: StartNode, testnet_of_four: TestnetLayout
) -> None:
    """Two observers linked, no other validator: this node can neither make nor learn a block."""
    observers = [SigningKey.from_private_bytes(sha256(b"observer %d" % index)) for index in range(2)]
    node = await start_node({"p2p.observers": [observer.public_key.hex() for observer in observers]},
                            layout=testnet_of_four)
    own = node.node.key.public_key
    links = [
        Network(key=observer, chain_id=testnet_of_four.genesis.chain_id,
                genesis_hash=genesis_block(testnet_of_four.genesis)[0].hash, listen_host="127.0.0.1", listen_port=0,
                peers=[PeerAddress(own, "127.0.0.1", node.node.network.listen_port)], admitted=[own], handlers={})
        for observer in observers
    ]
    for link in links:
        await link.start()
    try:
        await wait_until(lambda: len(node.node.network.connected_peers()) == 2, "both observers to link")
        status, body = await get_ready(node)
        assert status == 503
        assert body["reasons"] == ["connected to 0 validators, needs at least 2"]
        assert node.node.status().peers == 2
    finally:
        for link in links:
            await link.stop()


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
