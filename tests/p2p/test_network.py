"""Tests for p2p/network.py (with p2p/registry.py and p2p/link.py): real nodes
on 127.0.0.1 linking, deduplicating, reconnecting, dispatching, and dealing
with peers that misbehave or cannot keep up."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from mura.chain.errors import DecodeError
from mura.p2p.client import open_link
from mura.p2p.frames import FrameTooLarge, encode_frame
from mura.p2p.handshake import HandshakeFailed
from mura.p2p.network import Network
from mura.p2p.settings import NetworkLimits

from .conftest import (
    FAST_LIMITS,
    HOST,
    Cluster,
    Node,
    Proxy,
    closed_by_node,
    identity,
    key_named,
    limits,
    link_as,
    next_close,
    raw_websocket,
    wait_for,
)

MiB = 1024 * 1024


def linked(*nodes: Node) -> bool:
    """Every node has a live link to every other one, and to nothing else."""
    return all(
        sorted(node.network.connected_peers()) == sorted(other.public_key for other in nodes if other is not node)
        for node in nodes
    )


def settled(*nodes: Node) -> bool:
    """``linked``, both ends of every link agree on who dialed it, and no connection
    is being opened: from here on no link can be replaced (losing frames in flight)."""
    if not linked(*nodes) or any(node.network.stats.connecting for node in nodes):
        return False
    dialed = {(node.public_key, link.public_key): link.outgoing for node in nodes for link in node.network.peer_links()}
    return all(outgoing != dialed[(peer, node)] for (node, peer), outgoing in dialed.items())


async def test_two_nodes_exchange_frames_both_ways(cluster: Cluster) -> None:
    a = await cluster.start("a", peers="b")
    b = await cluster.start("b", peers="a")
    await wait_for(lambda: settled(a, b), "a and b to link")
    assert a.network.send(b.public_key, "data", b"from a")
    assert b.network.send(a.public_key, "data", [b"from b", 2])
    await wait_for(lambda: b.payloads("data") == [b"from a"], "b to receive")
    await wait_for(lambda: a.payloads("data") == [[b"from b", 2]], "a to receive")
    assert a.peer_events[-1] == (b.public_key, True)
    assert a.network.stats.total.frames_out == 1 and a.network.stats.total.frames_in == 1


async def test_four_nodes_form_a_full_mesh_and_broadcast(cluster: Cluster) -> None:
    names = "abcd"
    nodes = [await cluster.start(name, peers=[other for other in names if other != name]) for name in names]
    await wait_for(lambda: settled(*nodes), "a full mesh of four")
    for node in nodes:
        assert node.network.broadcast("data", node.name.encode()) == 3
    for node in nodes:
        expected = sorted(other.name.encode() for other in nodes if other is not node)
        # Awaited before the loop moves on, so it sees this round's node.
        await wait_for(lambda: sorted(node.payloads("data")) == expected, f"{node.name} to hear everyone")  # noqa: B023
    assert nodes[0].network.broadcast("data", b"not c", exclude=[nodes[2].public_key]) == 2
    await wait_for(lambda: b"not c" in nodes[3].payloads("data"), "d to receive")
    assert b"not c" not in nodes[2].payloads("data")


async def test_seven_validators_on_one_host_relink_after_restarts(cluster: Cluster) -> None:
    """All on 127.0.0.1, as a testnet on one machine, with the production handshake slots:
    one source with six keys expected, so each node's six peers all fit in at once."""
    names = "abcdefg"
    assert (FAST_LIMITS.max_pending_handshakes, FAST_LIMITS.max_handshakes_per_source) == (16, 4)
    nodes = {name: await cluster.start(name, peers=[other for other in names if other != name]) for name in names}
    await wait_for(lambda: linked(*nodes.values()), "a full mesh of seven", timeout=15)
    for restarted in ("cf", "abcdefg"):
        for name in restarted:
            await nodes[name].network.stop()
        restarts = [cluster.start(name, peers=[other for other in names if other != name]) for name in restarted]
        nodes.update(zip(restarted, await asyncio.gather(*restarts), strict=True))
        await wait_for(lambda: linked(*nodes.values()), f"the mesh again after restarting {restarted}", timeout=15)
    assert all(node.network.stats.handshakes_turned_away == 0 for node in nodes.values())


