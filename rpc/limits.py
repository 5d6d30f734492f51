"""What one RPC server accepts before it refuses, and the count of what holds its slots.

``RpcLimits`` bounds what a client can cost the node: bodies and frames, time,
batches, requests in flight, calls waiting, connections and websockets per
source, and each websocket's subscriptions and unsent notifications.
``Occupancy`` counts requests in flight and calls waiting against those limits,
the calls waiting by source too; HTTP requests and websocket frames take their
slots from the same one.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from mura.rpc.errors import SERVER_BUSY
from mura.rpc.jsonrpc import DEFAULT_MAX_BATCH_LENGTH


@dataclass(frozen=True, slots=True, kw_only=True)
class RpcLimits:
    """What one RPC server accepts before it refuses."""

    #: Largest request body, in bytes; also the largest websocket message.
    max_body_bytes: int = 1024 * 1024
    #: Longest a client may take to send its request body, in seconds; then HTTP 408.
    body_timeout_seconds: float = 10.0
    #: Longest a connection may take to send a complete request head, in seconds,
    #: counted from its opening or its previous response; then it is closed.
    header_timeout_seconds: float = 10.0
    #: Most requests in one batch.
    max_batch_length: int = DEFAULT_MAX_BATCH_LENGTH
    #: Most HTTP requests and websocket frames handled at once, besides those waiting in
    #: ``tx_wait``; more are answered "server busy".
    max_concurrent_requests: int = 64
    #: Most ``tx_wait`` calls waiting at once; more are answered "server busy".
    max_waiting: int = 256
    #: Of those, from one source (as for connections); more are answered "server busy", so a few
    #: clients cannot keep everyone else from waiting. At most ``max_waiting`` to matter.
    max_waiting_per_source: int = 64
    #: Connections the kernel queues before the server accepts them.
    backlog: int = 128
    #: Connections one source address (an IPv6 one: its /64) may have open at once, idle
    #: keep-alive ones included; one more is answered 503 and closed. Generous: a wallet
    #: service may keep many keep-alive connections from one address.
    max_connections_per_source: int = 256
    #: Seconds between two log lines about connections turned away (the count is carried).
    refusal_log_interval: float = 10.0
    #: Websockets open at once, from all sources; one more is answered 503.
    max_websockets: int = 256
    #: Websockets one source (as for connections) may have open at once; one more is answered 503.
    max_websockets_per_source: int = 16
    #: Subscriptions one websocket may hold; one more is answered -32000 "server busy".
    max_subscriptions_per_websocket: int = 8
    #: Notifications waiting to be sent on one websocket; one more closes it (code 1008),
    #: so a client that does not read costs a bounded amount of memory.
    websocket_queue: int = 256
    #: Seconds between pings on an idle websocket; one not answered within half as long closes it.
    websocket_heartbeat_seconds: float = 30.0
    #: Longest a closing websocket waits for its client's close frame, and then is given to
    #: take what was sent before it (a slow consumer's backlog), in seconds; then it is cut.
    websocket_close_seconds: float = 2.0
    #: Seconds a websocket's client may take nothing of an answer or notification being sent to
    #: it; then it is cut off, and what waited to be sent to it is freed (a slow reader is not).
    websocket_send_seconds: float = 10.0
    #: Seconds an HTTP client may take nothing of its answer; then it is cut off and the answer freed.
    answer_send_seconds: float = 10.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_batch_length", "max_concurrent_requests", "max_waiting",
                     "max_waiting_per_source", "backlog",
                     "max_connections_per_source", "max_websockets", "max_websockets_per_source",
                     "max_subscriptions_per_websocket", "websocket_queue"):
            if getattr(self, name) < 1:
                raise ValueError(f"RpcLimits.{name} must be at least 1")
        for name in ("body_timeout_seconds", "header_timeout_seconds", "refusal_log_interval",
                     "websocket_heartbeat_seconds", "websocket_close_seconds", "websocket_send_seconds",
                     "answer_send_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"RpcLimits.{name} must be positive")


class Occupancy:
    """Requests holding a slot and calls waiting, counted against their limits."""

    def __init__(self, limits: RpcLimits) -> None:
        self._limits = limits
        self.in_flight = 0
        self.waiting = 0
        self._waiting_by_source: Counter[str] = Counter()

    def take_slot(self, source: str) -> RequestSlot | None:
        """One of the ``max_concurrent_requests`` slots for a new request from ``source``
        (``connections.source_of``), or None when all are taken."""
        if self.in_flight >= self._limits.max_concurrent_requests:
            return None
        self.in_flight += 1
        return RequestSlot(self, source)

    def waiting_from(self, source: str) -> int:
        """Calls waiting now from ``source``."""
        return self._waiting_by_source[source]

    @contextlib.contextmanager
    def wait(self, source: str) -> Iterator[None]:
        """Counts one waiting call of ``source`` while held; past ``max_waiting_per_source`` or
        ``max_waiting`` raises -32000 "server busy" naming the limit."""
        per_source = self._limits.max_waiting_per_source
        if self._waiting_by_source[source] >= per_source:
            raise SERVER_BUSY.error({"limit": "max_waiting_per_source", "max_waiting_per_source": per_source})
        limit = self._limits.max_waiting
        if self.waiting >= limit:
            raise SERVER_BUSY.error({"limit": "max_waiting", "max_waiting": limit})
        self.waiting += 1
        self._waiting_by_source[source] += 1
        try:
            yield
        finally:
            self.waiting -= 1
            self._waiting_by_source[source] -= 1
            if not self._waiting_by_source[source]:
                del self._waiting_by_source[source]


class RequestSlot:
    """One request's hold on a slot, until it ends or one of its calls starts to wait."""

    def __init__(self, occupancy: Occupancy, source: str) -> None:
        self._occupancy = occupancy
        self._source = source
        self._held = True

    def release(self) -> None:
        """Give the slot back; releasing twice is harmless."""
        if self._held:
            self._held = False
            self._occupancy.in_flight -= 1

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """The engine's ``WaitSlot``: a call that waits counts against ``max_waiting`` and its
        source's ``max_waiting_per_source``, and the request gives its slot up for good (what
        is left of it is waiting and answering)."""
        with self._occupancy.wait(self._source):
            self.release()
            yield
