"""The attacker's end of the peer protocol: the only module that knows how peers
authenticate and what a frame on the wire looks like.

Everything that speaks to a node's ``/p2p`` endpoint goes through here:

- ``connect``: a link to a node, authenticated as the holder of a validator key
  (``mura.p2p.client.open_link``: the node's own handshake, every frame sealed);
- ``PeerLink``: send frames, receive frames, close;
- ``consensus_frame`` / ``transactions_frame``: frame bytes for a consensus
  message or a gossip batch;
- keyless work on the endpoint: ``open_unauthenticated`` (a websocket that never
  authenticates), ``fail_handshake`` (a handshake that is refused, several ways),
  ``upgrade_and_drop`` (a connection dropped during the websocket upgrade);
- ``relay_impersonation``: one client with no key connects to two validators and
  relays their handshakes (as they are, or with its own ephemeral keys in them),
  trying to be admitted by one as the other. Handshake protocol 2: a SIGMA
  exchange where the listener proves nothing before the dialer has, and each
  proof is a signature over both ephemeral keys, the roles and both node keys,
  sealed under the connection's keys.

When the handshake changes, this module is rewritten and the attacks are not.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from base64 import b64encode
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from yarl import URL

from mura.chain.keys import SigningKey
from mura.consensus.messages import Message, encode_message
from mura.p2p.channel import SEAL_OVERHEAD, FrameNotAuthentic, SecureChannel
from mura.p2p.client import ClientLink, open_link
from mura.p2p.client import LinkClosed as ClientLinkClosed
from mura.p2p.frames import DEFAULT_MAX_FRAME_SIZE, decode_frame, encode_frame
from mura.p2p.handshake import (
    AUTH,
    MAX_HANDSHAKE_FRAME_SIZE,
    PROTOCOL_VERSION,
    READY,
    Auth,
    HandshakeFailed,
    Hello,
    Identity,
    auth_message,
    derive_channel,
    handshake_as_dialer,
    transcript_hash,
)

#: The HTTP path of the peer endpoint.
PATH = "/p2p"
CONSENSUS_KIND = "consensus"
TRANSACTIONS_KIND = "transactions"
#: Largest frame this client reads: a node's frames are capped at its frame size.
MAX_RECEIVED_FRAME = DEFAULT_MAX_FRAME_SIZE


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

    #: Host name or address of the endpoint.
    host: str
    #: Its TCP port.
    port: int
    #: The node key the node proves in the handshake.
    public_key: bytes

    @property
    def url(self) -> str:
        return str(URL.build(scheme="http", host=self.host, port=self.port, path=PATH))


class Refused(Exception):
    """The node did not let this client in; the message says how it ended."""


class RelayRefused(Refused):
    """The victim did not admit the relay; ``endings`` says how each side's connection ended."""

    def __init__(self, message: str, *, endings: dict[str, str]) -> None:
        super().__init__(message)
        #: By side (``victim``, ``signer``): how the node ended the connection, or how the relay did.
        self.endings = endings


class LinkClosed(Exception):
    """The link ended; the message is the reason the node gave, if any."""


def _session(source_host: str | None) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(local_addr=(source_host, 0) if source_host else None, limit=0, force_close=True)
    return aiohttp.ClientSession(connector=connector)


class PeerLink:
    """An open, authenticated link to one node: frames in and out, sealed on the wire."""

    def __init__(self, session: aiohttp.ClientSession, link: ClientLink) -> None:
        self._session = session
        self._link = link
        #: The public key of the node at the other end.
        self.peer = link.peer_public_key
        #: Why the link ended, once it has (as the node said it, or how it broke).
        self.close_reason: str | None = None
        self.frames_sent = 0
        self.bytes_sent = 0

    @property
    def closed(self) -> bool:
        return self.close_reason is not None or self._link.closed

    async def send(self, frame: bytes, *, timeout: float = 30.0) -> None:
        """Seal and write one frame; ``LinkClosed`` if the link has ended, ``TimeoutError``
        if the node reads nothing. (A frame is written whole or not at all, so a timeout
        leaves the link's counters in step and the link usable.)"""
        if self.closed:
            raise LinkClosed(self.close_reason or "closed")
        try:
            async with asyncio.timeout(timeout):
                await self._link.send_frame(frame)
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as error:
            self._ended(f"sending failed: {error or type(error).__name__}")
            raise LinkClosed(self.close_reason or "closed") from None
        self.frames_sent += 1
        self.bytes_sent += len(frame)

    async def receive(self, timeout: float) -> bytes | None:
        """The next frame's bytes (opened), or None if none came within ``timeout``;
        ``LinkClosed`` once ended."""
        if self.close_reason is not None:
            raise LinkClosed(self.close_reason)
        try:
            return await self._link.receive_frame(timeout=timeout)
        except TimeoutError:
            return None
        except ClientLinkClosed as closed:
            code = "" if closed.code is None else f"code {closed.code}, "
            self._ended(f"closed by the node ({code}{closed})")
        except FrameNotAuthentic as error:
            self._ended(f"a frame from the node did not open: {error}")
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as error:
            self._ended(f"connection error: {error or type(error).__name__}")
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
                await self._link.close()
        except (TimeoutError, ConnectionError, RuntimeError, aiohttp.ClientError):
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


