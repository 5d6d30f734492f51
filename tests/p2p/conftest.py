"""Factories for the p2p tests: keys by name, free loopback ports, real networks
with teardown, a raw websocket client, links opened as a given key
(``link_as``), a TCP proxy that records, alters or cuts what passes, and
``wait_for`` (poll a condition with a deadline; never sleep a fixed time).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import pytest

from mura.bench.ports import free_port_range
from mura.chain.keys import SigningKey, sha256
from mura.p2p.accounting import TrafficStats
from mura.p2p.client import ClientLink, LinkClosed, open_link
from mura.p2p.handshake import Identity
from mura.p2p.network import Handler, Network
from mura.p2p.settings import NetworkLimits, PeerAddress

CHAIN_ID = "mura-p2p-test"
GENESIS_HASH = sha256(b"mura-p2p-test genesis")
HOST = "127.0.0.1"

FAST_LIMITS = NetworkLimits(
    handshake_timeout=2.0,
    connect_timeout=2.0,
    heartbeat=5.0,
    send_timeout=2.0,
    close_timeout=0.5,
    backoff_initial=0.02,
    backoff_max=0.2,
    malformed_threshold=5,
    malformed_window=60.0,
    ban_seconds=60.0,
)


def key_named(name: str) -> SigningKey:
    """The same key for the same name, in every run."""
    return SigningKey.from_private_bytes(hashlib.sha256(b"mura-p2p-test-key:" + name.encode()).digest())


def free_port() -> int:
    """A loopback port nothing listens on right now, below the kernel's ephemeral range: a node
    restarted on it must bind it again, and a port the kernel hands out could by then be the
    source port of one of the other nodes' outgoing connections."""
    return free_port_range(1)


async def wait_for(predicate: Callable[[], bool], what: str, *, timeout: float = 5.0) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)


@dataclass
class Node:
    """A started network plus what its handlers saw."""

    name: str
    key: SigningKey
    network: Network
    #: (peer public key, kind, payload) of every frame a recording handler got.
    received: list[tuple[bytes, str, Any]] = field(default_factory=list)
    #: (peer public key, connected) of every ``on_peer_change`` call.
    peer_events: list[tuple[bytes, bool]] = field(default_factory=list)

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    def traffic(self, peer: bytes) -> TrafficStats:
        """This node's counters for ``peer`` (zeros before its first handshake)."""
        return self.network.stats.peers.get(peer, TrafficStats())

    def payloads(self, kind: str, *, sender: Node | None = None) -> list[Any]:
        return [
            payload
            for peer, frame_kind, payload in self.received
            if frame_kind == kind and (sender is None or peer == sender.public_key)
        ]


class Cluster:
    """Nodes named ``a``, ``b``, ...: fixed keys, one loopback port per name."""

    def __init__(self) -> None:
        self.ports: dict[str, int] = {}
        self.started: list[Network] = []

    def key(self, name: str) -> SigningKey:
        return key_named(name)

    def port(self, name: str) -> int:
        if name not in self.ports:
            self.ports[name] = free_port()
        return self.ports[name]

    def address(self, name: str) -> PeerAddress:
        return PeerAddress(key_named(name).public_key, HOST, self.port(name))

    async def start(
        self,
        name: str,
        *,
        peers: Iterable[str] = (),
        admitted: Iterable[str] = "abcdefgh",
        handlers: dict[str, Handler] | None = None,
        kinds: Iterable[str] = ("data",),
        limits: NetworkLimits = FAST_LIMITS,
        chain_id: str = CHAIN_ID,
        genesis_hash: bytes = GENESIS_HASH,
        via: dict[str, int] | None = None,
        hosts: dict[str, str] | None = None,
    ) -> Node:
        """Start node ``name`` with a recording handler for each of ``kinds``; ``via``
        names the port to dial some peers at instead of their own (e.g. a proxy's), and
        ``hosts`` the address some peers are configured at instead of ``HOST`` (e.g.
        127.0.0.2, where nothing listens: only their connections come from there)."""
        node = Node(name, key_named(name), network=None)  # type: ignore[arg-type]
        all_handlers: dict[str, Handler] = {kind: _recorder(node, kind) for kind in kinds}
        all_handlers.update(handlers or {})
        node.network = Network(
            key=node.key,
            chain_id=chain_id,
            genesis_hash=genesis_hash,
            listen_host=HOST,
            listen_port=self.port(name),
            peers=[PeerAddress(key_named(peer).public_key, (hosts or {}).get(peer, HOST),
                               (via or {}).get(peer) or self.port(peer))
                   for peer in peers],
            admitted=[key_named(other).public_key for other in admitted],
            handlers=all_handlers,
            on_peer_change=lambda peer, connected: node.peer_events.append((peer, connected)),
            limits=limits,
        )
        self.started.append(node.network)
        await node.network.start()
        return node

    async def stop_all(self) -> None:
        for network in reversed(self.started):
            await network.stop()


