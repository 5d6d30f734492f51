"""JSON-RPC over websockets at GET ``/ws``, for subscriptions and live pages.

Each text frame is one JSON-RPC request or batch, answered on the same socket
by the same engine as POST ``/``, one frame at a time per websocket. A frame
takes one of the server's request slots as an HTTP request does (past
``max_concurrent_requests`` it is answered -32000 at once), and a ``tx_wait``
in it counts against ``max_waiting`` and its source's ``max_waiting_per_source``.
A client that hangs up has the frame being answered cancelled (the server
cancels the handlers of lost connections), so its waiting calls give their
places back at once. A frame that is not text is answered
-32600 and the socket stays open; a frame that is not JSON, or not a request,
is answered -32700 or -32600 as over HTTP. A message over ``max_body_bytes``
closes the socket with code 1009 before it is read in full.

What one client can cost the node is bounded before the upgrade: at most
``max_websockets_per_source`` from one source (as ``connections`` counts
them), and ``max_websockets`` open in all. When all are open, a source that,
with one more, would still hold fewer than the source holding the most gets
in: the oldest websocket of that largest source is closed with code 1013 (try again later) and a reason
naming ``rpc.max_websockets``, so a few sources cannot keep everyone else out
and each converges to a fair share; a source with a single websocket never
gives it up to another. A websocket from a source that would then hold as
many as the largest, or past its own limit, is answered HTTP 503 with
a -32000 body naming the limit. Refusals and closes for a fair share are
counted and logged at most once per ``refusal_log_interval``. A page from
another origin may open one only if ``rpc.cors_origins`` lists its origin,
as for POST (a page served by the node itself is of the node's origin).
After it: at most ``max_subscriptions_per_websocket`` subscriptions, and at
most ``websocket_queue`` notifications waiting to be sent; one more closes
the socket with code 1008 and a reason naming the limit, instead of letting
memory grow for a client that does not read. The client reconnects and reads
what it missed by height.

Nothing on the commit path ever waits for a client: the feed hands each
websocket a notice (rendered and encoded once for all of them) and the
websocket only queues it. Its writer task sends answers first, then notices in
order; its reader task answers frames. ``close_all`` closes every websocket
with code 1001 when the server stops, waiting for no client longer than
``websocket_close_seconds``. Clients that misbehave or go away leave at most
a DEBUG line, never a traceback.
"""

from __future__ import annotations

import asyncio
import collections
import logging

from aiohttp import WSCloseCode, WSMsgType, hdrs, web

from mura.rpc.connections import RefusalLog, SendWatch, source_of
from mura.rpc.cors import CorsPolicy
from mura.rpc.errors import INVALID_REQUEST, NODE_STOPPING, SERVER_BUSY, RpcError, standard_error
from mura.rpc.jsonrpc import JsonRpcEngine, encode_error
from mura.rpc.limits import Occupancy, RpcLimits
from mura.rpc.metrics import Metrics
from mura.rpc.subscriptions import ACTIVE_SUBSCRIPTIONS, BlockFeed, BlockNotice, Subscriptions

logger = logging.getLogger(__name__)

_JSON = "application/json"
#: The close reason of a websocket whose server stops.
STOPPING_REASON = "the node is stopping"


def fair_share_reason(limit: int) -> str:
    """The close reason of a websocket closed to let another source's in (at most 123 bytes)."""
    return f"rpc.max_websockets: all {limit} open and your address holds the most; this one gives way to another's"


def slow_consumer_reason(limit: int) -> str:
    """The close reason of a websocket on which ``limit`` notifications waited (at most 123 bytes)."""
    return f"rpc.websocket_queue: {limit} notifications unsent; reconnect and read the missed blocks by height"


