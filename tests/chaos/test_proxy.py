"""The fault proxy over real loopback sockets: each rule does to a direction what it says,
and only to that direction."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from mura.tests.chaos.proxy import PASS, FaultProxy, ProxyProcess, Rule

#: Long enough for loopback bytes to arrive when nothing holds them.
ARRIVAL_SECONDS = 2.0


class Endpoint:
    """A plain TCP server standing in for a node's peer port: keeps what each connection sends."""

    def __init__(self) -> None:
        self.connections: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.connections.put((reader, writer))

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[FaultProxy, Endpoint]]:
    endpoint = Endpoint()
    port = await endpoint.start()
    # Node 1 is the endpoint; node 0 is the test, dialing through port(0, 1).
    proxy = FaultProxy({0: ("127.0.0.1", 1), 1: ("127.0.0.1", port)}, seed=3)
    await proxy.start()
    try:
        yield proxy, endpoint
    finally:
        await proxy.stop()
        await endpoint.stop()


async def dial(
    proxy: FaultProxy, endpoint: Endpoint
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection from node 0 to node 1: (0's reader, 0's writer, 1's reader, 1's writer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port(0, 1))
    far_reader, far_writer = await asyncio.wait_for(endpoint.connections.get(), ARRIVAL_SECONDS)
    return reader, writer, far_reader, far_writer


async def arrives(reader: asyncio.StreamReader, count: int, *, within: float = 0.3) -> bytes | None:
    """``count`` bytes from ``reader``, or None when they do not come ``within`` seconds."""
    try:
        return await asyncio.wait_for(reader.readexactly(count), within)
    except TimeoutError:
        return None


async def test_bytes_pass_both_ways(proxy: tuple[FaultProxy, Endpoint]) -> None:
    fault_proxy, endpoint = proxy
    reader, writer, far_reader, far_writer = await dial(fault_proxy, endpoint)
    payload = bytes(range(256)) * 1000
    writer.write(payload)
    assert await asyncio.wait_for(far_reader.readexactly(len(payload)), ARRIVAL_SECONDS) == payload
    far_writer.write(b"answer")
    assert await asyncio.wait_for(reader.readexactly(6), ARRIVAL_SECONDS) == b"answer"
    assert fault_proxy.stats.accepted == {(0, 1): 1}
    assert fault_proxy.stats.delivered == {(0, 1): len(payload), (1, 0): 6}


async def test_blackhole_holds_one_direction_and_delivers_in_order_after_the_heal(
    proxy: tuple[FaultProxy, Endpoint],
) -> None:
    fault_proxy, endpoint = proxy
    reader, writer, far_reader, far_writer = await dial(fault_proxy, endpoint)
    fault_proxy.set_rules({(0, 1): Rule(cut="blackhole")})
    writer.write(b"first")
    writer.write(b"second")
    assert await arrives(far_reader, 1) is None
    far_writer.write(b"back")
    assert await asyncio.wait_for(reader.readexactly(4), ARRIVAL_SECONDS) == b"back"
    fault_proxy.heal()
    assert await asyncio.wait_for(far_reader.readexactly(11), ARRIVAL_SECONDS) == b"firstsecond"


async def test_a_side_that_goes_away_behind_a_blackhole_is_not_noticed_until_the_heal(
    proxy: tuple[FaultProxy, Endpoint],
) -> None:
    fault_proxy, endpoint = proxy
    _reader, writer, far_reader, far_writer = await dial(fault_proxy, endpoint)
    fault_proxy.set_rules({(0, 1): Rule(cut="blackhole")})
    writer.transport.abort()
    far_writer.write(b"anyone there?")
    await far_writer.drain()
    assert await arrives(far_reader, 1) is None  # no EOF, no reset: silence
    fault_proxy.heal()
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(far_reader.readexactly(1), ARRIVAL_SECONDS)


async def test_reset_cut_resets_live_connections_and_refuses_new_ones(proxy: tuple[FaultProxy, Endpoint]) -> None:
    fault_proxy, endpoint = proxy
    reader, writer, far_reader, _far_writer = await dial(fault_proxy, endpoint)
    fault_proxy.set_rules({(1, 0): Rule(cut="reset")})
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(reader.readexactly(1), ARRIVAL_SECONDS)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(far_reader.readexactly(1), ARRIVAL_SECONDS)
    new_reader, _new_writer = await asyncio.open_connection("127.0.0.1", fault_proxy.port(0, 1))
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(new_reader.readexactly(1), ARRIVAL_SECONDS)
    assert endpoint.connections.empty()
    fault_proxy.set_rules({(1, 0): PASS})
    reader, writer, far_reader, _far_writer = await dial(fault_proxy, endpoint)
    writer.write(b"again")
    assert await asyncio.wait_for(far_reader.readexactly(5), ARRIVAL_SECONDS) == b"again"


async def test_delay_and_jitter_hold_every_chunk_and_keep_the_order(proxy: tuple[FaultProxy, Endpoint]) -> None:
    fault_proxy, endpoint = proxy
    fault_proxy.set_rules({(0, 1): Rule(delay_ms=100, jitter_ms=80)})
    reader, writer, far_reader, far_writer = await dial(fault_proxy, endpoint)
    sent_at = []
    for number in range(50):
        sent_at.append(time.monotonic())
        writer.write(number.to_bytes(2, "big"))
        await writer.drain()
        await asyncio.sleep(0.002)
    for number in range(50):
        assert await asyncio.wait_for(far_reader.readexactly(2), ARRIVAL_SECONDS) == number.to_bytes(2, "big")
        assert time.monotonic() - sent_at[number] >= 0.1
    far_writer.write(b"undelayed")
    assert await asyncio.wait_for(reader.readexactly(9), ARRIVAL_SECONDS) == b"undelayed"


async def test_throttle_limits_the_rate(proxy: tuple[FaultProxy, Endpoint]) -> None:
    fault_proxy, endpoint = proxy
    fault_proxy.set_rules({(0, 1): Rule(rate=200_000)})
    _reader, writer, far_reader, _far_writer = await dial(fault_proxy, endpoint)
    started = time.monotonic()
    writer.write(b"x" * 100_000)
    await asyncio.wait_for(far_reader.readexactly(100_000), 10)
    # 100 kB at 200 kB/s: the last chunk leaves no earlier than 0.5 s less one chunk's share.
    assert time.monotonic() - started >= 0.4


async def test_flaky_link_resets_each_connection_after_its_lifetime(proxy: tuple[FaultProxy, Endpoint]) -> None:
    fault_proxy, endpoint = proxy
    fault_proxy.set_rules({(1, 0): Rule(lifetime=(0.2, 0.4))})
    for _ in range(2):
        reader, _writer, _far_reader, _far_writer = await dial(fault_proxy, endpoint)
        opened = time.monotonic()
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), ARRIVAL_SECONDS)
        assert time.monotonic() - opened >= 0.2
    assert fault_proxy.stats.reset[(0, 1)] == 2
    fault_proxy.heal()
    reader, _writer, _far_reader, _far_writer = await dial(fault_proxy, endpoint)
    assert await arrives(reader, 1, within=0.8) is None  # lives past the flaky lifetimes


