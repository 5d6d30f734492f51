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

Before the gate is in place, aiohttp itself holds what arrives behind the
upgrade request or response to its read buffer size (64 KiB) and then stops
reading.

This is the one place that reaches into aiohttp's internals (the protocol's
``_payload_parser``, the websocket's ``_reader`` queue and the client
response's connection); ``tests/p2p/test_read_gate.py`` fails loudly if an
aiohttp release moves them.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web


class ReadGate:
    """Passes at most ``budget`` bytes to a websocket parser until opened."""

    def __init__(self, *, protocol: Any, parser: Any, queue: Any, budget: int) -> None:
        self._protocol = protocol
        self._parser = parser
        self._queue = queue
        self._budget = budget
        self._received = 0
        self._opened = False
        #: True once the peer sent more than ``budget`` bytes before ``open()``.
        self.exceeded = False

    @property
    def received(self) -> int:
        """Bytes that reached the gate while it was closed."""
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


def gate_server_reads(request: web.BaseRequest, websocket: web.WebSocketResponse, *, budget: int) -> ReadGate:
    """Gate a prepared server websocket."""
    return _install(request.protocol, websocket, budget)


def gate_client_reads(websocket: aiohttp.ClientWebSocketResponse, *, budget: int) -> ReadGate:
    """Gate a client websocket just returned by ``ws_connect`` (before any ``await``)."""
    connection = getattr(getattr(websocket, "_response", None), "connection", None)
    return _install(getattr(connection, "protocol", None), websocket, budget)


def _install(protocol: Any, websocket: Any, budget: int) -> ReadGate:
    parser = getattr(protocol, "_payload_parser", None)
    queue = getattr(websocket, "_reader", None)
    if not callable(getattr(parser, "feed_data", None)) or not callable(getattr(queue, "set_exception", None)):
        raise RuntimeError(
            f"aiohttp {aiohttp.__version__} keeps its websocket parser or reader elsewhere than "
            "mura.p2p.read_gate expects; update that module before running this version"
        )
    gate = ReadGate(protocol=protocol, parser=parser, queue=queue, budget=budget)
    protocol._payload_parser = gate
    return gate