class WebsocketHub:
    """The websockets of one RPC server: admitted against their limits, counted by source,
    each answered by ``engine`` within ``occupancy``'s slots, and closed by ``close_all``."""

    def __init__(
        self,
        *,
        engine: JsonRpcEngine,
        occupancy: Occupancy,
        limits: RpcLimits,
        metrics: Metrics,
        feed: BlockFeed | None,
        cors: CorsPolicy,
    ) -> None:
        self.engine = engine
        self.occupancy = occupancy
        self.limits = limits
        self.metrics = metrics
        self.feed = feed
        self._cors = cors
        #: Frames being sent: a client that takes nothing of one for websocket_send_seconds is cut off.
        self.sends = SendWatch(limits.websocket_send_seconds)
        #: Websockets open, oldest first.
        self._connections: dict[_Connection, None] = {}
        #: Websockets let in, counted from their upgrade (those being upgraded included) until they end
        #: or give way to another source's, in all and by source.
        self._admitted = 0
        self._per_source: collections.Counter[str] = collections.Counter()
        self._refusals = RefusalLog(interval=limits.refusal_log_interval, name=__name__)
        self._slow = RefusalLog(interval=limits.refusal_log_interval, held_as="closed", name=__name__)
        self._evictions = RefusalLog(interval=limits.refusal_log_interval, held_as="closed", name=__name__)
        self._stopping = False
        #: Answers that are the same every time, encoded once.
        self.busy_answer = encode_error(SERVER_BUSY.error(
            {"limit": "max_concurrent_requests", "max_concurrent_requests": limits.max_concurrent_requests}
        ))
        self.binary_answer = encode_error(standard_error(
            INVALID_REQUEST, reason="frames must be text: one JSON-RPC request or batch, UTF-8 encoded"
        ))

    @property
    def open(self) -> int:
        """Websockets open now."""
        return len(self._connections)

    def open_from(self, address: str) -> int:
        """Websockets open now (or being opened) from ``address``'s source."""
        return self._per_source[source_of(address)]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """GET ``/ws``: upgrade to a websocket and serve it until either side closes it."""
        socket = web.WebSocketResponse(
            max_msg_size=self.limits.max_body_bytes,
            heartbeat=self.limits.websocket_heartbeat_seconds,
            timeout=self.limits.websocket_close_seconds,
            # Compressing each notification for each socket would undo encoding it once, and
            # inflating what strangers send is a cost for nothing (POST refuses it too).
            compress=False,
        )
        refusal = self._refusal(request, socket)
        if refusal is not None:
            return refusal
        connection = _Connection(self, socket, request.transport, source=source_of(request.remote or "unknown"))
        self._count_in(connection)
        try:
            try:
                await socket.prepare(request)
            except ConnectionError as error:
                logger.debug("a websocket from %s went away during its upgrade: %s", request.remote, error)
                return socket
            if self._stopping:  # the server began to stop during the upgrade
                await connection.close(WSCloseCode.GOING_AWAY, STOPPING_REASON)
                connection.abort()
                return socket
            self._connections[connection] = None
            try:
                await connection.serve()
            finally:
                self._connections.pop(connection, None)
        finally:
            self._count_out(connection)
        return socket

    def _count_in(self, connection: _Connection) -> None:
        connection.counted = True
        self._admitted += 1
        self._per_source[connection.source] += 1

    def _count_out(self, connection: _Connection) -> None:
        """Stop counting ``connection``; harmless if it was counted out already (it gave way)."""
        if not connection.counted:
            return
        connection.counted = False
        self._admitted -= 1
        self._per_source[connection.source] -= 1
        if not self._per_source[connection.source]:
            del self._per_source[connection.source]

    def _refusal(self, request: web.Request, socket: web.WebSocketResponse) -> web.Response | None:
        """The answer to an upgrade this server refuses, or None to accept it; when all
        ``max_websockets`` are open, accepting it may close another source's (``_make_room_for``)."""
        if not socket.can_prepare(request).ok:
            response = _error_response(426, standard_error(
                INVALID_REQUEST,
                reason="GET /ws opens a websocket (Upgrade: websocket) for JSON-RPC text frames; POST JSON-RPC to /",
            ))
            response.headers[hdrs.UPGRADE] = "websocket"
            return response
        if not self._origin_allowed(request):
            origin = request.headers.get(hdrs.ORIGIN, "")[:100]
            return _error_response(403, standard_error(
                INVALID_REQUEST, reason=f"pages from {origin} may not open a websocket here (rpc.cors_origins)",
            ))
        if self._stopping:
            return _error_response(503, NODE_STOPPING.error({"reason": "the server is stopping"}))
        address = request.remote or "unknown"
        source = source_of(address)
        if self._per_source[source] >= self.limits.max_websockets_per_source:
            return self._turn_away(address, "max_websockets_per_source", self.limits.max_websockets_per_source,
                                   "from that source")
        if self._admitted >= self.limits.max_websockets and not self._make_room_for(source, address):
            return self._turn_away(address, "max_websockets", self.limits.max_websockets, "in all")
        return None

    def _make_room_for(self, source: str, address: str) -> bool:
        """Close the oldest open websocket of the source holding the most, if that is at least two
        more than ``source`` holds (so the newcomer still holds fewer: sources that each hold one
        are never closed for another); whether one was closed. It is counted out at once, so its
        place is the newcomer's while it closes."""
        largest = max(self._per_source.values())
        if self._per_source[source] + 1 >= largest:
            return False
        oldest = next((connection for connection in self._connections
                       if self._per_source[connection.source] == largest and not connection.closing), None)
        if oldest is None:  # the largest source's websockets are all still being upgraded
            return False
        del self._connections[oldest]
        self._count_out(oldest)
        limit = self.limits.max_websockets
        self.metrics.websockets_given_way.inc()
        self._evictions.note(f"closed the oldest websocket from {oldest.source} to let one from {address} in: "
                             f"{limit} open in all (the limit, rpc max_websockets), the most of them from there")
        oldest.give_way(fair_share_reason(limit))
        return True

    def _origin_allowed(self, request: web.Request) -> bool:
        """No ``Origin`` (not a browser), the node's own (its explorer), or one ``rpc.cors_origins`` lists.
        Browsers let any page open a websocket anywhere, so this is what keeps other sites' pages
        from reading the node through the operator's browser."""
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None or self._cors.allow_origin(origin) is not None:
            return True
        _, separator, host = origin.partition("://")
        return bool(separator) and host.lower() == request.host.lower()

    def _turn_away(self, address: str, limit: str, value: int, where: str) -> web.Response:
        self.metrics.websockets_refused.labels(limit).inc()
        self._refusals.note(f"turned away a websocket from {address}: {value} open {where} (the limit, rpc {limit})")
        return _error_response(503, SERVER_BUSY.error({"limit": limit, limit: value}))

    def note_slow(self, address: str) -> None:
        """Count and log (rate-limited) a websocket closed for reading too slowly."""
        self.metrics.slow_websockets_closed.inc()
        self._slow.note(f"closed a websocket from {address}: {self.limits.websocket_queue} notifications waited "
                        "to be sent on it (the limit, rpc websocket_queue)")

    def note_stalled(self, address: str) -> None:
        """Count and log (rate-limited) a websocket cut off for not taking what was sent to it."""
        self.metrics.slow_websockets_closed.inc()
        self._slow.note(f"cut off a websocket from {address}: it took nothing sent to it for "
                        f"{self.limits.websocket_send_seconds:g} s (rpc websocket_send_seconds)")

    async def close_all(self) -> None:
        """Refuse new websockets and close every open one with code 1001; each client is waited for
        at most ``websocket_close_seconds``, and then cut off."""
        self._stopping = True
        connections = list(self._connections)
        await asyncio.gather(
            *(connection.close(WSCloseCode.GOING_AWAY, STOPPING_REASON) for connection in connections)
        )
        for connection in connections:
            connection.abort()