@pytest.mark.parametrize("pair", ["ab", "cd", "ef", "gh"])
async def test_simultaneous_dialing_keeps_one_link_per_pair(cluster: Cluster, pair: str) -> None:
    first, second = await asyncio.gather(
        cluster.start(pair[0], peers=pair[1]), cluster.start(pair[1], peers=pair[0])
    )
    await wait_for(lambda: settled(first, second), "both ends to settle on one link")
    settled_events = (list(first.peer_events), list(second.peer_events))
    disconnects = (first.network.stats.total.disconnects, second.network.stats.total.disconnects)
    for round_trip in range(20):
        assert first.network.send(second.public_key, "data", round_trip)
        # Each predicate is awaited before the loop moves on: it sees this round's variable.
        await wait_for(lambda: len(second.payloads("data")) == round_trip + 1, "the frame")  # noqa: B023
        assert second.network.send(first.public_key, "data", round_trip)
        await wait_for(lambda: len(first.payloads("data")) == round_trip + 1, "the reply")  # noqa: B023
    assert (first.peer_events, second.peer_events) == settled_events, "the link did not flap"
    assert (first.network.stats.total.disconnects, second.network.stats.total.disconnects) == disconnects
    assert first.peer_events[-1] == (second.public_key, True) and second.peer_events[-1] == (first.public_key, True)
    assert settled(first, second) and len(first.network.peer_links()) == 1


async def test_a_late_node_is_reached_by_the_reconnect_loop(cluster: Cluster) -> None:
    a = await cluster.start("a", peers="b")
    await wait_for(lambda: a.network.stats.dial_failures >= 3, "a to fail dialing b a few times")
    b = await cluster.start("b")  # b dials nobody: only a's loop can link them
    await wait_for(lambda: linked(a, b), "a's reconnect loop to reach b")
    assert b.network.peer_links()[0].outgoing is False


