"""The RPC's HTTP server (aiohttp): JSON-RPC on POST ``/`` and over websockets at GET ``/ws``,
GET ``/health``, ``/ready`` and ``/metrics``.

The server carries the JSON-RPC engine over HTTP and keeps it hard to knock
over: a body over ``max_body_bytes`` is refused before it is read in full
(HTTP 413), a body that has not arrived within ``body_timeout_seconds`` is
refused (HTTP 408), a batch over ``max_batch_length`` is one -32600 error,
and past ``max_concurrent_requests`` requests in flight a new one is
answered at once with -32000 "server busy" (HTTP 503) instead of queueing.
Every refusal is a JSON-RPC error body whose ``data`` names the limit.

A request takes one of the ``max_concurrent_requests`` slots only once its
body is read, so clients that send slowly hold a connection but no slot.
A call that waits for the chain (``tx_wait``) counts against ``max_waiting``
instead: once one starts, its request gives its slot up for good, so clients
waiting for finality never crowd out the others. Past ``max_waiting`` such a
call is answered -32000 "server busy" in its JSON-RPC response, and so is one
past ``max_waiting_per_source`` from one source (an address, as connections
are counted), so a few clients cannot take every place. A client that hangs
up has its request cancelled (aiohttp's handler cancellation), so what it
was waiting for gives its places back at once.

Before HTTP, connections themselves are counted: one source address (an IPv6
address counts as its /64) may have ``max_connections_per_source`` open at
once, counted from the moment each is accepted; one more is answered at once
with HTTP 503 and a -32000 "server busy" body naming the limit, and closed,
before it has sent anything. Each open connection holds a file descriptor, so
without this one address with idle sockets could use up the process's. What is
turned away is logged at most once per ``refusal_log_interval`` seconds.

The server is as careful with HTTP itself: a connection must send a complete
request head within ``header_timeout_seconds`` of opening (or of its previous
response, so an idle keep-alive connection is closed after as long); a body
with a ``Content-Encoding`` other than ``identity`` is refused with HTTP 415
(JSON-RPC bodies are small, and decompressing what strangers send is a cost
for nothing); a body that is cut short or malformed on the wire gets 400. None
of these, nor a client hanging up mid-request, logs more than one DEBUG line.

HTTP status: 200 with the response body; 204 with no body when the request
was a notification or a batch of notifications only; 400, 408, 413, 415 and
503 as above. A parse error or an invalid request is still HTTP 200, as
JSON-RPC errors are. Responses are ``application/json``; the request's
Content-Type is not checked, so ``curl -d`` works as well as a JSON-RPC library.

GET ``/health`` is 200 while the node runs; GET ``/ready`` is 200 only while
the node meets its ``ReadinessPolicy`` (query parameters may override it), else
503 with the reasons, and 400 for a bad query parameter; GET ``/metrics`` is the
server's ``Metrics`` registry in the Prometheus text format, including every
JSON-RPC call by method.

GET ``/ws`` opens a websocket that speaks JSON-RPC with the same methods and
slots (``mura.rpc.websocket``), and with a ``BlockFeed`` subscribes to final
blocks (``mura.rpc.subscriptions``); websockets have limits of their own, and
stopping the server closes them (code 1001) before anything else.

Browsers: off unless a ``CorsPolicy`` lists origins (``mura.rpc.cors``); then
``OPTIONS`` preflights are answered and every answer to a listed origin carries
``Access-Control-Allow-Origin``. Before any of this, a request whose ``Host``
names neither an IP address nor an allowed name is refused with 403
(``mura.rpc.hosts``), so a web page cannot reach the node by DNS rebinding.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from mura.rpc.connections import CappedSite, RefusalLog, SendWatch, source_of
from mura.rpc.cors import CorsPolicy
from mura.rpc.declarations import Method
from mura.rpc.errors import INVALID_REQUEST, SERVER_BUSY, RpcError, standard_error
from mura.rpc.explorer import ExplorerFiles
from mura.rpc.hosts import HostAllowlist
from mura.rpc.jsonrpc import JsonRpcEngine, encode_error
from mura.rpc.limits import Occupancy
from mura.rpc.limits import RpcLimits as RpcLimits
from mura.rpc.metrics import CONTENT_TYPE, Metrics
from mura.rpc.readiness import ReadinessPolicy, SyncFacts, assess
from mura.rpc.subscriptions import BlockFeed, subscription_methods
from mura.rpc.websocket import WebsocketHub

logger = logging.getLogger(__name__)

_JSON = "application/json"


@dataclass(frozen=True, slots=True)
class HealthReport:
    """What GET ``/health`` answers: 200 when healthy, else 503, with the details."""

    #: Whether the node is running normally.
    healthy: bool = True
    #: Extra JSON facts to show (e.g. height); must not contain ``status``.
    details: Mapping[str, Any] = field(default_factory=dict)


def always_healthy() -> HealthReport:
    """The health of a server with nothing more to report than that it runs."""
    return HealthReport()


class RpcServer:
    """JSON-RPC 2.0 over HTTP and websockets, health, readiness and metrics on ``host:port``
    (port 0 picks a free port).

    Without ``sync_facts`` the server has nothing to judge readiness on and
    ``/ready`` answers as ``/health`` does. With a ``feed``, websockets may
    subscribe to the blocks it is told of (``chain_subscribe``).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        methods: Iterable[Method],
        health: Callable[[], HealthReport] = always_healthy,
        sync_facts: Callable[[], SyncFacts] | None = None,
        readiness: ReadinessPolicy = ReadinessPolicy(),
        metrics: Metrics | None = None,
        limits: RpcLimits = RpcLimits(),
        shutdown_timeout: float = 5.0,
        description: str = "",
        cors: CorsPolicy = CorsPolicy(frozenset()),
        feed: BlockFeed | None = None,
        explorer: ExplorerFiles | None = None,
        allowed_hosts: Iterable[str] = ("localhost",),
    ) -> None:
        self._host = host
        self._allowed_hosts = HostAllowlist.of(allowed_hosts, listen_host=host)
        self._cors = cors
        self._explorer = explorer
        self._requested_port = port
        self._health = health
        self._sync_facts = sync_facts
        self._readiness = readiness
        self.metrics = metrics if metrics is not None else Metrics()
        self._limits = limits
        self._shutdown_timeout = shutdown_timeout
        self._feed = feed
        served = [*methods, *subscription_methods()] if feed is not None else methods
        self.engine = JsonRpcEngine(
            served, max_batch_length=limits.max_batch_length, observer=self.metrics, description=description
        )
        self._runner: web.AppRunner | None = None
        self._site: CappedSite | None = None
        self._websockets: WebsocketHub | None = None
        self._port: int | None = None
        self._occupancy = Occupancy(limits)
        self._reading = 0
        #: Connections cut off because their client did not take its answer in time.
        self.answers_cut_off = 0
        self._stalled = RefusalLog(interval=limits.refusal_log_interval, held_as="cut off", name=__name__)
        self._answers_sent = SendWatch(limits.answer_send_seconds)
        self._wrong_hosts = RefusalLog(interval=limits.refusal_log_interval, held_as="refused",
                                       name="mura.rpc.hosts")
        self.metrics.watch_websockets(
            open_websockets=lambda: self.websockets_open,
            subscriptions=lambda: feed.subscriptions if feed is not None else 0,
        )

    @property
    def limits(self) -> RpcLimits:
        return self._limits

    @property
    def port(self) -> int:
        """The port actually listened on; known once started."""
        if self._port is None:
            raise RuntimeError("the RPC server is not started")
        return self._port

    @property
    def url(self) -> str:
        """The JSON-RPC endpoint, e.g. ``http://127.0.0.1:8700/``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}/"

    @property
    def in_flight(self) -> int:
        """HTTP requests holding a slot right now: read in full, and not waiting in ``tx_wait``."""
        return self._occupancy.in_flight

    @property
    def waiting(self) -> int:
        """Calls to methods that wait (``tx_wait``) running right now, counted against ``max_waiting``."""
        return self._occupancy.waiting

    def waiting_from(self, address: str) -> int:
        """Calls waiting right now from ``address``'s source, counted against ``max_waiting_per_source``."""
        return self._occupancy.waiting_from(source_of(address))

    @property
    def connections_turned_away(self) -> int:
        """Connections closed as soon as they were accepted: their source had
        ``max_connections_per_source`` open already."""
        return self._site.refused if self._site is not None else 0

    def connections_from(self, address: str) -> int:
        """Connections open now from ``address``'s source."""
        return self._site.open_from(address) if self._site is not None else 0

    @property
    def websockets_open(self) -> int:
        """Websockets open now on ``/ws``."""
        return self._websockets.open if self._websockets is not None else 0

    def websockets_from(self, address: str) -> int:
        """Websockets open now from ``address``'s source."""
        return self._websockets.open_from(address) if self._websockets is not None else 0

    @property
    def reading(self) -> int:
        """HTTP requests whose body is being read right now; they hold no slot yet."""
        return self._reading

    # --- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving; raises if already started or the address is taken."""
        if self._runner is not None:
            raise RuntimeError("the RPC server is already started")
        app = web.Application(client_max_size=self._limits.max_body_bytes,
                              middlewares=[self._allowed_hosts.middleware(
                                  self._wrong_hosts, count=self.metrics.wrong_hosts.inc)])
        websockets = WebsocketHub(engine=self.engine, occupancy=self._occupancy, limits=self._limits,
                                  metrics=self.metrics, feed=self._feed, cors=self._cors)
        app.router.add_post("/", self._handle_rpc)
        app.router.add_get("/ws", websockets.handle)
        app.router.add_get("/health", self._handle_health)
        app.router.add_get("/ready", self._handle_ready)
        app.router.add_get("/metrics", self._handle_metrics)
        self._cors.install(app)
        if self._explorer is not None:
            self._explorer.install(app)
        runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=self._shutdown_timeout,
            # aiohttp's keep-alive timer also runs from a connection's opening until its
            # first request head is complete: it is the header timeout.
            keepalive_timeout=self._limits.header_timeout_seconds,
            auto_decompress=False,
            # A client that hangs up has its handler cancelled: its tx_wait calls give their
            # places in max_waiting back at once, over POST as on a websocket.
            handler_cancellation=True,
            logger=_ClientErrorLog(logging.getLogger("aiohttp.server")),
        )
        await runner.setup()
        try:
            site = CappedSite(runner, self._host, self._requested_port, backlog=self._limits.backlog,
                              max_per_source=self._limits.max_connections_per_source,
                              log_interval=self._limits.refusal_log_interval)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._site = site
        self._websockets = websockets
        self._port = int(runner.addresses[0][1])
        logger.info("JSON-RPC listening on %s", self.url)

    async def stop(self) -> None:
        """Close every websocket (code 1001), stop listening and finish or cancel requests in
        flight; stopping twice is harmless."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if self._websockets is not None:
            await self._websockets.close_all()
        await runner.cleanup()
        logger.info("JSON-RPC on port %s stopped", self._port)
        self._site = None
        self._websockets = None
        self._port = None

    async def __aenter__(self) -> RpcServer:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.stop()

    # --- handlers -------------------------------------------------------------------

    async def _handle_rpc(self, request: web.Request) -> web.Response:
        """POST ``/``: one JSON-RPC request or batch, read in full before it takes a slot; cancelled
        if the client hangs up meanwhile (``handler_cancellation``)."""
        try:
            return await self._answer_post(request)
        except asyncio.CancelledError:
            if self._runner is not None:  # not the server stopping
                logger.debug("a client at %s hung up; its request was cancelled", request.remote)
            raise

    async def _answer_post(self, request: web.Request) -> web.Response:
        encoding = request.headers.get(hdrs.CONTENT_ENCODING, "identity").strip().lower()
        if encoding != "identity":
            return self._encoded(encoding)
        try:
            body = await self._read_body_in_time(request)
        except TimeoutError:
            return self._too_slow()
        except ConnectionError as error:
            logger.debug("a client at %s hung up while sending its request: %s", request.remote, error)
            return web.Response(status=400)  # never written: the connection is gone
        except (web.RequestPayloadError, HttpProcessingError) as error:
            return self._malformed_body(request, error)
        if body is None:
            return self._too_large(request.content_length)
        slot = self._occupancy.take_slot(source_of(request.remote or "unknown"))
        if slot is None:
            return self._busy()
        try:
            answer = await self.engine.handle(body, wait_slot=slot.waiting)
        finally:
            slot.release()
        if answer is None:
            return web.Response(status=204)
        return await self._send_answer(request, web.Response(status=200, text=answer, content_type=_JSON))

    async def _send_answer(self, request: web.Request, response: web.Response) -> web.Response:
        """``response`` sent here: a client that takes nothing of it for ``answer_send_seconds`` is
        cut off, so the answer does not wait in memory for as long as it keeps the connection open."""
        with self._answers_sent.sending(request.transport) as sending:
            await response.prepare(request)
            await response.write_eof()
        if sending.cut_off:
            self.answers_cut_off += 1
            self._stalled.note(f"cut off a JSON-RPC client at {request.remote}: it took nothing of its answer for "
                               f"{self._limits.answer_send_seconds:g} s")
            if request.transport is not None:
                request.transport.abort()
        return response

    async def _read_body_in_time(self, request: web.Request) -> bytes | None:
        """The body as ``_read_body`` reads it; ``TimeoutError`` past ``body_timeout_seconds``."""
        self._reading += 1
        try:
            async with asyncio.timeout(self._limits.body_timeout_seconds):
                return await self._read_body(request)
        finally:
            self._reading -= 1

    async def _read_body(self, request: web.Request) -> bytes | None:
        """The request body, or None once it is known to exceed ``max_body_bytes``."""
        limit = self._limits.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, content_length: int | None) -> web.Response:
        limit = self._limits.max_body_bytes
        data: dict[str, Any] = {
            "reason": f"request body exceeds the limit of {limit} bytes",
            "limit": "max_body_bytes",
            "max_body_bytes": limit,
        }
        if content_length is not None:
            data["got"] = content_length
        return self._error_response(standard_error(INVALID_REQUEST, **data), status=413)

    def _encoded(self, encoding: str) -> web.Response:
        error = standard_error(
            INVALID_REQUEST,
            reason=f"request bodies are not accepted with Content-Encoding {encoding[:40]!r}; send them uncompressed",
        )
        return self._error_response(error, status=415)

    def _malformed_body(self, request: web.Request, problem: Exception) -> web.Response:
        text = " ".join(str(problem).split()) or type(problem).__name__
        logger.debug("a malformed request body from %s: %s", request.remote, text)
        response = self._error_response(standard_error(INVALID_REQUEST, reason=f"malformed request body: {text}"),
                                        status=400)
        response.force_close()  # what is left of the body cannot be told from the next request
        return response

    def _too_slow(self) -> web.Response:
        timeout = self._limits.body_timeout_seconds
        error = standard_error(
            INVALID_REQUEST,
            reason=f"the request body did not arrive within {timeout:g} seconds",
            limit="body_timeout_seconds",
            body_timeout_seconds=timeout,
        )
        response = self._error_response(error, status=408)
        response.force_close()  # RFC 9110: a 408 closes the connection, whose body is cut short.
        return response

    def _busy(self) -> web.Response:
        limit = self._limits.max_concurrent_requests
        data = {"limit": "max_concurrent_requests", "max_concurrent_requests": limit}
        return self._error_response(SERVER_BUSY.error(data), status=503)

    @staticmethod
    def _error_response(error: RpcError, *, status: int) -> web.Response:
        return web.Response(status=status, text=encode_error(error), content_type=_JSON)

    async def _handle_health(self, request: web.Request) -> web.Response:
        """GET ``/health``: 200 ``{"status": "ok"}`` while the node runs normally."""
        try:
            report = self._health()
        except Exception:
            logger.exception("the health check failed")
            return web.json_response({"status": "error"}, status=503)
        status = "ok" if report.healthy else "unhealthy"
        return web.json_response({**report.details, "status": status}, status=200 if report.healthy else 503)

    async def _handle_ready(self, request: web.Request) -> web.Response:
        """GET ``/ready``: 200 when the node meets the readiness thresholds, else 503 saying why."""
        try:
            policy = self._readiness.with_query(request.query)
        except ValueError as error:
            return web.json_response({"status": "error", "reason": str(error)}, status=400)
        if self._sync_facts is None:
            return await self._handle_health(request)
        try:
            facts = self._sync_facts()
        except Exception:
            logger.exception("the readiness check failed")
            return web.json_response({"status": "error", "reason": "the readiness check failed"}, status=503)
        ready, body = assess(facts, policy)
        return web.json_response(body, status=200 if ready else 503)

    async def _handle_metrics(self, request: web.Request) -> web.Response:
        """GET ``/metrics``: every series in the Prometheus text format."""
        try:
            text = self.metrics.exposition()
        except Exception:
            logger.exception("collecting metrics failed")
            return web.Response(status=500, text="collecting metrics failed\n")
        response = web.Response(status=200, body=text)
        response.headers["Content-Type"] = CONTENT_TYPE
        return response


class _ClientErrorLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger for this server.

    aiohttp logs a full ERROR traceback for every request it cannot parse and
    for clients that hang up mid-request. Those say nothing about this node and
    anyone can cause them by the thousand, so each becomes one DEBUG line without a traceback;
    an error of any other type (a bug in a handler) keeps its traceback.
    """

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        error = _exception_of(kwargs.get("exc_info"))
        if isinstance(error, (HttpProcessingError, web.RequestPayloadError, ConnectionError)):
            if self.logger.isEnabledFor(logging.DEBUG):
                text = " ".join(str(error).split()) or type(error).__name__
                self.logger.debug("%s: %s", str(msg) % args if args else msg, text)
            return
        super().log(level, msg, *args, **kwargs)


def _exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and isinstance(exc_info[1], BaseException):
        return exc_info[1]
    if exc_info is True:
        return sys.exc_info()[1]
    return None