def _identity(key: SigningKey, testnet: Testnet, *, chain_id: str | None = None) -> Identity:
    return Identity(key, chain_id or testnet.chain_id, testnet.genesis_hash, frozenset(testnet.validators))


async def connect(
    endpoint: Endpoint, *, key: SigningKey, testnet: Testnet, source_host: str | None = None, timeout: float = 10.0
) -> PeerLink:
    """A link to ``endpoint`` authenticated as ``key`` (the node's own handshake); ``Refused`` if it fails."""
    session = _session(source_host)
    try:
        async with asyncio.timeout(timeout):
            link = await open_link(endpoint.url, _identity(key, testnet), expected_public_key=endpoint.public_key,
                                   timeout=timeout, max_frame_size=MAX_RECEIVED_FRAME, http=session)
    except (HandshakeFailed, aiohttp.ClientError, OSError, TimeoutError) as error:
        await session.close()
        raise Refused(str(error) or type(error).__name__) from None
    except BaseException:
        await session.close()
        raise
    return PeerLink(session, link)


async def _websocket(
    session: aiohttp.ClientSession, endpoint: Endpoint, *, timeout: float
) -> aiohttp.ClientWebSocketResponse:
    async with asyncio.timeout(timeout):
        return await session.ws_connect(endpoint.url, max_msg_size=MAX_RECEIVED_FRAME + SEAL_OVERHEAD, autoping=True,
                                        heartbeat=None)


def _ending(message: aiohttp.WSMessage) -> str:
    """How a connection ended, from the message that said so."""
    if message.type is aiohttp.WSMsgType.CLOSE:
        return f"closed ({message.data}: {message.extra or ''})"
    if message.type is aiohttp.WSMsgType.ERROR:
        return f"error: {message.data}"
    return f"closed ({message.type.name})"


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
            except TimeoutError:
                return None
            if message.type is not aiohttp.WSMsgType.BINARY:
                return _ending(message)
        return None

    async def close(self) -> None:
        try:
            async with asyncio.timeout(1):
                await self.websocket.close()
        except (TimeoutError, ConnectionError, RuntimeError, aiohttp.ClientError):
            pass
        await self._session.close()


async def open_unauthenticated(
    endpoint: Endpoint, *, source_host: str | None = None, timeout: float = 5.0
) -> Unauthenticated:
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
    """Open the endpoint and fail its handshake as ``variant`` says; how the node ended it.

    ``random_bytes``: 64 random bytes in place of a HELLO. ``wrong_chain_id``: the
    node's own handshake with a HELLO for another chain. ``unknown_key``: the whole
    handshake, correctly signed, by a key that is neither a validator nor an observer.
    """
    connection = await open_unauthenticated(endpoint, timeout=timeout)
    try:
        if variant == "random_bytes":
            await connection.send(os.urandom(64))
        elif variant in ("wrong_chain_id", "unknown_key"):
            chain_id = testnet.chain_id + "-other" if variant == "wrong_chain_id" else None
            identity = _identity(SigningKey.generate(), testnet, chain_id=chain_id)
            try:
                await handshake_as_dialer(connection.websocket, identity, expected_public_key=endpoint.public_key,
                                          timeout=timeout)
            except HandshakeFailed as refusal:
                return str(refusal)
            return "admitted"
        else:
            raise ValueError(f"unknown handshake failure {variant!r}; known: {', '.join(HANDSHAKE_FAILURES)}")
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
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()
    del reader


# --- the relay -------------------------------------------------------------------------

