"""Log lines that cannot flood: the first of a kind at once, then at most one
summary line per interval per kind.

Anyone who can reach a port can make the same thing happen hundreds of times
a second (a refused handshake, a malformed frame), and a dishonest validator
can do it with signed messages (an equivocating vote). One line each would
cost a node more in logging than the event costs it otherwise, and would bury
everything else. ``RateLimitedLog`` writes the first occurrence of each *kind*
at once; the ones that follow within ``interval`` seconds are only counted,
and when the interval ends one line shows the latest of them with the count::

    handshake with 127.0.0.2:51234 failed: no HELLO within 2 s (37 more in the last 10 s)

A kind is any hashable value that names what happened, e.g.
``("handshake", "timeout")`` or ``("malformed", peer_public_key)``. Keep kinds
few: put remote addresses in the message, not in the kind. At most
``max_kinds`` kinds are tracked; past that the least recently seen one is
forgotten (its count is written first).

The summary at the end of an interval is scheduled on the running asyncio
loop. Without one (plain threads, a script), the count is carried to the next
line of that kind instead; ``flush()`` writes every pending count at once.

``ClientErrorLog`` is the other half of keeping a public port's log useful:
what aiohttp itself logs about malformed requests becomes one DEBUG line each.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import RequestPayloadError


@dataclass(slots=True)
class _Kind:
    """The state of one kind: when its current interval began and what it held back."""

    started: float
    held: int = 0
    level: int = logging.INFO
    message: str = ""
    args: tuple[object, ...] = field(default_factory=tuple)
    summary: asyncio.TimerHandle | None = None


class RateLimitedLog:
    """A logger front that writes at most one line per ``interval`` seconds per kind,
    the first at once and the rest as a count::

        throttled = RateLimitedLog(logging.getLogger(__name__), interval=10.0)
        throttled.warning(("handshake", error.kind), "handshake with %s failed: %s", remote, error)
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = 10.0,
        max_kinds: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval > 0 or max_kinds < 1:
            raise ValueError("a RateLimitedLog needs a positive interval and room for at least one kind")
        self.logger = logger
        self.interval = interval
        self._max_kinds = max_kinds
        self._clock = clock
        self._kinds: OrderedDict[Hashable, _Kind] = OrderedDict()

    def debug(self, kind: Hashable, message: str, *args: object) -> None:
        self.log(logging.DEBUG, kind, message, *args)

    def info(self, kind: Hashable, message: str, *args: object) -> None:
        self.log(logging.INFO, kind, message, *args)

    def warning(self, kind: Hashable, message: str, *args: object) -> None:
        self.log(logging.WARNING, kind, message, *args)

    def log(self, level: int, kind: Hashable, message: str, *args: object) -> None:
        """Write ``message % args`` at ``level`` now if ``kind`` was quiet for an
        interval; otherwise count it towards the kind's next summary line."""
        if not self.logger.isEnabledFor(level):
            return
        now = self._clock()
        state = self._kinds.get(kind)
        if state is None:
            self._remember(kind, _Kind(started=now))
            self.logger.log(level, message, *args)
            return
        self._kinds.move_to_end(kind)
        if now - state.started < self.interval:
            self._hold(kind, state, level, message, args)
            return
        # A quiet interval has passed (or no loop ran the summary): write this one, with any count.
        held, elapsed = state.held, now - state.started
        self._restart(state, now)
        if held:
            self.logger.log(level, message + " (%d more in the last %.0f s)", *args, held, elapsed)
        else:
            self.logger.log(level, message, *args)

    def flush(self) -> None:
        """Write the summary of every kind that has lines held back, now."""
        for state in list(self._kinds.values()):
            self._summarize(state)

    def _hold(self, kind: Hashable, state: _Kind, level: int, message: str, args: tuple[object, ...]) -> None:
        state.held += 1
        state.level, state.message, state.args = level, message, args
        if state.summary is None:
            state.summary = _call_later(state.started + self.interval - self._clock(), self._summarize, state)

    def _summarize(self, state: _Kind) -> None:
        """The summary line of ``state``'s interval, if it held anything back; a new interval begins."""
        if state.summary is not None:
            state.summary.cancel()
            state.summary = None
        if not state.held:
            return
        now = self._clock()
        held, elapsed = state.held, now - state.started
        self._restart(state, now)
        self.logger.log(state.level, state.message + " (%d more in the last %.0f s)", *state.args, held, elapsed)

    def _restart(self, state: _Kind, now: float) -> None:
        if state.summary is not None:
            state.summary.cancel()
            state.summary = None
        state.started = now
        state.held = 0

    def _remember(self, kind: Hashable, state: _Kind) -> None:
        self._kinds[kind] = state
        while len(self._kinds) > self._max_kinds:
            _, oldest = self._kinds.popitem(last=False)
            self._summarize(oldest)


def _call_later(delay: float, callback: Callable[[_Kind], None], state: _Kind) -> asyncio.TimerHandle | None:
    """Schedule ``callback(state)`` on the running loop; None when no loop runs."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop.call_later(max(delay, 0.0), callback, state)


class ClientErrorLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger (``AppRunner(logger=...)``) for a port anyone can reach.

    aiohttp logs a full ERROR traceback for every request it cannot parse and
    for clients that hang up mid-request. Those say nothing about this node and
    anyone can cause them by the thousand, so each becomes one DEBUG line without a traceback;
    an error of any other type (a bug in a handler) keeps its traceback.
    """

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        error = _exception_of(kwargs.get("exc_info"))
        if isinstance(error, CLIENT_ERRORS):
            if self.logger.isEnabledFor(logging.DEBUG):
                text = " ".join(str(error).split()) or type(error).__name__
                self.logger.debug("%s: %s", str(msg) % args if args else msg, text)
            return
        super().log(level, msg, *args, **kwargs)


#: What a client's bytes or its hanging up can raise inside aiohttp's server.
CLIENT_ERRORS: tuple[type[BaseException], ...] = (HttpProcessingError, RequestPayloadError, ConnectionError)


def _exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1] if isinstance(exc_info[1], BaseException) else None
    if exc_info is True:
        return sys.exc_info()[1]
    return None