class _Connection:
    """One websocket: a reader task answers its frames one at a time, and a writer task
    sends the answers and the notifications queued for it."""

    def __init__(self, hub: WebsocketHub, socket: web.WebSocketResponse,
                 transport: asyncio.Transport | None, *, source: str) -> None:
        self._hub = hub
        #: The source it counts against (``connections.source_of``), and whether it is counted.
        self.source = source
        self.counted = False
        self._socket = socket
        self._transport = transport
        self._remote = transport.get_extra_info("peername") if transport is not None else None
        self._subscriptions = (
            Subscriptions(hub.feed, self, limit=hub.limits.max_subscriptions_per_websocket)
            if hub.feed is not None else None
        )
        #: The answer to the frame being handled, and the future set once it is sent.
        self._answer: tuple[str, asyncio.Future[None]] | None = None
        #: Notices to send, in commit order.
        self._notices: collections.deque[tuple[str, BlockNotice]] = collections.deque()
        #: Notices of subscriptions made by the frame being handled, sent once its answer is.
        self._held: list[tuple[str, BlockNotice]] = []
        self._ready = asyncio.Event()
        self._closing = False
        #: The reader and the writer, once serving.
        self._tasks: tuple[asyncio.Task[None], ...] = ()
        #: The close of a slow consumer, begun on the commit path.
        self._closer: asyncio.Task[None] | None = None

    @property
    def _address(self) -> str:
        return str(self._remote[0]) if isinstance(self._remote, tuple) and self._remote else "unknown"

    @property
    def closing(self) -> bool:
        """Whether a close has begun."""
        return self._closing or self._closer is not None

    async def serve(self) -> None:
        """Read and write until the client or the server closes the socket."""
        self._tasks = (asyncio.create_task(self._read()), asyncio.create_task(self._write()))
        try:
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._forget_subscriptions()
            for task in self._tasks:
                task.cancel()
            await asyncio.wait(self._tasks)
            for task in self._tasks:
                self._report_end(task)
            if self._closer is not None:
                await self._closer
            elif not self._socket.closed:
                await self.close(WSCloseCode.OK, "")

    def _report_end(self, task: asyncio.Task[None]) -> None:
        """A DEBUG line for a client that went away; a traceback only for a bug here."""
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, ConnectionError):
            logger.debug("websocket from %s: %s", self._address, error)
        elif error is not None:
            logger.error("a websocket from %s failed", self._address, exc_info=error)

    # --- reading --------------------------------------------------------------------------

    async def _read(self) -> None:
        ACTIVE_SUBSCRIPTIONS.set(self._subscriptions)  # this task's own context: the calls of its frames
        while True:
            message = await self._socket.receive()
            if message.type is WSMsgType.TEXT:
                await self._answer_frame(message.data)
            elif message.type is WSMsgType.BINARY:
                await self._send_answer(self._hub.binary_answer)
            else:
                if message.type is WSMsgType.ERROR:
                    logger.debug("websocket from %s closed: %s", self._address, message.data)
                return  # closed, closing, or an error aiohttp has already closed the socket for

    async def _answer_frame(self, text: str) -> None:
        """One frame answered by the engine within a request slot, as a POST body is."""
        slot = self._hub.occupancy.take_slot(self.source)
        if slot is None:
            await self._send_answer(self._hub.busy_answer)
            return
        try:
            answer = await self._hub.engine.handle(text, wait_slot=slot.waiting)
        finally:
            slot.release()
        if answer is not None:
            await self._send_answer(answer)
        self._start_subscriptions()

    async def _send_answer(self, text: str) -> None:
        """Have the writer send ``text`` before any notice, and wait until it has: a client that
        sends frames without reading the answers is read no further."""
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._answer = (text, sent)
        self._ready.set()
        await sent

    def _start_subscriptions(self) -> None:
        if self._subscriptions is None:
            return
        self._subscriptions.start()
        if self._held:
            self._notices.extend(self._held)
            self._held.clear()
            self._ready.set()

    # --- writing --------------------------------------------------------------------------

    def deliver(self, subscription_id: str, notice: BlockNotice) -> None:
        """Queue a notice for the writer (``Subscriber``); on the commit path, so it never waits.
        One past ``websocket_queue`` closes the socket instead."""
        if self._closing or self._closer is not None or self._subscriptions is None:
            return
        if len(self._notices) + len(self._held) >= self._hub.limits.websocket_queue:
            self._close_slow()
            return
        if self._subscriptions.starting(subscription_id):
            self._held.append((subscription_id, notice))
        else:
            self._notices.append((subscription_id, notice))
            self._ready.set()

    async def _write(self) -> None:
        while True:
            if self._answer is not None:
                text, sent = self._answer
                self._answer = None
                if not await self._send(text):
                    return
                if not sent.done():
                    sent.set_result(None)
            elif self._notices:
                subscription_id, notice = self._notices.popleft()
                if self._subscriptions is not None and subscription_id in self._subscriptions:
                    if not await self._send(notice.frame(subscription_id)):
                        return
                    self._hub.metrics.notifications_sent.inc()
            else:
                self._ready.clear()
                await self._ready.wait()

    async def _send(self, text: str) -> bool:
        """Send ``text``; False, with the connection cut, once ``websocket_send_seconds`` pass in
        which the client took nothing of it (it does not read: what waits for it is freed)."""
        with self._hub.sends.sending(self._transport) as sending:
            await self._socket.send_str(text)
        if sending.cut_off:
            self._hub.note_stalled(self._address)
            self._closing = True
            self._forget_subscriptions()
            self.abort()
            return False
        return True

    # --- closing --------------------------------------------------------------------------

    def _close_slow(self) -> None:
        self._hub.note_slow(self._address)
        self._notices.clear()
        self._held.clear()
        reason = slow_consumer_reason(self._hub.limits.websocket_queue)
        # Awaited by serve(), which the close ends.
        self._closer = asyncio.get_running_loop().create_task(self.close(WSCloseCode.POLICY_VIOLATION, reason))

    def give_way(self, reason: str) -> None:
        """Close with code 1013 (try again later) to let another source's websocket in."""
        # Awaited by serve(), which the close ends.
        self._closer = asyncio.get_running_loop().create_task(self.close(WSCloseCode.TRY_AGAIN_LATER, reason))

    def _forget_subscriptions(self) -> None:
        if self._subscriptions is not None:
            self._subscriptions.close()
        self._notices.clear()
        self._held.clear()

    async def close(self, code: int, reason: str) -> None:
        """Send the close frame with ``code`` and ``reason`` after what is queued in the socket, stop
        reading and writing, and cut the connection if the client has not taken it all within
        ``websocket_close_seconds``. Closing twice is harmless."""
        if self._closing:
            return
        self._closing = True
        self._forget_subscriptions()
        close_seconds = self._hub.limits.websocket_close_seconds
        try:
            async with asyncio.timeout(close_seconds):
                await self._socket.close(code=code, message=reason.encode(), drain=False)
        except TimeoutError:
            logger.debug("websocket from %s did not answer its close in time", self._address)
        for task in self._tasks:
            task.cancel()
        if self._transport is not None:
            asyncio.get_running_loop().call_later(close_seconds, self._transport.abort)

    def abort(self) -> None:
        """Cut the connection now, whatever it has not sent yet."""
        if self._transport is not None:
            self._transport.abort()


def _error_response(status: int, error: RpcError) -> web.Response:
    return web.Response(status=status, text=encode_error(error), content_type=_JSON)
