"""The attacker's end of the peer protocol: the only module that knows how peers
authenticate and what a frame on the wire looks like.

Everything that speaks to a node's ``/p2p`` endpoint goes through here:

- ``connect``: a link to a node, authenticated as the holder of a validator key;
- ``PeerLink``: send raw frame bytes, receive frames, close;
- ``consensus_frame`` / ``transactions_frame``: frame bytes for a consensus
  message or a gossip batch;
- keyless work on the endpoint: ``open_unauthenticated`` (a websocket that never
  authenticates), ``fail_handshake`` (a handshake that is refused, several ways),
  ``upgrade_and_drop`` (a connection dropped during the websocket upgrade);
- ``relay_impersonation``: one client with no key relays one validator's proof
  to another, against handshake protocol 1 (each side signs the nonce the other chose).

When the handshake changes, this module is rewritten and the attacks are not.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import struct
from base64 import b64encode
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from mura.chain.keys import SigningKey
from mura.consensus.messages import Message, encode_message
from mura.p2p.frames import DEFAULT_MAX_FRAME_SIZE, decode_frame, encode_frame
from mura.p2p.handshake import (
    HELLO,
    MAX_HANDSHAKE_FRAME_SIZE,
    NONCE_SIZE,
    PROOF,
    PROTOCOL_VERSION,
    HandshakeFailed,
    Hello,
    Identity,
    perform_handshake,
)

#: The HTTP path of the peer endpoint.
PATH = "/p2p"
CONSENSUS_KIND = "consensus"
TRANSACTIONS_KIND = "transactions"
#: Largest frame this client reads: a node's answers are capped at its frame size.
MAX_RECEIVED_FRAME = DEFAULT_MAX_FRAME_SIZE + 1024


@dataclass(frozen=True, slots=True)
class Testnet:
    """What anyone can learn about a network from its genesis file."""

    #: The network's chain id.
    chain_id: str
    #: Hash of its genesis block.
    genesis_hash: bytes
    #: The validators' public keys, in genesis order.
    validators: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A node's peer endpoint and the key it proves there."""

    host: str
    port: int
    public_key: bytes


class Refused(Exception):
    """The node did not let this client in; the message says how it ended."""


class LinkClosed(Exception):
    """The link ended; the message is the reason the node gave, if any."""


