"""Connections counted per source as they are accepted, for the RPC server.

Each open connection holds a file descriptor from the moment it is accepted,
before it has sent a byte, and only the header timeout would close one that
sends nothing: one address holding idle sockets could use up the process's
descriptors, and then every new connection and file open fails. ``CappedSite``
serves an aiohttp runner as ``web.TCPSite`` does, but counts the open
connections of each source (an IPv4 address, or the /64 of an IPv6 address,
since a host can usually pick any address of its /64) and answers one past
the limit at once with HTTP 503 and a JSON-RPC -32000 "server busy" body
naming the limit, then closes it, before aiohttp sees it. What it turns away
is logged at most once per interval.

The peer port has the same guard (``mura.p2p.connections``); the two are kept
apart because ``rpc`` imports nothing of ``p2p``.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import logging
import math
import struct
import termios
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web

from mura.rpc.errors import SERVER_BUSY
from mura.rpc.jsonrpc import encode_error

logger = logging.getLogger(__name__)

_JSON = "application/json"
#: The ioctl that reads a socket's unacknowledged send queue (SIOCOUTQ on Linux, where it is TIOCOUTQ).
_SEND_QUEUE_REQUEST: int | None = getattr(termios, "TIOCOUTQ", None)


class CappedSite(web.BaseSite):
    """A TCP site of ``runner`` on ``host:port`` that lets each source hold at most
    ``max_per_source`` open connections: one more gets a 503 "server busy" and is closed
    as soon as it is accepted, before aiohttp sees it."""

    __slots__ = ("_busy_answer", "_host", "_limit", "_open", "_port", "_refusals", "refused")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, max_per_source: int, backlog: int,
                 log_interval: float) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._limit = max_per_source
        #: What a connection turned away is answered, built once (a flood meets it often).
        self._busy_answer = _busy_answer(max_per_source)
        self._open: Counter[str] = Counter()
        self._refusals = RefusalLog(interval=log_interval)
        #: Connections turned away so far.
        self.refused = 0

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    def open_from(self, address: str) -> int:
        """Connections open now from ``address``'s source."""
        return self._open[source_of(address)]

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None  # BaseSite checks the runner is set up
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Counted(self, server), self._host, self._port, backlog=self._backlog
        )

    def admit(self, transport: asyncio.Transport) -> str | None:
        """The source of a connection just accepted, or None once it is turned away."""
        peername = transport.get_extra_info("peername")
        address = str(peername[0]) if isinstance(peername, tuple) and peername else "unknown"
        source = source_of(address)
        if self._open[source] < self._limit:
            self._open[source] += 1
            return source
        self.refused += 1
        self._refusals.note(f"turned away a JSON-RPC connection from {address}: {self._limit} connections open "
                            "from that source (the limit, rpc max_connections_per_source)")
        transport.write(self._busy_answer)
        transport.close()  # once the answer is written
        return None

    def release(self, source: str) -> None:
        self._open[source] -= 1
        if not self._open[source]:
            del self._open[source]


class _Counted(asyncio.Protocol):
    """Counts one accepted connection against its source while it is open, and passes
    every event on to the aiohttp protocol made for it once it was admitted."""

    def __init__(self, site: CappedSite, factory: Callable[[], asyncio.Protocol]) -> None:
        self._site = site
        self._factory = factory
        self._inner: asyncio.Protocol | None = None
        self._source: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._source = self._site.admit(transport)
        if self._source is not None:
            self._inner = self._factory()
            self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._source is not None:
            self._site.release(self._source)
            self._source = None
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class RefusalLog:
    """One WARNING line per ``interval`` about what was turned away; the ones held back
    are counted in the next line. Anyone can cause refusals by the thousand: the log
    must not grow with them."""

    def __init__(self, *, interval: float, held_as: str = "turned away", name: str = __name__) -> None:
        self._interval = interval
        #: How the lines held back are named in the next: "turned away", "closed", ...
        self._held_as = held_as
        self._logger = logging.getLogger(name)
        self._last = -float("inf")
        self._held = 0

    def note(self, line: str) -> None:
        """Log ``line`` unless a line was logged less than ``interval`` ago; then count it."""
        now = time.monotonic()
        if now - self._last < self._interval:
            self._held += 1
            return
        held, self._held, self._last = self._held, 0, now
        self._logger.warning("%s%s", line, f"; {held} more {self._held_as} since the last such line" if held else "")