#: The ways ``relay_impersonation`` tries to be admitted by the victim as the signer:
#: ``forward`` opens the signer's exchange with a HELLO of its own and then forwards
#: every message both ways (the signer's HELLO becomes the victim's dialer HELLO);
#: ``forward_back`` opens the victim's exchange instead (the victim's HELLO becomes the
#: signer's dialer HELLO); ``substitute`` runs each exchange with its own ephemeral key
#: in the HELLO, so that it can open and seal on both connections, and carries proofs
#: across: the one it can get from either side, else one in the other's name.
RELAY_VARIANTS = ("forward", "forward_back", "substitute")


class _Relayed:
    """Both of the relay's connections, and how each ended."""

    def __init__(self, to_victim: aiohttp.ClientWebSocketResponse, to_signer: aiohttp.ClientWebSocketResponse) -> None:
        self.to_victim = to_victim
        self.to_signer = to_signer
        self.endings: dict[str, str] = {}
        #: Websocket messages carried across, by the side that sent them.
        self.forwarded = {"victim": 0, "signer": 0}

    def refused(self) -> RelayRefused:
        endings = {side: self.endings.get(side, "still open") for side in ("victim", "signer")}
        said = "; ".join(f"{side}: {ending}" for side, ending in endings.items())
        return RelayRefused(f"{said} (forwarded {self.forwarded['signer']} to the victim, "
                            f"{self.forwarded['victim']} to the signer)", endings=endings)


def _fresh_hello(testnet: Testnet) -> tuple[X25519PrivateKey, bytes]:
    ephemeral = X25519PrivateKey.generate()
    public = ephemeral.public_key().public_bytes_raw()
    return ephemeral, Hello(PROTOCOL_VERSION, testnet.chain_id, testnet.genesis_hash, public).encode()


def _ephemeral_of(hello: bytes) -> bytes:
    return Hello.decode(decode_frame(hello, max_size=MAX_HANDSHAKE_FRAME_SIZE).payload).ephemeral_key


async def _next_binary(websocket: aiohttp.ClientWebSocketResponse, timeout: float) -> bytes | str:
    """The next message's bytes, or how the connection ended (``timeout``: still silent)."""
    try:
        message = await websocket.receive(timeout=timeout)
    except TimeoutError:
        return f"silent for {timeout:g} s"
    if message.type is aiohttp.WSMsgType.BINARY:
        return bytes(message.data)
    return _ending(message)


async def _pump(relayed: _Relayed, side: str, source: aiohttp.ClientWebSocketResponse,
                target: aiohttp.ClientWebSocketResponse) -> None:
    """Forward every message from ``source`` to ``target`` until ``source`` ends."""
    while True:
        received = await _next_binary(source, timeout=60)
        if isinstance(received, str):
            relayed.endings.setdefault(side, received)
            return
        try:
            await target.send_bytes(received)
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            return
        relayed.forwarded[side] += 1


