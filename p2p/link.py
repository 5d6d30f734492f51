"""One authenticated, encrypted websocket connection to a peer.

A link reads frames in the task that serves it (so frames from one peer are
handled in order, and a slow handler slows only that peer) and writes them
from its own writer task, fed by a bounded ``Outbox`` (so queueing a frame
never waits on the network). Frames are queued in the clear and sealed by the
writer as they go out, so the channel's counter follows the order on the wire.

Every message read must open under the link's ``SecureChannel``. One that
does not (altered, replayed or injected on the path), a text message or an
oversized one cannot be attributed to the peer: the link ends, and the
message never counts towards the peer's ban.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiohttp

from mura.p2p.accounting import Accounting
from mura.p2p.channel import FrameNotAuthentic, SecureChannel
from mura.p2p.handshake import WebSocket
from mura.p2p.outbox import Outbox

log = logging.getLogger(__name__)

#: The websocket close reason is at most 123 bytes.
_MAX_CLOSE_MESSAGE = 123


def short_key(public_key: bytes) -> str:
    """The first 8 hex digits of a key: enough to tell peers apart in a log line."""
    return public_key.hex()[:8]


class Link:
    """An authenticated connection to ``peer_public_key``."""

    def __init__(
        self,
        websocket: WebSocket,
        *,
        channel: SecureChannel,
        peer_public_key: bytes,
        initiator: bytes,
        remote: str,
        outbox: Outbox,
        accounting: Accounting,
        send_timeout: float,
        close_timeout: float,
    ) -> None:
        self.peer_public_key = peer_public_key
        #: Public key of the side that dialed: decides which of two links survives.
        self.initiator = initiator
        #: ``host:port`` of the other end, for log lines.
        self.remote = remote
        self._websocket = websocket
        self._channel = channel
        self._outbox = outbox
        self._accounting = accounting
        self._send_timeout = send_timeout
        self._close_timeout = close_timeout
        self._close_code: int = aiohttp.WSCloseCode.OK
        self._close_reason: str | None = None
        self._writer_closing = False
        self._done = asyncio.Event()

    @property
    def close_reason(self) -> str:
        return self._close_reason or "closed"

    @property
    def queued_frames(self) -> int:
        """Frames waiting to be written."""
        return len(self._outbox)

    @property
    def closing(self) -> bool:
        return self._close_reason is not None

    def enqueue(self, data: bytes, *, droppable: bool) -> bool:
        """Queue an encoded frame; False when it was dropped (a droppable frame that does
        not fit, or a link closing). Raises ``OutboxOverflow`` if the peer cannot keep up."""
        dropped = self._outbox.put(data, droppable=droppable)
        if dropped:
            self._accounting.add(self.peer_public_key, "dropped", dropped)
        return self._outbox.queued_last

    def hand_over(self, successor: Link) -> None:
        """Move the frames still queued here to ``successor``, which replaces this link."""
        for frame in self._outbox.take_all():
            successor.enqueue(frame.data, droppable=frame.droppable)

    def close_soon(self, reason: str, *, code: int = aiohttp.WSCloseCode.GOING_AWAY) -> None:
        """Ask the link to close, telling the peer ``reason``; returns at once."""
        self._note_end(reason, code=code)
        self._outbox.close()

    async def refuse(self, reason: str, *, code: int = aiohttp.WSCloseCode.GOING_AWAY) -> None:
        """Close a link that was never served, telling the peer ``reason``."""
        self.close_soon(reason, code=code)
        await self._close_websocket()
        self._done.set()

    async def wait_closed(self) -> None:
        await self._done.wait()

    async def serve(
        self,
        on_frame: Callable[[Link, bytes], Awaitable[None]],
        on_not_authentic: Callable[[Link, str], None],
    ) -> None:
        """Read and dispatch frames until the link ends, then close it.

        ``on_frame`` gets each opened frame; ``on_not_authentic`` is told why a
        message that could not be attributed to the peer ended the link.
        """
        writer = asyncio.create_task(self._write_loop(), name=f"p2p-writer-{short_key(self.peer_public_key)}")
        try:
            await self._read_loop(on_frame, on_not_authentic)
        finally:
            try:
                await self._shut_down(writer)
            finally:
                self._done.set()

    async def _shut_down(self, writer: asyncio.Task[None]) -> None:
        """Stop the writer (letting it finish a close it started) and close the websocket."""
        self._outbox.close()
        if not self._writer_closing:
            writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await self._close_websocket()

    async def _read_loop(
        self,
        on_frame: Callable[[Link, bytes], Awaitable[None]],
        on_not_authentic: Callable[[Link, str], None],
    ) -> None:
        while True:
            message = await self._websocket.receive()
            if message.type is not aiohttp.WSMsgType.BINARY:
                self._end_on(message, on_not_authentic)
                return
            try:
                frame = self._channel.open(message.data)
            except FrameNotAuthentic as problem:
                self._end_not_authentic(on_not_authentic, str(problem))
                return
            self._accounting.add(self.peer_public_key, "frames_in")
            self._accounting.add(self.peer_public_key, "bytes_in", len(frame))
            await on_frame(self, frame)

    def _end_on(self, message: aiohttp.WSMessage, on_not_authentic: Callable[[Link, str], None]) -> None:
        """The link ends on ``message``, which is not a frame."""
        if message.type is aiohttp.WSMsgType.TEXT:
            self._end_not_authentic(on_not_authentic, "a text message (every frame is sealed binary)")
        elif message.type is aiohttp.WSMsgType.ERROR:
            error = message.data
            if getattr(error, "code", None) == aiohttp.WSCloseCode.MESSAGE_TOO_BIG:
                self._end_not_authentic(on_not_authentic, f"an oversized message: {error}")
            else:
                self._note_end(f"connection error: {error or type(error).__name__}")
        else:
            self._note_end(_describe_close(message))

    def _end_not_authentic(self, on_not_authentic: Callable[[Link, str], None], reason: str) -> None:
        self._accounting.add(self.peer_public_key, "not_authentic")
        self._note_end(f"not authentic: {reason}", code=aiohttp.WSCloseCode.POLICY_VIOLATION)
        on_not_authentic(self, reason)

    async def _write_loop(self) -> None:
        while (data := await self._outbox.get()) is not None:
            try:
                async with asyncio.timeout(self._send_timeout):
                    await self._websocket.send_bytes(self._channel.seal(data))
            except TimeoutError:
                self._note_end(f"the peer did not take a frame within {self._send_timeout:g} s")
                break
            except (ConnectionError, RuntimeError, aiohttp.ClientError) as error:
                self._note_end(f"sending failed: {error}")
                break
            self._accounting.add(self.peer_public_key, "frames_out")
            self._accounting.add(self.peer_public_key, "bytes_out", len(data))
        self._writer_closing = True
        await self._close_websocket()

    async def _close_websocket(self) -> None:
        """Close with our reason; a peer that does not answer in time is cut off."""
        message = self.close_reason.encode()[:_MAX_CLOSE_MESSAGE]
        try:
            async with asyncio.timeout(self._close_timeout):
                await self._websocket.close(code=self._close_code, message=message)
        except (TimeoutError, ConnectionError, aiohttp.ClientError):
            pass  # aiohttp has already dropped the connection

    def _note_end(self, reason: str, *, code: int = aiohttp.WSCloseCode.OK) -> None:
        """Remember why the link ends; the first reason given is the one that counts."""
        if self._close_reason is None:
            self._close_reason = reason
            self._close_code = code


def _describe_close(message: aiohttp.WSMessage) -> str:
    if message.type is aiohttp.WSMsgType.CLOSE:
        detail = f": {message.extra}" if message.extra else ""
        return f"closed by the peer (code {message.data}{detail})"
    return "connection lost"