class PeerLink:
    """An open link to one node: raw frames in and out."""

    def __init__(self, session: aiohttp.ClientSession, websocket: aiohttp.ClientWebSocketResponse, *, peer: bytes) -> None:
        self._session = session
        self._websocket = websocket
        #: The public key of the node at the other end.
        self.peer = peer
        #: Why the link ended, once it has (as the node said it, or how it broke).
        self.close_reason: str | None = None
        self.frames_sent = 0
        self.bytes_sent = 0

    @property
    def closed(self) -> bool:
        return self.close_reason is not None or self._websocket.closed

    async def send(self, frame: bytes, *, timeout: float = 30.0) -> None:
        """Write one frame; ``LinkClosed`` if the link has ended, ``TimeoutError`` if the node reads nothing."""
        if self.closed:
            raise LinkClosed(self.close_reason or "closed")
        try:
            async with asyncio.timeout(timeout):
                await self._websocket.send_bytes(frame)
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as error:
            self._ended(f"sending failed: {error or type(error).__name__}")
            raise LinkClosed(self.close_reason or "closed") from None
        self.frames_sent += 1
        self.bytes_sent += len(frame)

    async def receive(self, timeout: float) -> bytes | None:
        """The next frame's bytes, or None if none came within ``timeout``; ``LinkClosed`` once ended."""
        if self.close_reason is not None:
            raise LinkClosed(self.close_reason)
        try:
            message = await self._websocket.receive(timeout=timeout)
        except (TimeoutError, asyncio.TimeoutError):
            return None
        if message.type is aiohttp.WSMsgType.BINARY:
            return bytes(message.data)
        if message.type is aiohttp.WSMsgType.CLOSE:
            self._ended(f"closed by the node (code {message.data}: {message.extra or ''})")
        elif message.type is aiohttp.WSMsgType.ERROR:
            self._ended(f"connection error: {message.data}")
        elif message.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            self._ended("connection closed")
        else:
            return b""  # a text message: nothing a node sends; ignored
        raise LinkClosed(self.close_reason or "closed")

    async def wait_closed(self, within: float) -> str | None:
        """Read (and drop) frames until the node closes the link; its reason, or None if
        the link was still open after ``within`` seconds."""
        deadline = asyncio.get_running_loop().time() + within
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                await self.receive(timeout=remaining)
            except LinkClosed as closed:
                return str(closed)
        return None

    async def close(self) -> None:
        """Close the link and its session; idempotent."""
        self._ended("closed by this client")
        try:
            async with asyncio.timeout(2):
                await self._websocket.close()
        except (TimeoutError, ConnectionError, aiohttp.ClientError):
            pass
        await self._session.close()

    def _ended(self, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = reason


# --- frames --------------------------------------------------------------------------


def consensus_frame(message: Message) -> bytes:
    """The frame that carries one consensus message."""
    return encode_frame(CONSENSUS_KIND, encode_message(message))


def raw_consensus_frame(payload: bytes) -> bytes:
    """A consensus frame around already encoded (or deliberately broken) message bytes."""
    return encode_frame(CONSENSUS_KIND, payload)


def transactions_frame(encoded_transactions: Sequence[bytes]) -> bytes:
    """A gossip frame carrying encoded transactions."""
    return encode_frame(TRANSACTIONS_KIND, list(encoded_transactions))


def unknown_kind_frame(index: int) -> bytes:
    """A well-formed frame of a kind no node handles: malformed by the receiver's rules."""
    return encode_frame("no-such-kind", index)


def frame_payload(frame: bytes, kind: str) -> Any | None:
    """The payload of a received ``kind`` frame, None for another kind or bytes that do not decode."""
    try:
        decoded = decode_frame(frame, max_size=MAX_RECEIVED_FRAME)
    except Exception:
        return None
    return decoded.payload if decoded.kind == kind else None


# --- links ---------------------------------------------------------------------------


def _session(source_host: str | None) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(local_addr=(source_host, 0) if source_host else None, limit=0, force_close=True)
    return aiohttp.ClientSession(connector=connector)


async def _websocket(session: aiohttp.ClientSession, endpoint: Endpoint, *, timeout: float) -> aiohttp.ClientWebSocketResponse:
    url = URL.build(scheme="http", host=endpoint.host, port=endpoint.port, path=PATH)
    async with asyncio.timeout(timeout):
        return await session.ws_connect(url, max_msg_size=MAX_RECEIVED_FRAME, autoping=True, heartbeat=None)


async def connect(
    endpoint: Endpoint, *, key: SigningKey, testnet: Testnet, source_host: str | None = None, timeout: float = 10.0
) -> PeerLink:
    """A link to ``endpoint`` authenticated as ``key`` (the node's own handshake); ``Refused`` if it fails."""
    session = _session(source_host)
    try:
        websocket = await _websocket(session, endpoint, timeout=timeout)
        identity = Identity(key, testnet.chain_id, testnet.genesis_hash, frozenset(testnet.validators))
        peer = await perform_handshake(websocket, identity, timeout=timeout, expected_public_key=endpoint.public_key)
    except (HandshakeFailed, aiohttp.ClientError, OSError, TimeoutError) as error:
        await session.close()
        raise Refused(str(error) or type(error).__name__) from None
    except BaseException:
        await session.close()
        raise
    link = PeerLink(session, websocket, peer=peer)
    return link


class Unauthenticated:
    """A websocket to ``/p2p`` that never authenticates (it may send anything)."""

    def __init__(self, session: aiohttp.ClientSession, websocket: aiohttp.ClientWebSocketResponse) -> None:
        self._session = session
        self.websocket = websocket

    async def send(self, data: bytes) -> None:
        await self.websocket.send_bytes(data)

    async def wait_closed(self, timeout: float) -> str | None:
        """How the node ended the connection (None if it was still open after ``timeout``)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                message = await self.websocket.receive(timeout=remaining)
            except (TimeoutError, asyncio.TimeoutError):
                return None
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return f"closed ({message.data}: {message.extra or ''})"
            if message.type is aiohttp.WSMsgType.ERROR:
                return f"error: {message.data}"
        return None

    async def close(self) -> None:
        try:
            async with asyncio.timeout(1):
                await self.websocket.close()
        except (TimeoutError, ConnectionError, aiohttp.ClientError):
            pass
        await self._session.close()


async def open_unauthenticated(endpoint: Endpoint, *, source_host: str | None = None, timeout: float = 5.0) -> Unauthenticated:
    """A websocket to the endpoint with nothing sent on it; raises ``Refused`` when the node turns it away."""
    session = _session(source_host)
    try:
        websocket = await _websocket(session, endpoint, timeout=timeout)
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        await session.close()
        raise Refused(str(error) or type(error).__name__) from None
    except BaseException:
        await session.close()
        raise
    return Unauthenticated(session, websocket)


#: The ways ``fail_handshake`` gets refused.
HANDSHAKE_FAILURES = ("random_bytes", "wrong_chain_id", "unknown_key")


async def fail_handshake(endpoint: Endpoint, variant: str, *, testnet: Testnet, timeout: float = 10.0) -> str:
    """Open the endpoint and fail its handshake as ``variant`` says; how the node ended it."""
    connection = await open_unauthenticated(endpoint, timeout=timeout)
    try:
        if variant == "random_bytes":
            await connection.send(os.urandom(64))
        else:
            key = SigningKey.generate()
            chain_id = testnet.chain_id + "-other" if variant == "wrong_chain_id" else testnet.chain_id
            hello = Hello(PROTOCOL_VERSION, chain_id, testnet.genesis_hash, key.public_key, secrets.token_bytes(NONCE_SIZE))
            await connection.send(hello.encode())
        return await connection.wait_closed(timeout) or "still open"
    finally:
        await connection.close()


async def upgrade_and_drop(endpoint: Endpoint, *, reset: bool) -> None:
    """Send a websocket upgrade request for the endpoint and drop the connection before
    the answer: with ``reset`` by a TCP reset at once, else by a close after the request."""
    reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
    key = b64encode(os.urandom(16)).decode()
    request = (
        f"GET {PATH} HTTP/1.1\r\nHost: {endpoint.host}:{endpoint.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    writer.write(request.encode())
    await writer.drain()
    if reset:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass
    del reader


# --- the relay -------------------------------------------------------------------------


async def _read_handshake_frame(websocket: aiohttp.ClientWebSocketResponse, kind: str, timeout: float) -> Any:
    message = await websocket.receive(timeout=timeout)
    if message.type is not aiohttp.WSMsgType.BINARY:
        raise Refused(f"expected {kind}, the node sent {message.type.name} {message.extra or ''}".strip())
    frame = decode_frame(message.data, max_size=MAX_HANDSHAKE_FRAME_SIZE)
    if frame.kind != kind:
        raise Refused(f"expected {kind}, the node sent a {frame.kind!r} frame")
    return frame.payload


async def relay_impersonation(
    victim: Endpoint, signer: Endpoint, *, testnet: Testnet, timeout: float = 5.0, source_host: str | None = None
) -> PeerLink:
    """A link to ``victim`` on which it believes it speaks to ``signer``, opened with no key.

    Handshake protocol 1 has each side sign the other's nonce: the client reads the
    victim's HELLO nonce, presents it to the signer as if it were the victim, lets the
    signer sign its proof for the victim, and hands that proof to the victim under the
    signer's name. ``Refused`` when either node will not play along (a handshake that
    binds the proof to its own connection refuses here).
    """
    to_victim = _session(source_host)
    to_signer = _session(source_host)
    try:
        victim_socket = await _websocket(to_victim, victim, timeout=timeout)
        victim_hello = Hello.decode(await _read_handshake_frame(victim_socket, HELLO, timeout))
        signer_socket = await _websocket(to_signer, signer, timeout=timeout)
        posing_as_victim = Hello(PROTOCOL_VERSION, testnet.chain_id, testnet.genesis_hash, victim_hello.public_key,
                                 victim_hello.nonce)
        await signer_socket.send_bytes(posing_as_victim.encode())
        await _read_handshake_frame(signer_socket, HELLO, timeout)
        signer_proof = await _read_handshake_frame(signer_socket, PROOF, timeout)
        posing_as_signer = Hello(PROTOCOL_VERSION, testnet.chain_id, testnet.genesis_hash, signer.public_key,
                                 secrets.token_bytes(NONCE_SIZE))
        await victim_socket.send_bytes(posing_as_signer.encode())
        await _read_handshake_frame(victim_socket, PROOF, timeout)
        await victim_socket.send_bytes(encode_frame(PROOF, signer_proof, max_size=MAX_HANDSHAKE_FRAME_SIZE))
    except Refused:
        await to_victim.close()
        raise
    except Exception as error:
        await to_victim.close()
        raise Refused(f"{type(error).__name__}: {error}") from None
    finally:
        await to_signer.close()
    return PeerLink(to_victim, victim_socket, peer=victim.public_key)
