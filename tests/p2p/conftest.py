"""Factories for the p2p tests: keys by name, free loopback ports, real networks
with teardown, a raw websocket client, and ``wait_for`` (poll a condition with
a deadline; never sleep a fixed time).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import pytest

from mura.chain.keys import SigningKey, sha256
from mura.p2p.accounting import TrafficStats
from mura.p2p.frames import decode_frame, encode_frame
from mura.p2p.handshake import PROOF, PROTOCOL_VERSION, Hello, proof_message
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
    """A loopback port nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


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
    ) -> Node:
        """Start node ``name`` with a recording handler for each of ``kinds``."""
        node = Node(name, key_named(name), network=None)  # type: ignore[arg-type]
        all_handlers: dict[str, Handler] = {kind: _recorder(node, kind) for kind in kinds}
        all_handlers.update(handlers or {})
        node.network = Network(
            key=node.key,
            chain_id=chain_id,
            genesis_hash=genesis_hash,
            listen_host=HOST,
            listen_port=self.port(name),
            peers=[self.address(peer) for peer in peers],
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




def hello_from(key: SigningKey, **changes: Any) -> Hello:
    """A HELLO as ``key`` on the test chain, with ``changes`` applied."""
    return replace(Hello(PROTOCOL_VERSION, CHAIN_ID, GENESIS_HASH, key.public_key, os.urandom(32)), **changes)


async def exchange_hello(websocket: aiohttp.ClientWebSocketResponse, hello: Hello) -> Hello:
    """Send ``hello``, return the node's."""
    await websocket.send_bytes(hello.encode())
    message = await websocket.receive()
    return Hello.decode(decode_frame(message.data).payload)


async def send_proof(
    websocket: aiohttp.ClientWebSocketResponse,
    key: SigningKey,
    ours: Hello,
    theirs: Hello,
    *,
    nonce: bytes | None = None,
) -> None:
    """Sign the proof for ``theirs`` (or over ``nonce``, to forge one) and send it."""
    message = proof_message(
        chain_id=CHAIN_ID,
        genesis_hash=GENESIS_HASH,
        nonce=nonce or theirs.nonce,
        signer=ours.public_key,
        verifier=theirs.public_key,
    )
    await websocket.send_bytes(encode_frame(PROOF, key.sign(message)))


async def complete_handshake(websocket: aiohttp.ClientWebSocketResponse, key: SigningKey) -> None:
    """Authenticate a raw client as ``key``, then leave the websocket to the test."""
    ours = hello_from(key)
    theirs = await exchange_hello(websocket, ours)
    await send_proof(websocket, key, ours, theirs)
    message = await websocket.receive()
    assert decode_frame(message.data).kind == PROOF, message
