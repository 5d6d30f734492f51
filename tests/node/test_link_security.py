"""Four real validator processes under attack from a client that holds no key:
the relay that once got validators impersonated and banned, large frames before
the handshake, and strangers holding every handshake slot they can while a
validator restarts.

The attacker connects from other loopback addresses (127.0.0.2 and up; Linux
routes all of 127/8 to the loopback interface), so its connections are told
apart from the validators' in the nodes' logs and handshake slots.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from mura.chain.keys import SigningKey
from mura.genesis.format import genesis_block
from mura.p2p.frames import decode_frame
from mura.p2p.handshake import PROTOCOL_VERSION, Auth, Hello, derive_channel, transcript_hash
from mura.tests.node.cluster import Cluster, wait_for

pytestmark = pytest.mark.processes

ATTACKER = "127.0.0.2"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("link-security") / "testnet")
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.close()


def peer_port(cluster: Cluster, index: int) -> int:
    return int(cluster.layout.genesis.validators[index].peer_address.rpartition(":")[2])


class HeightWatch:
    """Samples node 0's height in a thread until stopped; the longest time without a new block."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.longest_stall = 0.0
        self.blocks = 0

    def __enter__(self) -> HeightWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        height, since = self._cluster.height(0), time.monotonic()
        first = height
        while not self._stop.wait(0.05):
            try:
                now_height = self._cluster.height(0)
            except OSError:
                continue
            now = time.monotonic()
            if now_height > height:
                height, since = now_height, now
            self.longest_stall = max(self.longest_stall, now - since)
            self.blocks = height - first


