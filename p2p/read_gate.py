"""How few bytes a connection may send before it has authenticated.

A link must take frames of up to ``max_frame_size`` (16 MiB by default) once
both ends are proven, but nothing near that before: sixteen strangers each
half-way through a 16 MiB frame would hold 256 MiB of this node's memory.
aiohttp fixes a websocket's message limit (``max_msg_size``) when it builds
the connection's frame parser, and the compiled parser offers no way to raise
it later; swapping in a second parser would lose whatever the first had
buffered of the next frame.

So the connection gets the large limit from the start, and a ``ReadGate``
stands between aiohttp's protocol and its parser until the handshake is done:
at most ``budget`` bytes pass (the handshake needs a few hundred), and the
first byte past it fails the connection the way aiohttp fails an oversized
message (``WebSocketError`` 1009 on the reader, no more bytes parsed). Once
the peer is proven, ``open()`` hands the parser back to aiohttp, so the gate
costs nothing afterwards. The handshake makes sure an honest peer sends
nothing large until this side has opened its gate (see
``mura.p2p.handshake``).

On the server side the count starts with the upgrade request itself: a
client may send bytes behind its request before the answer (an honest one
never does), and aiohttp keeps them aside until the websocket parser exists,
then feeds them to it at once. ``prepare_gated`` stops reading before the
upgrade, counts what was kept aside against the budget (refusing the upgrade
outright when it is over: ``SentBeforeUpgrade``), and installs the gate before
reading resumes, so a stranger's bytes past the budget are never parsed. What
one socket read brings in (up to 256 KiB with asyncio) is in memory for a
moment either way; the budget bounds what is kept and parsed.

On the client side, what the listener sends in the same read as its answer to
the upgrade is parsed before the gate is installed (aiohttp feeds it to the
parser inside ``ws_connect``): at most one read, from the address this node
chose to dial; the gate counts from the next byte.

This is the one place that reaches into aiohttp's internals (the protocol's
``_payload_parser`` and ``_message_tail``, the websocket's ``_reader`` queue
and the client response's connection); ``tests/p2p/test_read_gate.py`` fails
loudly if an aiohttp release moves them.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web, web_protocol


class ReadGate:
    """Passes at most ``budget`` bytes to a websocket parser until opened."""

    def __init__(self, *, protocol: Any, parser: Any, queue: Any, budget: int, already: int = 0) -> None:
        self._protocol = protocol
        self._parser = parser
        self._queue = queue
        self._budget = budget
        self._received = already
        self._opened = False
        #: True once the peer sent more than ``budget`` bytes before ``open()``.
        self.exceeded = False

    @property
    def received(self) -> int:
        """Bytes counted while the gate was closed (with those that came with the upgrade request)."""
        return self._received

    def open(self) -> None:
        """Let every byte through from now on: aiohttp feeds its parser directly again."""
        self._opened = True
        if getattr(self._protocol, "_payload_parser", None) is self:
            self._protocol._payload_parser = self._parser

    # --- what aiohttp's protocol calls on its payload parser ------------------------

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self.exceeded:
            return True, b""
        if not self._opened:
            self._received += len(data)
            if self._received > self._budget:
                self.exceeded = True
                error = aiohttp.WebSocketError(
                    aiohttp.WSCloseCode.MESSAGE_TOO_BIG,
                    f"more than {self._budget} bytes before the handshake completed",
                )
                self._queue.set_exception(error)
                return True, b""
        result: tuple[bool, bytes] = self._parser.feed_data(data)
        return result

    def feed_eof(self) -> None:
        self._parser.feed_eof()


class SentBeforeUpgrade(Exception):
    """More than the budget arrived behind the upgrade request, before any answer."""

    def __init__(self, size: int, budget: int) -> None:
        super().__init__(f"{size} bytes sent with the upgrade request, more than the {budget} allowed "
                         "before the handshake completed")
        #: Bytes kept aside behind the request.
        self.size = size


async def prepare_gated(request: web.BaseRequest, websocket: web.WebSocketResponse, *, budget: int) -> ReadGate:
    """Upgrade ``request`` to ``websocket`` (``websocket.prepare``) with a gate in place that
    counts every byte after the upgrade request, those sent with it included.

    Raises ``SentBeforeUpgrade`` without upgrading when more than ``budget`` bytes came
    with the request; the caller answers with an HTTP error, which closes the connection.
    A request that is no websocket upgrade is left to ``prepare``, which refuses it.
    """
    protocol = request.protocol
    if not websocket.can_prepare(request).ok:
        await websocket.prepare(request)  # raises aiohttp's HTTP error for the request
    sent_early = getattr(protocol, "_message_tail", None)
    if not isinstance(sent_early, bytes):
        raise _moved()
    protocol.pause_reading()  # nothing more is parsed until the gate is in place
    try:
        early = len(sent_early)
        if early > budget:
            raise SentBeforeUpgrade(early, budget)
        await websocket.prepare(request)  # feeds what came early to the parser
        gate = _install(protocol, websocket, budget, already=early)
    finally:
        protocol.resume_reading()
    return gate


def gate_client_reads(websocket: aiohttp.ClientWebSocketResponse, *, budget: int) -> ReadGate:
    """Gate a client websocket just returned by ``ws_connect`` (before any ``await``)."""
    connection = getattr(getattr(websocket, "_response", None), "connection", None)
    return _install(getattr(connection, "protocol", None), websocket, budget)


def _install(protocol: Any, websocket: Any, budget: int, *, already: int = 0) -> ReadGate:
    parser = getattr(protocol, "_payload_parser", None)
    queue = getattr(websocket, "_reader", None)
    if not callable(getattr(parser, "feed_data", None)) or not callable(getattr(queue, "set_exception", None)):
        raise _moved()
    gate = ReadGate(protocol=protocol, parser=parser, queue=queue, budget=budget, already=already)
    protocol._payload_parser = gate
    return gate


class UnsupportedAiohttp(RuntimeError):
    """The installed aiohttp keeps what the gate replaces somewhere else."""


def check_supported() -> None:
    """Raise ``UnsupportedAiohttp`` at start, once, rather than on every connection, when
    the server's protocol lacks what ``prepare_gated`` reads and replaces."""
    slots = getattr(web_protocol.RequestHandler, "__slots__", ())
    if "_message_tail" not in slots or "_payload_parser" not in slots:
        raise _moved()


def _moved() -> UnsupportedAiohttp:
    return UnsupportedAiohttp(
        f"aiohttp {aiohttp.__version__} keeps its websocket parser, reader or early bytes elsewhere than "
        "mura.p2p.read_gate expects; update that module before running this version"
    )
