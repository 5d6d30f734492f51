"""What one source may hold of this process's connections, and what happens when
the process runs out of file descriptors anyway.

Every open connection costs a file descriptor from the moment it is accepted,
before it has sent a byte. The header timeout closes a connection that sends no
request head, but until then nothing else bounds how many one address may
hold: two thousand idle sockets from one address use up the common limit of
1,024 open files, and then new peer links, RPC connections and file opens all
fail. Three things keep that from happening:

- ``CappedSite`` serves an aiohttp runner like ``web.TCPSite``, but counts the
  open connections of each source (``mura.p2p.slots.source_of``) as they are
  accepted, and closes one past ``max_per_source`` at once, before aiohttp
  sees it. What it turns away is logged at most once per ``log_interval``.
- ``raise_open_file_limit()`` raises the soft limit on open files to the hard
  limit, so that the caps are not the only room; a node calls it once at start.
- ``AcceptErrorLog``: should the process run out all the same, asyncio reports
  every failed ``accept()`` through the loop's exception handler, with a
  traceback, each time it retries. ``install_accept_error_log()`` puts in a
  handler that makes those one WARNING line per interval, with a count, and
  hands everything else to the handler that was there before.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from mura.p2p.logs import RateLimitedLog
from mura.p2p.slots import source_of

log = logging.getLogger(__name__)

#: What ``accept()`` fails with when the process or the system is out of descriptors or memory.
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: A soft limit is never raised past this, even when the hard limit is "unlimited".
HIGHEST_SOFT_LIMIT = 1 << 20


class CappedSite(web.BaseSite):
    """A TCP site of ``runner`` on ``host:port`` that lets each source hold at most
    ``max_per_source`` open connections; ``on_refused(transport)`` may write a last word
    to a connection turned away before it is closed (by default it is simply dropped)."""

    __slots__ = ("_host", "_log", "_max_per_source", "_on_refused", "_open", "_port", "refused")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        max_per_source: int,
        backlog: int = 128,
        log_interval: float = 10.0,
        on_refused: Callable[[asyncio.Transport], None] | None = None,
    ) -> None:
        if max_per_source < 1:
            raise ValueError("max_per_source must be at least 1")
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._max_per_source = max_per_source
        self._open: Counter[str] = Counter()
        self._log = RateLimitedLog(log, interval=log_interval)
        self._on_refused = on_refused
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

    def _admit(self, transport: asyncio.Transport) -> str | None:
        """The source of a connection just accepted, or None once it is turned away."""
        peername = transport.get_extra_info("peername")
        address = str(peername[0]) if isinstance(peername, tuple) and peername else "unknown"
        source = source_of(address)
        if self._open[source] < self._max_per_source:
            self._open[source] += 1
            return source
        self.refused += 1
        self._log.warning(("too many connections", self._port),
                          "turned away a connection from %s on port %d: %d connections open from that source "
                          "(the limit)", address, self._port, self._open[source])
        if self._on_refused is not None:
            self._on_refused(transport)
            transport.close()  # after what on_refused wrote
        else:
            transport.abort()
        return None

    def flush_log(self) -> None:
        """Write the counts of turned-away connections not yet reported."""
        self._log.flush()

    def _release(self, source: str) -> None:
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
        self._source = self._site._admit(transport)
        if self._source is not None:
            self._inner = self._factory()
            self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._source is not None:
            self._site._release(self._source)
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


# --- the process's limit on open files ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenFileLimit:
    """The soft limit on open files before and after ``raise_open_file_limit``."""

    #: The soft limit found.
    before: int
    #: The soft limit now.
    after: int
    #: The hard limit: no unprivileged process may go past it.
    hard: int


def raise_open_file_limit() -> OpenFileLimit:
    """Raise the soft limit on open files to the hard limit (at most ``HIGHEST_SOFT_LIMIT``)
    and log the outcome; a failure leaves the limit as it was and logs a warning."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = HIGHEST_SOFT_LIMIT if hard == resource.RLIM_INFINITY else min(hard, HIGHEST_SOFT_LIMIT)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, error)
            return OpenFileLimit(soft, soft, hard)
        log.info("raised the open-file limit from %d to %d", soft, target)
        return OpenFileLimit(soft, target, hard)
    log.info("open-file limit %d", soft)
    return OpenFileLimit(soft, soft, hard)


# --- accept errors --------------------------------------------------------------------------


ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


class AcceptErrorLog:
    """A loop exception handler: ``accept()`` failing for want of descriptors or memory
    becomes one WARNING line per ``interval`` (no traceback); anything else goes to
    ``then`` (the loop's default handler when None)."""

    def __init__(self, *, interval: float = 10.0, then: ExceptionHandler | None = None) -> None:
        self._log = RateLimitedLog(log, interval=interval)
        self.then = then
        #: Failed accepts seen so far.
        self.failures = 0
        #: Installations not yet removed (several networks may share a loop).
        self.users = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, OSError) and error.errno in OUT_OF_RESOURCES:
            self.failures += 1
            self._log.warning(("accept", error.errno),
                              "cannot accept connections: %s (%s); retrying every second",
                              error.strerror or error, errno.errorcode.get(error.errno or 0, "?"))
            return
        if self.then is not None:
            self.then(loop, context)
        else:
            loop.default_exception_handler(context)


def install_accept_error_log(loop: asyncio.AbstractEventLoop | None = None, *,
                             interval: float = 10.0) -> AcceptErrorLog:
    """Make ``loop`` (the running one by default) report accept failures as ``AcceptErrorLog``
    does. An ``AcceptErrorLog`` already in place is shared: each installation is undone by
    one ``remove_accept_error_log``, and the last puts back the handler it replaced."""
    loop = loop or asyncio.get_running_loop()
    handler = loop.get_exception_handler()
    if not isinstance(handler, AcceptErrorLog):
        handler = AcceptErrorLog(interval=interval, then=handler)
        loop.set_exception_handler(handler)
    handler.users += 1
    return handler


def remove_accept_error_log(loop: asyncio.AbstractEventLoop, handler: AcceptErrorLog) -> None:
    """Undo one ``install_accept_error_log`` that returned ``handler``."""
    handler.users -= 1
    if handler.users <= 0 and loop.get_exception_handler() is handler:
        handler._log.flush()
        loop.set_exception_handler(handler.then)