class InThread:
    """Runs coroutines on an event loop of its own thread, so a test can attack while it polls."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> InThread:
        self._thread.start()
        return self

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


# --- the relay ---------------------------------------------------------------------------


def fresh_hello(cluster: Cluster, genesis_hash: bytes) -> tuple[X25519PrivateKey, bytes]:
    ephemeral = X25519PrivateKey.generate()
    public = ephemeral.public_key().public_bytes_raw()
    return ephemeral, Hello(PROTOCOL_VERSION, cluster.chain_id, genesis_hash, public).encode()


async def quietly(websocket: aiohttp.ClientWebSocketResponse, messages: list[bytes]) -> None:
    """Send what the node still takes, then wait for it to close the connection."""
    try:
        for message in messages:
            await websocket.send_bytes(message)
        await websocket.receive(timeout=10)
    except (ConnectionError, TimeoutError):
        pass


async def relay_attack(cluster: Cluster, target: int, claimed: int) -> None:
    """Every way a keyless client can try to pass as validator ``claimed`` to ``target``,
    each followed by the malformed frames that once got the claimed key banned."""
    genesis_hash = genesis_block(cluster.layout.genesis)[0].hash
    claimed_key = cluster.layout.genesis.validators[claimed].public_key
    garbage = [b"\xc1 garbage %d" % index for index in range(25)]
    connector = aiohttp.TCPConnector(local_addr=(ATTACKER, 0))
    async with aiohttp.ClientSession(connector=connector) as http:

        def url(index: int) -> str:
            return f"http://127.0.0.1:{peer_port(cluster, index)}/p2p"

        # 1. Hand the target's HELLO to the claimed validator as a dialer's, and the
        #    claimed validator's HELLO back to the target in place of a proof.
        async with http.ws_connect(url(target)) as to_target, http.ws_connect(url(claimed)) as to_claimed:
            _, hello = fresh_hello(cluster, genesis_hash)
            await to_target.send_bytes(hello)
            target_hello = (await to_target.receive(timeout=5)).data
            await to_claimed.send_bytes(target_hello)
            claimed_hello = (await to_claimed.receive(timeout=5)).data
            await asyncio.gather(quietly(to_target, [claimed_hello, *garbage]), quietly(to_claimed, garbage))
        # 2. A proof "by" the claimed validator, sealed under keys the attacker shares with the target.
        async with http.ws_connect(url(target)) as to_target:
            ephemeral, hello = fresh_hello(cluster, genesis_hash)
            await to_target.send_bytes(hello)
            target_hello = (await to_target.receive(timeout=5)).data
            ephemeral_key = Hello.decode(decode_frame(target_hello).payload).ephemeral_key
            channel = derive_channel(ephemeral, ephemeral_key, transcript_hash(hello, target_hello), "dialer")
            forged = Auth(claimed_key, SigningKey.generate().sign(b"anything")).encode()
            await quietly(to_target, [channel.seal(forged), *(channel.seal(frame) for frame in garbage)])


def test_a_keyless_relay_across_validator_pairs_gets_nothing_admitted_and_no_key_banned(cluster: Cluster) -> None:
    pairs = [(target, claimed) for target in range(4) for claimed in range(4) if target != claimed]
    with HeightWatch(cluster) as watch, InThread() as attacker:
        rounds, deadline = 0, time.monotonic() + 4.0  # the old relay halted finality within a second or two
        while rounds < 2 or time.monotonic() < deadline:
            for target, claimed in pairs:
                attacker.run(relay_attack(cluster, target, claimed))
            rounds += 1
        blocks_during_attack = watch.blocks
    assert blocks_during_attack >= 3, f"only {blocks_during_attack} blocks in {rounds} rounds of the attack"
    assert watch.longest_stall < 3.0, f"finality stalled for {watch.longest_stall:.1f} s during the attack"
    for index in range(4):
        log = cluster.log(index)
        assert f"handshake with {ATTACKER}:" in log, f"node {index} never saw the attacker"
        assert not re.search(rf"connected to peer \w+ at {re.escape(ATTACKER)}:", log), f"node {index} admitted it"
        assert "banning peer" not in log, f"node {index} banned an honest validator"
        assert cluster.status(index)["peers"] == 3


# --- large frames before the handshake -------------------------------------------------------


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


async def stream_a_large_frame(port: int, source: str) -> tuple[int, int]:
    """Upgrade to a websocket and stream a 16 MiB frame without any HELLO; the HTTP status
    of the upgrade and the bytes the node took before it closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(
        b"GET /p2p HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    status = int((await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).split()[1])
    if status != 101:
        writer.transport.abort()
        return status, 0
    writer.write(bytes([0x82, 0xFF]) + (16 * MiB).to_bytes(8, "big") + bytes(4))
    chunk, sent = bytes(64 * 1024), 0
    try:
        while sent < 16 * MiB:
            writer.write(chunk)
            await asyncio.wait_for(writer.drain(), 10)
            sent += len(chunk)
    except (ConnectionError, TimeoutError):
        pass
    writer.transport.abort()
    return status, sent


def test_sixteen_large_frames_before_the_handshake_cost_a_node_little_memory(cluster: Cluster) -> None:
    pid = cluster.processes[0].pid
    before = rss_bytes(pid)
    peak = before
    with InThread() as attacker:
        sources = [f"127.0.0.{2 + index % 4}" for index in range(16)]

        async def all_at_once() -> list[tuple[int, int]]:
            return await asyncio.gather(*(stream_a_large_frame(peer_port(cluster, 0), source) for source in sources))

        future = asyncio.run_coroutine_threadsafe(all_at_once(), attacker.loop)
        while not future.done():
            peak = max(peak, rss_bytes(pid))
            time.sleep(0.01)
        taken = future.result()
    peak = max(peak, rss_bytes(pid))
    upgraded = [sent for status, sent in taken if status == 101]
    assert len(upgraded) >= 4 and all(sent < 16 * MiB for sent in upgraded), taken
    assert peak - before < 24 * MiB, f"RSS grew by {(peak - before) / MiB:.1f} MiB for 16 refused 16 MiB frames"
    wait_for(lambda: "more than 4096 bytes before the handshake" in cluster.log(0), "the refusal in node 0's log")
    assert cluster.status(0)["peers"] == 3


# --- strangers holding handshake slots ------------------------------------------------------


async def hold_slots(port: int, source: str, stop: asyncio.Event, held: list[int]) -> None:
    """Keep as many idle upgraded websockets open to ``port`` from ``source`` as the node allows."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0), limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one() -> None:
            while not stop.is_set():
                try:
                    async with http.ws_connect(f"http://127.0.0.1:{port}/p2p", autoping=False) as websocket:
                        held[0] += 1
                        await websocket.receive()  # until the node drops the idle connection
                        held[0] -= 1
                except (aiohttp.ClientError, OSError):
                    await asyncio.sleep(0.05)  # turned away (503) or refused: try again soon

        await asyncio.gather(*(one() for _ in range(8)))


def test_a_restarted_validator_gets_its_links_back_while_strangers_hold_idle_websockets(cluster: Cluster) -> None:
    sources = [f"127.0.0.{host}" for host in range(2, 6)]
    with InThread() as attacker:
        stop = asyncio.Event()
        held = [[0] for _ in range(4)]
        tasks = [
            asyncio.run_coroutine_threadsafe(hold_slots(peer_port(cluster, index), source, stop, held[index]),
                                             attacker.loop)
            for index in range(4) for source in sources
        ]
        try:
            wait_for(lambda: all(count[0] >= 8 for count in held), "the strangers to hold every slot they may")
            cluster.kill(3)
            wait_for(lambda: all(cluster.status(index)["peers"] == 2 for index in range(3)), "the others to notice")
            started = time.monotonic()
            cluster.start(3)
            wait_for(lambda: cluster.status(3)["peers"] == 3, "node 3 to link to all its peers again", timeout=15)
            relinked = time.monotonic() - started
            wait_for(lambda: all(cluster.status(index)["peers"] == 3 for index in range(4)), "every link back")
            height = cluster.height(3)
            wait_for(lambda: cluster.height(3) > height + 2, "node 3 to take part in finality again")
        finally:
            attacker.loop.call_soon_threadsafe(stop.set)
            for task in tasks:
                task.result(timeout=30)
    assert relinked < 15
