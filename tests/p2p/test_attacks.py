"""Attacks on links between real in-process nodes: relays and men in the middle,
reflection, eavesdropping and tampering on the path, oversized frames before
the handshake, strangers holding handshake slots, and garbage by the thousand.

The attacker never holds an admitted key unless a test says so.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import struct
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from mura.p2p.client import open_link
from mura.p2p.frames import decode_frame, encode_frame
from mura.p2p.handshake import (
    PROTOCOL_VERSION,
    Auth,
    Hello,
    derive_channel,
    transcript_hash,
)
from mura.p2p.settings import NetworkLimits

from .conftest import (
    CHAIN_ID,
    GENESIS_HASH,
    HOST,
    Cluster,
    Node,
    Proxy,
    free_port,
    identity,
    key_named,
    limits,
    wait_for,
)

MiB = 1024 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def attacker_server(handler: Handler, port: int) -> AsyncIterator[None]:
    """An aiohttp server at ``port`` whose ``/p2p`` runs ``handler``: where honest nodes dial
    when the attacker sits at an address they were given."""
    app = web.Application()
    app.router.add_get("/p2p", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    try:
        yield
    finally:
        await runner.cleanup()


def fresh_hello() -> tuple[X25519PrivateKey, bytes]:
    ephemeral = X25519PrivateKey.generate()
    public = ephemeral.public_key().public_bytes_raw()
    return ephemeral, Hello(PROTOCOL_VERSION, CHAIN_ID, GENESIS_HASH, public).encode()


def ephemeral_of(hello: bytes) -> bytes:
    return Hello.decode(decode_frame(hello).payload).ephemeral_key


async def binary(websocket: Any) -> bytes:
    message = await websocket.receive(timeout=5)
    assert message.type is aiohttp.WSMsgType.BINARY, message
    data: bytes = message.data
    return data


async def send_quietly(websocket: Any, messages: list[bytes]) -> None:
    """Send what the node still takes: it may close the connection at any one of them."""
    try:
        for message in messages:
            await websocket.send_bytes(message)
    except ConnectionError:
        pass


def no_bans(*nodes: Node) -> bool:
    return all(node.network.stats.total.bans == 0 and node.network.stats.total.malformed == 0 for node in nodes)


# --- men in the middle ----------------------------------------------------------------


async def test_a_man_in_the_middle_that_substitutes_its_keys_is_never_admitted(cluster: Cluster) -> None:
    """a dials b, but reaches the attacker, who runs one handshake with a and one with b,
    opens a's proof with the keys it shares with a, and presents it to b as a's: b refuses,
    because a signed the transcript it saw, not the one b saw."""
    b = await cluster.start("b")
    attacker_port = free_port()
    presented: list[str] = []

    async def man_in_the_middle(request: web.Request) -> web.StreamResponse:
        to_a = web.WebSocketResponse()
        await to_a.prepare(request)
        a_hello = await binary(to_a)
        ephemeral_a, hello_to_a = fresh_hello()
        await to_a.send_bytes(hello_to_a)
        with_a = derive_channel(ephemeral_a, ephemeral_of(a_hello), transcript_hash(a_hello, hello_to_a), "listener")
        proof_of_a = Auth.decode(decode_frame(with_a.open(await binary(to_a))).payload)
        presented.append(proof_of_a.public_key.hex())
        url = f"http://{HOST}:{b.network.listen_port}/p2p"
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as to_b:
            ephemeral_b, hello_to_b = fresh_hello()
            await to_b.send_bytes(hello_to_b)
            b_hello = await binary(to_b)
            with_b = derive_channel(ephemeral_b, ephemeral_of(b_hello), transcript_hash(hello_to_b, b_hello), "dialer")
            await to_b.send_bytes(with_b.seal(proof_of_a.encode()))
            await send_quietly(to_b, [with_b.seal(b"\xc1 garbage %d" % index) for index in range(25)])
            await to_b.receive(timeout=5)
        await to_a.close()
        return to_a

    async with attacker_server(man_in_the_middle, attacker_port):
        a = await cluster.start("a", peers="b", via={"b": attacker_port})
        await wait_for(lambda: b.network.stats.handshake_failures >= 3, "b to refuse three forged proofs")
    assert presented and set(presented) == {key_named("a").public_key.hex()}
    assert b.network.connected_peers() == [] and a.network.connected_peers() == []
    assert no_bans(a, b) and key_named("a").public_key not in b.network.stats.peers


async def test_a_relay_that_forwards_both_ways_carries_a_real_link_it_cannot_read_or_inject_into(
    cluster: Cluster,
) -> None:
    """Forwarding every byte gives a and b a genuine link through the relay; the relay
    cannot open it, and what it injects ends the link without counting against a."""
    b = await cluster.start("b", limits=limits(malformed_threshold=0))  # one offence would ban
    proxy = Proxy(b.network.listen_port)
    await proxy.start()
    try:
        a = await cluster.start("a", peers="b", via={"b": proxy.port})
        await wait_for(lambda: b.network.connected_peers() == [a.public_key], "a and b to link through the relay")
        assert a.network.send(b.public_key, "data", b"through the relay")
        await wait_for(lambda: b.payloads("data") == [b"through the relay"], "the frame")
        injected = bytes([0x82, 0x90]) + bytes(4) + b"x" * 16  # a masked binary message of 16 bytes
        proxy.inject("out", injected)
        await wait_for(lambda: b.traffic(a.public_key).not_authentic == 1, "b to refuse the injected message")
        await wait_for(lambda: b.network.connected_peers() == [a.public_key], "a to redial after the link ended")
        assert b.traffic(a.public_key).disconnects >= 1 and no_bans(a, b)
    finally:
        await proxy.stop()


async def test_two_dialers_relayed_to_each_other_refuse_each_other(cluster: Cluster) -> None:
    """a dials "b" and b dials "a", and both reach the attacker, which pairs the two
    connections: each side's proof is for the dialer's role and keys, so neither opens it."""
    ports = {"a": free_port(), "b": free_port()}
    waiting: asyncio.Queue[web.WebSocketResponse] = asyncio.Queue()
    done = asyncio.Event()

    async def pair(request: web.Request) -> web.StreamResponse:
        websocket = web.WebSocketResponse()
        await websocket.prepare(request)
        if waiting.empty():
            await waiting.put(websocket)
            await done.wait()
            return websocket
        other = await waiting.get()

        async def forward(source: web.WebSocketResponse, target: web.WebSocketResponse) -> None:
            async for message in source:
                if message.type is aiohttp.WSMsgType.BINARY and not target.closed:
                    await target.send_bytes(message.data)

        await asyncio.gather(forward(websocket, other), forward(other, websocket), return_exceptions=True)
        done.set()
        return websocket

    async with attacker_server(pair, ports["a"]), attacker_server(pair, ports["b"]):
        a = await cluster.start("a", peers="b", via={"b": ports["b"]})
        b = await cluster.start("b", peers="a", via={"a": ports["a"]})
        await wait_for(lambda: a.network.stats.handshake_failures >= 1 and b.network.stats.handshake_failures >= 1,
                       "both dialers to refuse")
    assert a.network.connected_peers() == [] and b.network.connected_peers() == [] and no_bans(a, b)


async def test_a_keyless_relay_between_two_listeners_gets_no_proof(cluster: Cluster) -> None:
    """The old attack: read one validator's HELLO and hand it to another. Listeners now
    prove nothing before the dialer has, so there is nothing to carry across."""
    b = await cluster.start("b", limits=limits(hello_timeout=0.5, handshake_timeout=1.0))
    c = await cluster.start("c", limits=limits(hello_timeout=0.5, handshake_timeout=1.0))
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"http://{HOST}:{b.network.listen_port}/p2p") as to_b, \
                http.ws_connect(f"http://{HOST}:{c.network.listen_port}/p2p") as to_c:
            _, hello_to_b = fresh_hello()
            await to_b.send_bytes(hello_to_b)
            b_hello = await binary(to_b)
            await to_c.send_bytes(b_hello)  # b's HELLO as if it were a dialer's
            c_hello = await binary(to_c)
            await to_b.send_bytes(c_hello)  # and c's as if it were an AUTH
            for websocket in (to_b, to_c):
                await send_quietly(websocket, [b"\xc1 garbage %d" % index for index in range(25)])
                await websocket.receive(timeout=5)
    await wait_for(lambda: b.network.stats.handshake_failures == 1 and c.network.stats.handshake_failures == 1,
                   "both to refuse")
    assert b.network.stats.peers == {} and c.network.stats.peers == {}


# --- on the path -------------------------------------------------------------------------


async def test_frames_are_encrypted_on_the_wire(cluster: Cluster) -> None:
    b = await cluster.start("b")
    proxy = Proxy(b.network.listen_port)
    await proxy.start()
    try:
        a = await cluster.start("a", peers="b", via={"b": proxy.port})
        # Each side registers the link when its own half of the handshake ends.
        await wait_for(
            lambda: a.network.connected_peers() == [b.public_key] and b.network.connected_peers() == [a.public_key],
            "a and b to link",
        )
        secret = b"pay 1000 NAC to the mayor" * 4
        assert a.network.send(b.public_key, "data", secret)
        assert b.network.send(a.public_key, "data", [secret, 7])
        await wait_for(lambda: b.payloads("data") == [secret] and a.payloads("data") == [[secret, 7]], "both frames")
        wire = bytes(proxy.recorded["out"]) + bytes(proxy.recorded["in"])
        assert b"\xa5hello" in wire, "the HELLOs are in the clear: the capture works"
        for plaintext in (secret, encode_frame("data", secret), b"\xa4data", b"\xa4auth", key_named("a").public_key):
            assert plaintext not in wire
    finally:
        await proxy.stop()


async def test_tampering_on_the_path_closes_the_link_and_bans_no_one(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mura.p2p")
    b = await cluster.start("b", limits=limits(malformed_threshold=0))
    proxy = Proxy(b.network.listen_port)
    await proxy.start()
    try:
        a = await cluster.start("a", peers="b", via={"b": proxy.port})
        await wait_for(lambda: b.network.connected_peers() == [a.public_key], "a and b to link")
        proxy.alter["out"] = flip_last_byte_once(of_chunks_over=10_000)
        assert a.network.send(b.public_key, "data", b"x" * 20_000)
        await wait_for(lambda: b.traffic(a.public_key).not_authentic == 1, "b to refuse the altered frame")
        await wait_for(lambda: b.network.connected_peers() == [a.public_key], "a to redial")
        assert a.network.send(b.public_key, "data", b"after the redial")
        await wait_for(lambda: b.payloads("data") == [b"after the redial"], "the next frame")
        assert no_bans(a, b)
        assert any("altered on the path" in record.getMessage() for record in caplog.records)
    finally:
        await proxy.stop()


def flip_last_byte_once(*, of_chunks_over: int) -> Callable[[bytes], bytes]:
    flipped = False

    def alter(chunk: bytes) -> bytes:
        nonlocal flipped
        if flipped or len(chunk) <= of_chunks_over:
            return chunk
        flipped = True
        return chunk[:-1] + bytes([chunk[-1] ^ 0x01])

    return alter


# --- before the handshake ----------------------------------------------------------------


async def upgrade(port: int, *, local_host: str = HOST) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
    """A raw socket through the websocket upgrade of ``/p2p``; the HTTP status it got."""
    reader, writer = await asyncio.open_connection(HOST, port, local_addr=(local_host, 0))
    writer.write(
        b"GET /p2p HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return reader, writer, int(head.split()[1])


async def test_a_large_frame_before_the_handshake_is_refused_without_buffering_it(cluster: Cluster) -> None:
    b = await cluster.start("b")
    _reader, writer, status = await upgrade(b.network.listen_port)
    assert status == 101
    chunk = bytes(64 * 1024)
    header = bytes([0x82, 0xFF]) + (16 * MiB).to_bytes(8, "big") + bytes(4)  # masked with 0000: sent as is
    tracemalloc.start()
    try:
        writer.write(header)
        sent = 0
        try:
            while sent < 16 * MiB:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        except ConnectionError:
            pass
        await wait_for(lambda: b.network.stats.handshake_failures == 1, "b to refuse the frame")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        writer.transport.abort()
    assert peak < 2 * MiB, f"{peak} bytes traced while a 16 MiB frame arrived before any HELLO"
    assert sent < 16 * MiB, "b stopped reading long before the frame's end"


async def test_strangers_cannot_take_the_handshake_slots_kept_for_peers(cluster: Cluster) -> None:
    tight = limits(max_pending_handshakes=6, max_handshakes_per_source=2, reserved_peer_handshakes=3,
                   hello_timeout=30.0, handshake_timeout=30.0)
    a = await cluster.start("a", peers="b", limits=tight)
    statuses: dict[str, list[int]] = {}
    held = []
    for source in ("127.0.0.2", "127.0.0.3"):
        for _ in range(3):
            _reader, writer, status = await upgrade(a.network.listen_port, local_host=source)
            statuses.setdefault(source, []).append(status)
            held.append(writer)
    try:
        assert statuses == {"127.0.0.2": [101, 101, 503], "127.0.0.3": [101, 503, 503]}
        assert a.network.stats.handshakes_turned_away == 3
        b = await cluster.start("b", peers="a")  # b's host is a configured peer's: the reserved slots
        await wait_for(lambda: a.network.connected_peers() == [b.public_key], "b to link despite the strangers")
    finally:
        for writer in held:
            writer.transport.abort()


#: Where the peers of the slot tests are configured: three machines, as in production.
PEER_HOSTS = {"b": "127.0.0.3", "d": "127.0.0.2"}


async def test_a_dishonest_validator_from_its_own_address_cannot_hold_every_slot(cluster: Cluster) -> None:
    """Production slot limits. d, a configured peer at 127.0.0.2, opens idle websockets
    until turned away: it once held all 16 slots, so that b (127.0.0.3) was turned away too."""
    a = await cluster.start(
        "a", peers="bd", hosts=PEER_HOSTS, limits=limits(hello_timeout=30.0, handshake_timeout=30.0)
    )
    production = NetworkLimits()
    statuses, held = [], []
    try:
        for _ in range(production.max_pending_handshakes + 2):
            _reader, writer, status = await upgrade(a.network.listen_port, local_host="127.0.0.2")
            statuses.append(status)
            held.append(writer)
        own_share = production.max_handshakes_per_source + 1  # its allowance, plus one for its key
        assert statuses == [101] * own_share + [503] * (len(statuses) - own_share)
        link = await open_link(f"http://{HOST}:{a.network.listen_port}/p2p", identity("b"),
                               expected_public_key=a.public_key, local_host="127.0.0.3")
        await link.close()
        assert a.network.stats.handshakes_turned_away == len(statuses) - own_share
    finally:
        for writer in held:
            writer.transport.abort()


async def test_a_known_peer_ends_the_oldest_idle_handshake_when_every_slot_is_taken(cluster: Cluster) -> None:
    tight = limits(max_pending_handshakes=8, max_handshakes_per_source=4, reserved_peer_handshakes=4,
                   hello_timeout=30.0, handshake_timeout=30.0)
    a = await cluster.start("a", peers="bd", hosts=PEER_HOSTS, limits=tight)
    held = []
    try:
        for source in ["127.0.0.4"] * 4 + ["127.0.0.2"] * 4:  # a stranger first, then d
            reader, writer, status = await upgrade(a.network.listen_port, local_host=source)
            assert status == 101
            held.append((reader, writer))
        link = await open_link(f"http://{HOST}:{a.network.listen_port}/p2p", identity("b"),
                               expected_public_key=a.public_key, local_host="127.0.0.3")
        await link.close()
        assert a.network.stats.handshakes_evicted == 1
        async with asyncio.timeout(5):
            while await held[0][0].read(1024):
                pass  # the oldest of the stranger's, the largest holder with d, was ended
        assert not held[1][0].at_eof() and not held[4][0].at_eof()
    finally:
        for _, writer in held:
            writer.transport.abort()


async def test_an_idle_upgraded_connection_is_dropped_after_the_hello_timeout(cluster: Cluster) -> None:
    a = await cluster.start("a", limits=limits(hello_timeout=0.2))
    reader, writer, status = await upgrade(a.network.listen_port)
    assert status == 101
    async with asyncio.timeout(5):
        while await reader.read(1024):
            pass  # the close frame, then the end of the stream
    assert a.network.stats.handshake_failures == 1
    writer.close()


async def test_a_slow_request_head_is_cut_off(cluster: Cluster) -> None:
    a = await cluster.start("a", limits=limits(header_timeout=0.3))
    reader, writer = await asyncio.open_connection(HOST, a.network.listen_port)
    writer.write(b"GET /p2p HTT")
    await writer.drain()
    async with asyncio.timeout(5):
        assert await reader.read() == b"", "the node closes a connection whose request head never completes"
    writer.close()


async def test_a_connection_dropped_during_the_upgrade_is_no_error(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    a = await cluster.start("a", limits=limits(max_handshakes_per_source=64, max_pending_handshakes=65,
                                               reserved_peer_handshakes=0))
    request = (b"GET /p2p HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    for _ in range(50):
        with socket.create_connection((HOST, a.network.listen_port)) as raw:
            raw.sendall(request)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset

    def ended() -> int:
        dropped = [record for record in caplog.records if "dropped during the websocket upgrade" in record.getMessage()]
        return len(dropped) + a.network.stats.handshake_failures

    await wait_for(lambda: ended() == 50, "every connection to end, at the upgrade or in the handshake")
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []


async def test_a_thousand_garbage_connections_log_a_bounded_number_of_lines(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a = await cluster.start("a", limits=limits(log_interval=60.0))

    async def garbage(index: int) -> None:
        if index % 2:  # a websocket with a garbage HELLO
            async with aiohttp.ClientSession() as http, \
                    http.ws_connect(f"http://{HOST}:{a.network.listen_port}/p2p") as websocket:
                await websocket.send_bytes(b"\xc1 not a hello %d" % index)
                await websocket.receive(timeout=5)
        else:  # garbage instead of HTTP
            reader, writer = await asyncio.open_connection(HOST, a.network.listen_port)
            writer.write(b"GET /p2p HTTP/1.1\r\nHost: x\r\nBad Header %d\r\n\r\n" % index)
            await reader.read()
            writer.close()

    for start in range(0, 1000, 4):  # four at a time: the most one source may have in its handshake
        await asyncio.gather(*(garbage(index) for index in range(start, start + 4)))
    await wait_for(lambda: a.network.stats.handshake_failures == 500, "500 refused handshakes")
    lines = [record for record in caplog.records if record.levelno >= logging.INFO]
    assert len(lines) <= 4, [record.getMessage() for record in lines]
    assert any("malformed hello" in record.getMessage() for record in lines)


async def test_refused_handshakes_hold_no_memory_once_closed(cluster: Cluster) -> None:
    """A refused handshake's websocket is gone once it is closed. (aiohttp arms a closed
    websocket's heartbeat again when the peer's close reply arrives, and its timer kept
    each refused one alive for another 10-15 s: memory in proportion to the rate of
    garbage connections.)"""
    a = await cluster.start("a", limits=limits(heartbeat=30.0))

    async def refused(index: int) -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(f"http://{HOST}:{a.network.listen_port}/p2p") as ws:
            await ws.send_bytes(b"\xc1 not a hello %d" % index)
            await ws.receive(timeout=5)

    for start in range(0, 100, 4):
        await asyncio.gather(*(refused(index) for index in range(start, start + 4)))
    await wait_for(lambda: a.network.stats.handshake_failures == 100, "100 refused handshakes")

    def alive() -> int:
        gc.collect()
        return sum(1 for thing in gc.get_objects() if isinstance(thing, web.WebSocketResponse))

    # At most a handshake or so still under way, not the hundred refused.
    await wait_for(lambda: alive() <= 4, "the refused websockets to be gone", timeout=3.0)
