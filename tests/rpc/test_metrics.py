"""GET /metrics against real nodes: the named series exist, move with the chain and the
RPC traffic, and each node keeps its own registry."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from mura.chain.keys import SigningKey
from mura.chain.transaction import Transfer

from .conftest import StartNode
from .support import PAUSED, TestNode, wait_until

ALICE = SigningKey.from_private_bytes(bytes(range(32)))

#: Every series the issue names, by the name the text format shows.
NAMED = {
    "mura_chain_height",
    "mura_consensus_view",
    "mura_consensus_view_changes_total",
    "mura_p2p_peers_connected",
    "mura_consensus_missing_validators",
    "mura_mempool_transactions",
    "mura_mempool_bytes",
    "mura_block_interval_seconds_count",
    "mura_transactions_finalized_total",
    "mura_rpc_requests_total",
    "mura_rpc_request_duration_seconds_count",
    "mura_chain_blocks_behind",
    "mura_consensus_voting",
    "mura_p2p_final_blocks_pushed_total",
    "mura_p2p_final_blocks_push_dropped_total",
    "mura_rpc_websockets",
    "mura_rpc_subscriptions",
    "mura_rpc_notifications_sent_total",
    "mura_rpc_websockets_closed_slow_total",
}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(node: TestNode) -> Samples:
    """Every sample of the node's /metrics, by name and labels."""
    async with node.rpc.session.get(node.rpc.server.url + "metrics") as response:
        assert response.status == 200 and response.content_type == "text/plain"
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_every_named_series_is_served(node: TestNode) -> None:
    await node.rpc.result("chain_status")
    names = {name for name, _ in await scrape(node)}
    assert NAMED <= names, NAMED - names


async def test_height_and_block_interval_move_with_the_chain(node: TestNode) -> None:
    before = await scrape(node)
    await wait_until(lambda: node.height >= value(before, "mura_chain_height") + 3, "three more blocks")
    after = await scrape(node)
    assert value(after, "mura_chain_height") >= value(before, "mura_chain_height") + 3
    assert value(after, "mura_block_interval_seconds_count") >= value(before, "mura_block_interval_seconds_count") + 3
    assert value(after, "mura_consensus_missing_validators") == 0
    assert value(after, "mura_consensus_view_changes_total") == 0


async def test_a_transfer_is_counted_in_the_mempool_then_as_finalized(start_node: StartNode, node: TestNode) -> None:
    paused = await start_node(PAUSED)
    pending = paused.sign(Transfer("NAC", ALICE.public_key, 1))
    await paused.submit(pending)
    samples = await scrape(paused)
    assert value(samples, "mura_mempool_transactions") == 1
    assert value(samples, "mura_mempool_bytes") == len(pending.encoded)

    before = value(await scrape(node), "mura_transactions_finalized_total")
    await node.finalize(node.sign(Transfer("NAC", ALICE.public_key, 5)))
    assert value(await scrape(node), "mura_transactions_finalized_total") == before + 1
    assert value(await scrape(paused), "mura_transactions_finalized_total") == 0, "each node has its own registry"


async def test_rpc_requests_are_counted_by_method_with_unknown_names_bounded(paused: TestNode) -> None:
    for _ in range(3):
        await paused.rpc.result("chain_status")
    await paused.rpc.error("account_get", ["tnac1typo"])
    for name in ("no_such_method", "another_one"):
        await paused.rpc.error(name)
    await paused.rpc.post(raw=b"{not json")
    samples = await scrape(paused)
    assert value(samples, "mura_rpc_requests_total", method="chain_status", outcome="ok") == 3
    assert value(samples, "mura_rpc_requests_total", method="account_get", outcome="error") == 1
    assert value(samples, "mura_rpc_requests_total", method="unknown", outcome="error") == 2
    assert value(samples, "mura_rpc_requests_total", method="invalid", outcome="error") == 1
    assert value(samples, "mura_rpc_request_duration_seconds_count", method="chain_status") == 3
    methods = {dict(labels).get("method") for name, labels in samples if name == "mura_rpc_requests_total"}
    assert methods == {"chain_status", "account_get", "unknown", "invalid"}


async def test_an_expired_transaction_is_counted_as_dropped_by_its_rule(start_node: StartNode) -> None:
    node = await start_node({**PAUSED, "mempool.expire_after_seconds": 1, "mempool.rebroadcast_after_ms": 150})
    assert value(await scrape(node), "mura_mempool_dropped_total", rule="expired") == 0
    await node.submit(node.sign(Transfer("NAC", ALICE.public_key, 1)))
    await wait_until(lambda: len(node.node.mempool) == 0, "the transaction to expire")
    samples = await scrape(node)
    assert value(samples, "mura_mempool_dropped_total", rule="expired") == 1
    assert value(samples, "mura_mempool_transactions") == 0


async def test_websockets_subscriptions_and_notifications_are_counted(node: TestNode) -> None:
    url = node.rpc.server.url.replace("http://", "ws://", 1) + "ws"
    async with node.rpc.session.ws_connect(url) as socket:
        await socket.send_json({"jsonrpc": "2.0", "id": 1, "method": "chain_subscribe"})
        assert (await socket.receive_json(timeout=10))["id"] == 1
        await socket.receive_json(timeout=10)  # a notification
        samples = await scrape(node)
        assert (value(samples, "mura_rpc_websockets"), value(samples, "mura_rpc_subscriptions")) == (1, 1)
        assert value(samples, "mura_rpc_notifications_sent_total") >= 1
    await wait_until(lambda: node.rpc.server.websockets_open == 0, "the websocket to close")
    samples = await scrape(node)
    assert (value(samples, "mura_rpc_websockets"), value(samples, "mura_rpc_subscriptions")) == (0, 0)