async def test_the_proxy_process_takes_rules_over_its_pipe() -> None:
    endpoint = Endpoint()
    port = await endpoint.start()
    process = ProxyProcess({0: ("127.0.0.1", 1), 1: ("127.0.0.1", port)}, seed=1)
    await process.start()
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", process.port(0, 1))
        far_reader, _far_writer = await asyncio.wait_for(endpoint.connections.get(), 5)
        await process.set_rules({(0, 1): Rule(cut="blackhole")})
        writer.write(b"held")
        assert await arrives(far_reader, 1) is None
        await process.heal()
        assert await asyncio.wait_for(far_reader.readexactly(4), 5) == b"held"
        with pytest.raises(ValueError):
            await process.set_rules({(0, 7): Rule(cut="reset")})
        assert (await process.stats())["accepted"] == {(0, 1): 1}
    finally:
        await process.stop()
        await endpoint.stop()


async def test_a_dial_into_a_blackhole_arrives_at_its_next_syn_after_the_heal(
    proxy: tuple[FaultProxy, Endpoint],
) -> None:
    fault_proxy, endpoint = proxy
    fault_proxy.set_rules({(1, 0): Rule(cut="blackhole")})
    dialed = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", fault_proxy.port(0, 1))
    writer.write(b"hello")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(endpoint.connections.get(), 0.3)
    fault_proxy.heal()
    far_reader, far_writer = await asyncio.wait_for(endpoint.connections.get(), ARRIVAL_SECONDS)
    assert time.monotonic() - dialed >= 1.0  # the first SYN retransmission
    assert await asyncio.wait_for(far_reader.readexactly(5), ARRIVAL_SECONDS) == b"hello"
    far_writer.write(b"back")
    assert await asyncio.wait_for(reader.readexactly(4), ARRIVAL_SECONDS) == b"back"


async def test_a_dial_given_up_in_a_blackhole_never_arrives(proxy: tuple[FaultProxy, Endpoint]) -> None:
    fault_proxy, endpoint = proxy
    fault_proxy.set_rules({(0, 1): Rule(cut="blackhole")})
    _reader, writer = await asyncio.open_connection("127.0.0.1", fault_proxy.port(0, 1))
    writer.write(b"GET /p2p")
    writer.close()
    deadline = time.monotonic() + ARRIVAL_SECONDS
    while not fault_proxy.stats.abandoned and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert fault_proxy.stats.abandoned == {(0, 1): 1}
    fault_proxy.heal()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(endpoint.connections.get(), 1.5)