def _recorder(node: Node, kind: str) -> Handler:
    async def record(peer: bytes, payload: Any) -> None:
        node.received.append((peer, kind, payload))

    return record


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    cluster = Cluster()
    yield cluster
    await cluster.stop_all()


def limits(**changes: Any) -> NetworkLimits:
    """``FAST_LIMITS`` with some fields changed."""
    return replace(FAST_LIMITS, **changes)


@asynccontextmanager
async def raw_websocket(port: int, **options: Any) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A bare websocket to a node's ``/p2p``: the test speaks the protocol (or not) itself."""
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://{HOST}:{port}/p2p", **options) as websocket:
            yield websocket


async def next_close(websocket: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    """Read until the node closes the websocket; the close message."""
    async with asyncio.timeout(5):
        while True:
            message = await websocket.receive()
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return message


def identity(name: str, *, admitted: Iterable[str] = "abcdefgh", chain_id: str = CHAIN_ID,
             genesis_hash: bytes = GENESIS_HASH) -> Identity:
    """Who node ``name`` is on the test chain."""
    return Identity(
        key_named(name), chain_id, genesis_hash, frozenset(key_named(other).public_key for other in admitted)
    )


@asynccontextmanager
async def link_as(node: Node, name: str, **options: Any) -> AsyncIterator[ClientLink]:
    """An authenticated link to ``node`` opened as ``key_named(name)``; closed at the end."""
    link = await open_link(
        f"http://{HOST}:{node.network.listen_port}/p2p", identity(name), expected_public_key=node.public_key, **options
    )
    async with link:
        yield link


async def closed_by_node(link: ClientLink) -> None:
    """Read frames until the node ends the link (within 5 s)."""
    async with asyncio.timeout(5):
        while True:
            try:
                await link.receive_frame()
            except LinkClosed:
                return


class Proxy:
    """A TCP relay on a free loopback port to ``target_port``: it records the bytes of each
    direction, may alter them (``alter``), and can cut every connection or refuse new ones."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        #: Every byte relayed, per direction (``"out"``: client to target, ``"in"``: back).
        self.recorded: dict[str, bytearray] = {"out": bytearray(), "in": bytearray()}
        #: ``alter[direction](chunk)`` may return changed bytes.
        self.alter: dict[str, Callable[[bytes], bytes]] = {}
        self.refusing = False
        self.connections = 0
        #: Loop time of each relayed connection.
        self.connected_at: list[float] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._ends: dict[str, list[asyncio.StreamWriter]] = {"out": [], "in": []}
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, HOST, self.port)

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def inject(self, direction: str, data: bytes) -> None:
        """Write ``data`` into every relayed connection, towards the target (``"out"``) or back."""
        for writer in self._ends[direction]:
            writer.write(data)

    def cut(self) -> None:
        """Drop every relayed connection at once (both ends see it reset)."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            client_writer.transport.abort()
            return
        try:
            target_reader, target_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self.connections += 1
        self.connected_at.append(asyncio.get_running_loop().time())
        self._writers |= {client_writer, target_writer}
        self._ends["out"].append(target_writer)
        self._ends["in"].append(client_writer)
        pumps = [self._pump(client_reader, target_writer, "out"), self._pump(target_reader, client_writer, "in")]
        tasks = [asyncio.ensure_future(pump) for pump in pumps]
        self._tasks.update(tasks)
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for writer in (client_writer, target_writer):
            writer.transport.abort()
            self._writers.discard(writer)
        self._ends["out"].remove(target_writer)
        self._ends["in"].remove(client_writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str) -> None:
        try:
            while chunk := await reader.read(65536):
                self.recorded[direction] += chunk
                alter = self.alter.get(direction)
                writer.write(alter(chunk) if alter else chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass


@pytest.fixture
async def proxies() -> AsyncIterator[Callable[[int], Awaitable[Proxy]]]:
    """``await proxies(port)``: a started ``Proxy`` to ``port``, stopped at teardown."""
    started: list[Proxy] = []

    async def make(port: int) -> Proxy:
        proxy = Proxy(port)
        await proxy.start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        await proxy.stop()