async def _forward(relayed: _Relayed, testnet: Testnet, *, open_victim: bool, timeout: float) -> None:
    """Open one exchange with a HELLO of the relay's own, then forward both ways until a
    side hangs up (the relay passes the hang-up on) or ``timeout``."""
    _, hello = _fresh_hello(testnet)
    await (relayed.to_victim if open_victim else relayed.to_signer).send_bytes(hello)
    pumps = [
        asyncio.create_task(_pump(relayed, "victim", relayed.to_victim, relayed.to_signer)),
        asyncio.create_task(_pump(relayed, "signer", relayed.to_signer, relayed.to_victim)),
    ]
    try:
        await asyncio.wait(pumps, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        # The other side may still say its own verdict; then the relay hangs up on it.
        await asyncio.wait(pumps, timeout=1.0)
        why = "the other side had ended" if relayed.endings else f"both were silent for {timeout:g} s"
        for side in ("victim", "signer"):
            relayed.endings.setdefault(side, f"hung up on by the relay ({why})")
    finally:
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


def _proof(auth_bytes: bytes, channel: SecureChannel) -> Auth | None:
    """An AUTH opened under ``channel``; None if it does not open or decode."""
    try:
        frame = decode_frame(channel.open(auth_bytes), max_size=MAX_HANDSHAKE_FRAME_SIZE)
        return Auth.decode(frame.payload) if frame.kind == AUTH else None
    except Exception:
        return None


def _forged_proof(testnet: Testnet, transcript: bytes, *, claimed: bytes, other: bytes) -> Auth:
    """A dialer's AUTH in ``claimed``'s name for this transcript, signed by a key of the relay's own."""
    message = auth_message(chain_id=testnet.chain_id, genesis_hash=testnet.genesis_hash, transcript=transcript,
                           role="dialer", signer=claimed, other=other)
    return Auth(claimed, SigningKey.generate().sign(message))


async def _substitute(relayed: _Relayed, victim: Endpoint, signer: Endpoint, testnet: Testnet, *,
                      timeout: float) -> SecureChannel | None:
    """Both exchanges with the relay's ephemeral keys; the channel to the victim if the
    victim proved itself to the relay as the signer's dialer (it admitted the relay)."""
    channels: dict[str, tuple[SecureChannel, bytes]] = {}
    for side, websocket in (("signer", relayed.to_signer), ("victim", relayed.to_victim)):
        ephemeral, hello = _fresh_hello(testnet)
        await websocket.send_bytes(hello)
        answer = await _next_binary(websocket, timeout)
        if isinstance(answer, str):
            relayed.endings[side] = answer
            return None
        transcript = transcript_hash(hello, answer)
        channels[side] = derive_channel(ephemeral, _ephemeral_of(answer), transcript, "dialer"), transcript
    (with_signer, signer_transcript), (with_victim, victim_transcript) = channels["signer"], channels["victim"]
    # A listener signs only once its dialer proved itself. Offer the signer a proof in the
    # victim's name; had it accepted, its own AUTH would be what the victim must see.
    await relayed.to_signer.send_bytes(with_signer.seal(
        _forged_proof(testnet, signer_transcript, claimed=victim.public_key, other=signer.public_key).encode()))
    answer = await _next_binary(relayed.to_signer, timeout)
    signer_proof = None if isinstance(answer, str) else _proof(answer, with_signer)
    if isinstance(answer, str):
        relayed.endings["signer"] = answer
    if signer_proof is None:
        signer_proof = _forged_proof(testnet, victim_transcript, claimed=signer.public_key, other=victim.public_key)
    else:
        relayed.forwarded["signer"] += 1
    await relayed.to_victim.send_bytes(with_victim.seal(signer_proof.encode()))
    answer = await _next_binary(relayed.to_victim, timeout)
    if isinstance(answer, str):
        relayed.endings["victim"] = answer
        return None
    if _proof(answer, with_victim) is None:
        relayed.endings["victim"] = "sent something that is not its AUTH"
        return None
    await relayed.to_victim.send_bytes(with_victim.seal(encode_frame(READY, b"")))
    return with_victim


async def relay_impersonation(
    victim: Endpoint, signer: Endpoint, *, testnet: Testnet, variant: str, timeout: float = 5.0,
    source_host: str | None = None
) -> PeerLink:
    """A link to ``victim`` on which it believes it speaks to ``signer``, opened with no key,
    the way ``variant`` (one of ``RELAY_VARIANTS``) says.

    Only ``substitute`` could yield a link the relay can use; a forwarding relay can
    at best carry a link it cannot read. ``RelayRefused``, saying how each side ended, when
    the victim does not admit the relay (protocol 2 refuses every variant: neither
    validator signs anything until its dialer proved itself, and a proof is bound to
    the ephemeral keys, roles and node keys of the connection it was made on).
    """
    if variant not in RELAY_VARIANTS:
        raise ValueError(f"unknown relay variant {variant!r}; known: {', '.join(RELAY_VARIANTS)}")
    to_victim = _session(source_host)
    to_signer = _session(source_host)
    admitted = False
    try:
        relayed = _Relayed(await _websocket(to_victim, victim, timeout=timeout),
                           await _websocket(to_signer, signer, timeout=timeout))
        if variant == "substitute":
            channel = await _substitute(relayed, victim, signer, testnet, timeout=timeout)
            if channel is not None:
                admitted = True
                link = ClientLink(relayed.to_victim, channel, peer_public_key=victim.public_key, http=None)
                return PeerLink(to_victim, link)
        else:
            await _forward(relayed, testnet, open_victim=variant == "forward_back", timeout=timeout + 2)
        raise relayed.refused()
    except Refused:
        raise
    except Exception as error:
        raise Refused(f"{type(error).__name__}: {error}") from None
    finally:
        await to_signer.close()
        if not admitted:
            await to_victim.close()