async def test_a_peer_starting_is_said_calmly_once_and_one_that_stays_away_is_warned_of(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Once an INFO line per failed dial, with aiohttp's "Connect call failed" text, while
    peers were simply starting."""
    caplog.set_level(logging.DEBUG, logger="mura.p2p")
    b_key = key_named("b").public_key.hex()[:8]
    a = await cluster.start("a", peers="b", limits=limits(unreachable_warning_after=0.5,
                                                          unreachable_warning_every=60.0))
    await wait_for(lambda: a.network.stats.dial_failures >= 3, "a to fail dialing b a few times")

    def lines(level: int) -> list[str]:
        return [record.getMessage() for record in caplog.records
                if record.name == "mura.p2p.network" and record.levelno == level
                and record.getMessage().startswith(f"peer {b_key} ")]

    assert lines(logging.INFO) == [f"peer {b_key} at {HOST}:{cluster.port('b')} not reachable yet "
                                   "(connection refused); retrying"]
    await wait_for(lambda: bool(lines(logging.WARNING)), "the warning that b stays away")
    assert lines(logging.WARNING)[0].startswith(f"peer {b_key} at {HOST}:{cluster.port('b')} unreachable for ")
    assert lines(logging.WARNING)[0].endswith(" s: connection refused; still trying")
    failures = a.network.stats.dial_failures
    await wait_for(lambda: a.network.stats.dial_failures >= failures + 3, "more failed dials")
    assert len(lines(logging.WARNING)) == 1, "repeated at most every unreachable_warning_every"
    assert not any("Connect call failed" in line for line in lines(logging.INFO) + lines(logging.WARNING))
    b = await cluster.start("b")
    await wait_for(lambda: linked(a, b), "a to reach b")
    assert lines(logging.INFO)[1:] and lines(logging.INFO)[-1].startswith(f"peer {b_key} reachable again after ")
    assert len(lines(logging.INFO)) == 2


async def test_a_stopped_node_is_reconnected_when_it_comes_back(cluster: Cluster) -> None:
    a = await cluster.start("a", peers="b")
    b = await cluster.start("b")
    await wait_for(lambda: linked(a, b), "a and b to link")
    await b.network.stop()
    await wait_for(lambda: a.network.connected_peers() == [], "a to notice b left")
    assert a.peer_events == [(b.public_key, True), (b.public_key, False)]
    b_again = await cluster.start("b")
    await wait_for(lambda: linked(a, b_again), "a to reconnect to b")
    assert a.network.send(b.public_key, "data", b"welcome back")
    await wait_for(lambda: b_again.payloads("data") == [b"welcome back"], "b to receive")
    assert a.network.stats.peers[b.public_key].disconnects == 1


async def test_a_link_that_worked_is_redialed_at_once_however_often_it_drops(
    cluster: Cluster, proxies: Callable[[int], Awaitable[Proxy]]
) -> None:
    """Flaky links: each drop of a link that authenticated resets the redial delay, so the
    tenth drop is redialed as fast as the first (the delay once grew to backoff_max)."""
    b = await cluster.start("b")
    proxy = await proxies(b.network.listen_port)
    flaky = limits(backoff_initial=0.02, backoff_max=30.0, stable_link_seconds=0.0, max_links_per_minute=10_000)
    a = await cluster.start("a", peers="b", via={"b": proxy.port}, limits=flaky)
    for drop in range(10):
        await wait_for(lambda: linked(a, b), f"a to redial b after drop {drop}", timeout=3.0)
        proxy.cut()
        await wait_for(lambda: not a.network.connected_peers(), "a to notice the drop")
    await wait_for(lambda: linked(a, b), "a to redial b after the last drop", timeout=3.0)


async def test_a_peer_that_drops_every_link_at_once_is_redialed_ever_more_slowly(
    cluster: Cluster, proxies: Callable[[int], Awaitable[Proxy]]
) -> None:
    b = await cluster.start("b")
    proxy = await proxies(b.network.listen_port)
    quick = limits(backoff_initial=0.05, backoff_max=0.4, stable_link_seconds=60.0)
    a = await cluster.start("a", peers="b", via={"b": proxy.port}, limits=quick)
    for drop in range(7):
        await wait_for(lambda: linked(a, b), f"link {drop}")
        proxy.cut()
        await wait_for(lambda: not a.network.connected_peers(), "a to notice the drop")
    gaps = [later - earlier for earlier, later in itertools.pairwise(proxy.connected_at)]
    assert min(gaps[4:]) >= 0.15, f"redials after links that lived no time were not held back: {gaps}"


async def test_malformed_frames_are_counted_then_the_peer_is_banned(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mura.p2p")
    a = await cluster.start("a", limits=limits(malformed_threshold=5))
    honest = await cluster.start("c", peers="a")
    await wait_for(lambda: linked(a, honest), "the honest peer to link")
    mallory = key_named("b")  # admitted, but sends garbage
    async with link_as(a, "b") as link:
        await link.send_frame(b"\xc1 garbage")
        await link.send_frame(encode_frame("no-such-kind", b""))
        await link.send_frame(encode_frame("data", b"a good frame still counts"))
        await wait_for(lambda: a.traffic(mallory.public_key).malformed == 2, "two malformed frames")
        assert mallory.public_key in a.network.connected_peers()
        assert a.payloads("data", sender=Node("b", mallory, a.network)) == [b"a good frame still counts"]
        for _ in range(4):
            await link.send_frame(b"\x00\x01 more garbage")
        await closed_by_node(link)
        assert link.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    await wait_for(lambda: a.traffic(mallory.public_key).disconnects == 1, "a to drop mallory")
    assert (a.traffic(mallory.public_key).malformed, a.traffic(mallory.public_key).bans) == (6, 1)
    # Proven again, and refused as soon as its proof verified: a never signs its own AUTH.
    with pytest.raises(HandshakeFailed, match="while waiting for auth: banned for another"):
        await open_link(f"http://{HOST}:{a.network.listen_port}/p2p", identity("b"),
                        expected_public_key=a.public_key)
    assert mallory.public_key not in a.network.connected_peers()
    assert a.traffic(mallory.public_key).links_opened == 1, "the refused handshake never became a link"
    assert any("refused banned peer" in record.getMessage() for record in caplog.records)
    assert honest.network.send(a.public_key, "data", b"still served")
    await wait_for(lambda: b"still served" in a.payloads("data"), "the honest peer to be served")
    assert a.network.stats.peers[honest.public_key].malformed == 0


async def test_penalties_count_towards_the_same_ban(cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mura.p2p")
    a = await cluster.start("a", limits=limits(malformed_threshold=3))
    b = await cluster.start("b", peers="a")
    await wait_for(lambda: linked(a, b), "a and b to link")
    for index in range(3):
        a.network.penalize(b.public_key, f"consensus message {index} refused: bad signature")
    assert b.network.send(a.public_key, "no-such-kind", b"")
    await wait_for(lambda: a.network.stats.total.bans == 1, "a to ban b")
    stats = a.traffic(b.public_key)
    assert (stats.refused, stats.malformed, stats.bans) == (3, 1, 1)
    await wait_for(lambda: a.network.connected_peers() == [], "a to drop b")
    refusals = [record.getMessage() for record in caplog.records if "refused a frame from peer" in record.getMessage()]
    assert refusals[0].endswith("consensus message 0 refused: bad signature"), refusals
    assert len(refusals) == 1, "later penalties within the interval are folded into a summary"
    with pytest.raises(ValueError, match="not an admitted peer"):
        a.network.penalize(key_named("mallory").public_key, "no frame can come from this key")


async def flap(node: Node, name: str, times: int, http: aiohttp.ClientSession) -> None:
    """Open a link to ``node`` as ``name`` and close it, ``times`` times, each once the node has it."""
    key = key_named(name).public_key
    for _ in range(times):
        link = await open_link(f"http://{HOST}:{node.network.listen_port}/p2p", identity(name),
                               expected_public_key=node.public_key, http=http)
        await wait_for(lambda: key in node.network.connected_peers(), "the node to take the link")
        await link.close()
        await wait_for(lambda: key not in node.network.connected_peers(), "the node to see it closed")


async def test_a_flapping_link_logs_its_first_connect_and_disconnect_and_then_a_count(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Once two INFO lines per flap (3,162 lines in 5 s from one validator)."""
    caplog.set_level(logging.INFO, logger="mura.p2p")
    a = await cluster.start("a", limits=limits(log_interval=60.0))
    async with aiohttp.ClientSession() as http:
        await flap(a, "b", 30, http)
    assert a.peer_events == [(key_named("b").public_key, True), (key_named("b").public_key, False)] * 30
    await a.network.stop()  # writes what the interval held back
    lines = [record.getMessage() for record in caplog.records if record.name == "mura.p2p.registry"]
    assert len(lines) == 4, lines
    assert lines[0].startswith("connected to peer") and lines[1].startswith("disconnected from peer")
    assert sorted(line.split(" (")[0].split(" at ")[0] for line in lines[2:]) == [
        f"connected to peer {key_named('b').public_key.hex()[:8]}",
        f"disconnected from peer {key_named('b').public_key.hex()[:8]}",
    ]
    assert all(line.endswith(tuple(f"(29 more in the last {seconds} s)" for seconds in range(61)))
               for line in lines[2:]), lines


async def test_a_peer_that_opens_links_faster_than_any_backoff_allows_is_banned(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mura.p2p")
    slow_redials = limits(stable_link_seconds=5.0, max_links_per_minute=20)  # an honest dialer: 12 a minute
    a = await cluster.start("a", limits=slow_redials)
    b = key_named("b").public_key
    async with aiohttp.ClientSession() as http:
        await flap(a, "b", 20, http)
        assert a.traffic(b).bans == 0
        link = await open_link(f"http://{HOST}:{a.network.listen_port}/p2p", identity("b"),
                               expected_public_key=a.public_key, http=http)
        await closed_by_node(link)  # the 21st within a minute
        with pytest.raises(HandshakeFailed, match="banned"):
            await open_link(f"http://{HOST}:{a.network.listen_port}/p2p", identity("b"),
                            expected_public_key=a.public_key, http=http)
    stats = a.traffic(b)
    assert (stats.links_opened, stats.bans, stats.disconnects) == (21, 1, 20)
    assert a.peer_events.count((b, True)) == 20, "the link that broke the limit never reached the node"
    assert any("more than 20 links opened within a minute" in record.getMessage() for record in caplog.records)


def test_invalid_link_limit_below_what_an_honest_dialer_opens() -> None:
    with pytest.raises(ValueError, match="max_links_per_minute must be above the 100 links"):
        NetworkLimits(max_links_per_minute=100)  # 60 / (0.5 + 0.2 / 2)
    assert NetworkLimits().honest_links_per_minute() == pytest.approx(100)


async def test_a_ban_ends_and_the_dialer_reconnects(cluster: Cluster) -> None:
    a = await cluster.start("a", peers="b", limits=limits(malformed_threshold=2, ban_seconds=0.3))
    b = await cluster.start("b")
    await wait_for(lambda: linked(a, b), "a and b to link")
    for _ in range(3):
        b.network.send(a.public_key, "no-such-kind", b"")
    await wait_for(lambda: a.network.stats.total.bans == 1, "a to ban b")
    await wait_for(lambda: a.network.connected_peers() == [], "a to drop b")
    await wait_for(lambda: linked(a, b), "a to redial b once the ban ends")


async def test_handler_errors(cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    async def refuse(peer: bytes, payload: Any) -> None:
        raise DecodeError("not a vote")

    async def crash(peer: bytes, payload: Any) -> None:
        raise RuntimeError("a bug in this node")

    a = await cluster.start("a", handlers={"refuse": refuse, "crash": crash})
    b = await cluster.start("b", peers="a")
    await wait_for(lambda: linked(a, b), "a and b to link")
    for kind in ("crash", "refuse", "data"):
        assert b.network.send(a.public_key, kind, b"")
    await wait_for(lambda: a.payloads("data") == [b""], "the frame after the crash to arrive")
    assert linked(a, b), "a handler bug keeps the link"
    assert a.network.stats.peers[b.public_key].malformed == 1, "only the Invalid counts as malformed"
    (bug,) = [record for record in caplog.records if record.exc_info and "handler failed" in record.getMessage()]
    assert "a bug in this node" in str(bug.exc_info[1])  # type: ignore[index]


async def test_an_oversized_message_ends_the_link_without_counting_against_the_key(cluster: Cluster) -> None:
    small = limits(max_frame_size=64 * 1024)
    a = await cluster.start("a", limits=small)
    b = key_named("b")
    async with link_as(a, "b") as link:
        await link.send_frame(encode_frame("data", b"x" * 100_000))
        await closed_by_node(link)
    await wait_for(lambda: a.network.stats.total.disconnects == 1, "a to drop the link")
    assert (a.traffic(b.public_key).malformed, a.traffic(b.public_key).not_authentic) == (0, 1)
    assert a.network.send(b.public_key, "data", b"x" * 100_000) is False, "not connected: nothing encoded"
    async with link_as(a, "b"):
        await wait_for(lambda: b.public_key in a.network.connected_peers(), "b to link again")
        with pytest.raises(FrameTooLarge):
            a.network.send(b.public_key, "data", b"x" * 100_000)


@pytest.mark.parametrize("how", ["unsealed", "text", "replayed"])
async def test_a_message_that_does_not_open_ends_the_link_without_counting(cluster: Cluster, how: str) -> None:
    a = await cluster.start("a", limits=limits(malformed_threshold=0))  # one offence would ban
    b = key_named("b")
    async with link_as(a, "b") as link:
        sealed = link.channel.seal(encode_frame("data", b"first"))
        await link.send_unsealed(sealed)
        await wait_for(lambda: a.payloads("data") == [b"first"], "the first frame")
        if how == "unsealed":
            await link.send_unsealed(encode_frame("data", b"in the clear"))
        elif how == "text":
            await link.websocket.send_str("text is never sealed")
        else:
            await link.send_unsealed(sealed)
        await closed_by_node(link)
        assert link.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    await wait_for(lambda: a.traffic(b.public_key).disconnects == 1, "a to drop the link")
    stats = a.traffic(b.public_key)
    assert (stats.not_authentic, stats.malformed, stats.bans) == (1, 0, 0)
    assert a.payloads("data") == [b"first"]


async def test_send_to_a_peer_without_a_link(cluster: Cluster) -> None:
    a = await cluster.start("a")
    assert a.network.send(key_named("b").public_key, "data", b"") is False
    assert a.network.broadcast("data", b"") == 0


async def test_a_peer_that_stops_reading_is_cut_off_without_holding_up_others(cluster: Cluster) -> None:
    tight = limits(max_frame_size=MiB + 64, outbox_bytes=4 * MiB, outbox_frames=4, send_timeout=0.5, heartbeat=30.0)
    a = await cluster.start("a", limits=tight)
    fast = await cluster.start("c", peers="a")
    await wait_for(lambda: linked(a, fast), "the fast peer to link")
    slow = key_named("b")
    block = b"x" * MiB
    async with link_as(a, "b"):  # reads nothing
        await wait_for(lambda: slow.public_key in a.network.connected_peers(), "the slow peer to link")
        for _ in range(50):  # gossip is dropped under pressure, never a reason to disconnect
            assert a.network.send(slow.public_key, "transactions", block)
        assert a.network.stats.peers[slow.public_key].dropped > 0
        accepted = 0
        for sent in itertools.count():  # consensus frames may not be dropped: the peer is cut off
            assert sent < 200, "a peer that reads nothing was never cut off"
            if not a.network.send(slow.public_key, "data", block):
                break
            accepted += 1
            assert a.network.send(fast.public_key, "data", sent)
        assert slow.public_key not in a.network.connected_peers()
        await wait_for(lambda: a.traffic(slow.public_key).disconnects == 1, "the stuck link to be torn down")
    await wait_for(lambda: fast.payloads("data") == list(range(accepted)), "the fast peer to get every frame")
    assert linked(a, fast)


async def test_heartbeat_detects_a_dead_link(cluster: Cluster) -> None:
    a = await cluster.start("a", limits=limits(heartbeat=0.2))
    b = key_named("b")
    async with link_as(a, "b", autoping=False):
        await wait_for(lambda: a.network.connected_peers() == [b.public_key], "the link")
        await wait_for(lambda: a.peer_events == [(b.public_key, True), (b.public_key, False)],
                       "the heartbeat to drop the silent peer")


async def test_stop_is_idempotent_and_leaves_no_tasks(cluster: Cluster) -> None:
    before = asyncio.all_tasks()
    a = await cluster.start("a", peers="bc")  # c never starts: a keeps redialing it
    b = await cluster.start("b", peers="a")
    await wait_for(lambda: linked(a, b), "a and b to link")
    async with raw_websocket(a.network.listen_port) as half_open:  # stays in its handshake
        await asyncio.gather(a.network.stop(), a.network.stop())
        await a.network.stop()
        await next_close(half_open)
    await b.network.stop()
    await b.network.stop()
    assert asyncio.all_tasks() == before
    assert a.network.connected_peers() == [] and a.network.send(b.public_key, "data", b"") is False
    with pytest.raises(RuntimeError):
        await a.network.start()


async def test_stop_before_start_and_bad_configuration() -> None:
    network = Network(
        key=key_named("a"), chain_id="c", genesis_hash=bytes(32), listen_host="127.0.0.1", listen_port=0,
        peers=[], admitted=[], handlers={}, limits=FAST_LIMITS,
    )
    await network.stop()
    with pytest.raises(ValueError, match="not admitted"):
        Network(
            key=key_named("a"), chain_id="c", genesis_hash=bytes(32), listen_host="127.0.0.1", listen_port=0,
            peers=[cluster_address("b")], admitted=[], handlers={},
        )
    with pytest.raises(ValueError, match="outbox_bytes"):
        limits(max_frame_size=2 * MiB, outbox_bytes=MiB)


def cluster_address(name: str) -> Any:
    return Cluster().address(name)


async def test_stop_cuts_off_a_peer_that_reads_nothing(cluster: Cluster) -> None:
    before = asyncio.all_tasks()
    stuck = limits(max_frame_size=MiB + 64, outbox_bytes=8 * MiB, send_timeout=60.0, close_timeout=0.2, heartbeat=60.0)
    a = await cluster.start("a", limits=stuck)
    slow = key_named("b")
    async with link_as(a, "b"):
        await wait_for(lambda: a.network.connected_peers() == [slow.public_key], "the link")
        for _ in range(40):
            a.network.send(slow.public_key, "transactions", b"x" * MiB)
        await wait_for(lambda: a.traffic(slow.public_key).dropped > 0, "a's writer to be stuck")
        async with asyncio.timeout(3):
            await a.network.stop()
        assert a.peer_events == [(slow.public_key, True), (slow.public_key, False)]
    assert asyncio.all_tasks() == before


# --- peers that change while the network runs -------------------------------------------


async def test_set_peers_dials_a_new_peer_and_drops_one_no_longer_admitted(cluster: Cluster) -> None:
    a = await cluster.start("a", peers="b", admitted="ab")
    b = await cluster.start("b", peers="a", admitted="abc")
    c = await cluster.start("c", peers="", admitted="abc")
    await wait_for(lambda: linked(a, b), "a and b to link")
    # c joins: a admits it and dials it, without a restart.
    a.network.set_peers(admitted=[b.public_key, c.public_key], peers=[cluster.address("b"), cluster.address("c")])
    await wait_for(lambda: c.public_key in a.network.connected_peers(), "a to dial c")
    assert a.network.peers == (cluster.address("b"), cluster.address("c"))
    # b leaves: its link is closed, with the reason, and its dials are refused from now on.
    a.network.set_peers(admitted=[c.public_key], peers=[cluster.address("c")])
    await wait_for(lambda: a.network.connected_peers() == [c.public_key], "a to drop b")
    await wait_for(lambda: a.public_key not in b.network.connected_peers(), "b to see the link closed")
    await asyncio.sleep(0)  # b redials with its backoff; a refuses each attempt
    await wait_for(lambda: a.network.stats.handshake_failures > 0 or b.network.stats.handshake_failures > 0,
                   "b's redial to be refused")
    assert b.public_key not in a.network.connected_peers()
    # A frame a refused after b left is not held against anyone.
    a.network.penalize(b.public_key, "a message b sent before it left")
    assert a.network.stats.peers[b.public_key].refused == 0
    with pytest.raises(ValueError, match="not an admitted peer"):
        a.network.penalize(key_named("h").public_key, "a key never admitted")


async def test_a_droppable_frame_that_does_not_fit_is_dropped_and_the_link_stays(cluster: Cluster) -> None:
    small = limits(outbox_frames=2)
    a = await cluster.start("a", peers="b", limits=small)
    b = await cluster.start("b", peers="a")
    await wait_for(lambda: settled(a, b), "a and b to link")
    # Nothing is written before the test yields: the queue holds two frames at most.
    assert all(a.network.send(b.public_key, "data", index, droppable=True) for index in range(5))
    assert a.network.stats.peers[b.public_key].dropped == 3, "the newest droppable frames take the oldest's place"
    assert all(a.network.send(b.public_key, "data", f"must go {index}", droppable=False) for index in range(2))
    assert not a.network.send(b.public_key, "data", "may go", droppable=True)
    assert b.public_key in a.network.connected_peers()
    await wait_for(lambda: b.payloads("data") == ["must go 0", "must go 1"], "b to get the frames that must go")