def _busy_answer(limit: int) -> bytes:
    """The whole HTTP answer to a connection turned away: 503 with a JSON-RPC "server busy" body."""
    error = SERVER_BUSY.error({"limit": "max_connections_per_source", "max_connections_per_source": limit})
    body = encode_error(error).encode()
    head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: {_JSON}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode() + body


def _kernel_send_queue(transport: asyncio.BaseTransport | None) -> int:
    """Bytes in the kernel's send queue of ``transport``'s socket, not yet acknowledged by the
    client (Linux ``SIOCOUTQ``); 0 where that cannot be read."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or _SEND_QUEUE_REQUEST is None:
        return 0
    try:
        answer = fcntl.ioctl(sock.fileno(), _SEND_QUEUE_REQUEST, bytes(4))
    except (OSError, ValueError):
        return 0
    return int(struct.unpack("i", answer)[0])


class SendWatch:
    """Sends in progress, looked at every ``seconds``: a send whose client took nothing of what was
    being sent to it since the previous look (the bytes not yet taken, in its transport and in the
    kernel's send queue, did not go down) is cut off, its task cancelled. A slow client is never
    cut off while it reads, only one that stopped, and then within one to two windows.

    ``with watch.sending(transport) as sending:`` around the awaits of one send; afterwards
    ``sending.cut_off`` says whether it was cut off (the cancellation is taken back, as
    ``asyncio.timeout`` takes back its own). Most answers go out without waiting at all: watching
    one costs a set insertion, and the one timer runs only while sends are watched (and one
    window after the last).
    """

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._sends: set[_Sending] = set()
        self._timer: asyncio.TimerHandle | None = None
        #: The loop the timer runs in: a server started again in another loop starts a timer there.
        self._loop: asyncio.AbstractEventLoop | None = None

    def sending(self, transport: asyncio.BaseTransport | None) -> _Sending:
        """A context manager watching the send the current task makes on ``transport``."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a watched send runs in a task")
        return _Sending(self, task, transport)

    def _add(self, sending: _Sending) -> None:
        self._sends.add(sending)
        loop = asyncio.get_running_loop()
        if self._timer is None or self._loop is not loop:
            self._sends = {watched for watched in self._sends if watched.in_loop(loop)}
            self._loop = loop
            self._timer = loop.call_later(self._seconds, self._look)

    def _look(self) -> None:
        for sending in list(self._sends):
            if not sending.took_something():
                self._sends.discard(sending)
                sending.cut()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._seconds, self._look) if self._sends else None


class _Sending:
    """One send under a ``SendWatch``."""

    __slots__ = ("_stalled", "_task", "_transport", "_waiting", "_watch", "cut_off")

    def __init__(self, watch: SendWatch, task: asyncio.Task[Any], transport: asyncio.BaseTransport | None) -> None:
        self._watch = watch
        self._task = task
        self._transport = transport
        #: Bytes not yet taken at the previous look (none yet: infinitely many).
        self._waiting = math.inf
        self._stalled = False
        #: Whether the send was cut off because its client took nothing for a whole window.
        self.cut_off = False

    def took_something(self) -> bool:
        """Whether the bytes not yet taken by the client, in the transport and in the kernel's send
        queue, went down since the previous look. The transport's alone stay put for a client that
        reads a few kilobytes a second: the kernel takes more from it only once much of its own
        queue, megabytes on a fast link, has gone."""
        transport = self._transport
        left = transport.get_write_buffer_size() if isinstance(transport, asyncio.WriteTransport) else 0
        left += _kernel_send_queue(transport)
        took, self._waiting = left < self._waiting, left
        return took

    def in_loop(self, loop: asyncio.AbstractEventLoop) -> bool:
        return self._task.get_loop() is loop

    def cut(self) -> None:
        self._stalled = True
        self._task.cancel()

    def __enter__(self) -> _Sending:
        self._watch._add(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: object) -> bool:
        self._watch._sends.discard(self)
        stalled = kind is not None and issubclass(kind, asyncio.CancelledError) and self._stalled
        # The watch's own cancellation ends here, unless the task was cancelled for another reason too.
        self.cut_off = stalled and self._task.uncancel() == 0
        return self.cut_off


def source_of(address: str) -> str:
    """The source an address counts as: an IPv4 address (also mapped into IPv6), or the
    /64 of an IPv6 address (a host can usually pick any address of its /64)."""
    try:
        parsed = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address.lower()
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)
