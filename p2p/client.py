"""Open one authenticated, encrypted link as a given key and speak raw frames on it.

For tests, tools and attack harnesses that act as a validator, honest or not:
``open_link`` dials a node's ``/p2p`` endpoint, runs the same handshake as a
``Network`` does (``mura.p2p.handshake``) and returns a ``ClientLink`` whose
frames are sealed and opened exactly as a node's are::

    identity = Identity(key, chain_id, genesis_hash, admitted)
    async with await open_link(url, identity, expected_public_key=node_key) as link:
        await link.send_frame(encode_frame("consensus", payload))
        reply = decode_frame(await link.receive_frame(timeout=5))

``send_frame`` takes any bytes (a frame a node would refuse as malformed
counts against ``identity``'s key, as it should); ``send_unsealed`` puts bytes
on the wire without sealing them, as someone tampering on the path would.
A node never uses this module.
"""

from __future__ import annotations

from types import TracebackType

import aiohttp

from mura.p2p.channel import SEAL_OVERHEAD, SecureChannel
from mura.p2p.frames import DEFAULT_MAX_FRAME_SIZE
from mura.p2p.handshake import PRE_AUTHENTICATION_BYTES, HandshakeFailed, Identity, handshake_as_dialer
from mura.p2p.read_gate import gate_client_reads


class LinkClosed(Exception):
    """The link ended while waiting for a frame; the message says how."""

    def __init__(self, message: str, *, code: int | None) -> None:
        super().__init__(message)
        #: The websocket close code the node sent, if any.
        self.code = code


class ClientLink:
    """An authenticated link to ``peer_public_key``; ``close()`` it when done."""

    def __init__(
        self,
        websocket: aiohttp.ClientWebSocketResponse,
        channel: SecureChannel,
        *,
        peer_public_key: bytes,
        http: aiohttp.ClientSession | None,
    ) -> None:
        self.peer_public_key = peer_public_key
        #: The link's channel: its counters show how many frames went each way.
        self.channel = channel
        #: The websocket itself, for what the methods below do not cover.
        self.websocket = websocket
        self._http = http

    @property
    def closed(self) -> bool:
        return self.websocket.closed

    @property
    def close_code(self) -> int | None:
        return self.websocket.close_code

    async def send_frame(self, frame: bytes) -> None:
        """Seal ``frame`` (any bytes, usually ``encode_frame(kind, payload)``) and send it."""
        await self.websocket.send_bytes(self.channel.seal(frame))

    async def send_unsealed(self, data: bytes) -> None:
        """Send ``data`` as a websocket message without sealing it."""
        await self.websocket.send_bytes(data)

    async def receive_frame(self, *, timeout: float | None = None) -> bytes:
        """The next frame from the node, opened; ``LinkClosed`` once the link ends,
        ``FrameNotAuthentic`` if a message does not open, ``TimeoutError`` past ``timeout``."""
        message = await self.websocket.receive(timeout=timeout)
        if message.type is aiohttp.WSMsgType.BINARY:
            return self.channel.open(message.data)
        if message.type is aiohttp.WSMsgType.ERROR:
            raise LinkClosed(f"connection error: {message.data}", code=self.websocket.close_code)
        detail = f": {message.extra}" if message.extra else ""
        raise LinkClosed(f"the link ended ({message.type.name}{detail})", code=self.websocket.close_code)

    async def close(self) -> None:
        """Close the websocket (and the HTTP client ``open_link`` made for it); idempotent."""
        await self.websocket.close()
        if self._http is not None:
            await self._http.close()

    async def __aenter__(self) -> ClientLink:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()


async def open_link(
    url: str,
    identity: Identity,
    *,
    expected_public_key: bytes,
    timeout: float = 5.0,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    local_host: str | None = None,
    http: aiohttp.ClientSession | None = None,
    autoping: bool = True,
) -> ClientLink:
    """Dial ``url`` (e.g. ``http://127.0.0.1:9700/p2p``) as ``identity`` and authenticate
    the node there, which must prove ``expected_public_key``.

    ``local_host`` binds the source address (e.g. ``127.0.0.2``); ``http`` reuses a
    client instead of making one; ``autoping=False`` leaves the node's pings
    unanswered. Raises ``HandshakeFailed`` when the node refuses
    or fails the handshake, and aiohttp's errors when it cannot be reached.
    """
    owned = None
    if http is None:
        connector = aiohttp.TCPConnector(local_addr=(local_host, 0) if local_host else None)
        http = owned = aiohttp.ClientSession(connector=connector)
    try:
        websocket = await http.ws_connect(url, max_msg_size=max_frame_size + SEAL_OVERHEAD, autoping=autoping)
        gate = gate_client_reads(websocket, budget=PRE_AUTHENTICATION_BYTES)
        try:
            authenticated = await handshake_as_dialer(
                websocket,
                identity,
                expected_public_key=expected_public_key,
                timeout=timeout,
                on_authenticated=gate.open,
            )
        except HandshakeFailed:
            await websocket.close()
            raise
    except BaseException:
        if owned is not None:
            await owned.close()
        raise
    return ClientLink(websocket, authenticated.channel, peer_public_key=authenticated.peer_public_key, http=owned)
