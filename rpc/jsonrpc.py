"""JSON-RPC 2.0 (https://www.jsonrpc.org/specification), independent of any transport.

``JsonRpcEngine.handle`` takes a request body and returns the response body,
or None when nothing must be sent back (a notification, or a batch made only
of notifications). The transport decides how "nothing" travels (HTTP 204).

The engine owns the rules of the specification: the request envelope,
batches, notifications, the five standard errors, and ``rpc.discover``. Each
method's params are validated against its declaration before its handler
runs. A handler that fails unexpectedly is answered with -32603 and logged
with its traceback here, never sent to the client.

A call to a method declared ``waits`` (``tx_wait``) runs inside the
``WaitSlot`` the transport passes with the body, if any: the HTTP server
counts such calls against their own limit, and refuses one with an
``RpcError`` when too many wait.

An optional ``CallObserver`` is told of every request answered: its method
name (``unknown`` when not served, ``invalid`` when the request is not
JSON-RPC at all, so the set of names stays bounded), its latency and whether
it succeeded. The node's metrics are one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from mura.rpc.declarations import Method, json_type_name
from mura.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    SERVER_BUSY,
    RpcError,
    standard_error,
)
from mura.rpc.openrpc import build_document, discover_method

logger = logging.getLogger(__name__)

#: A request id: the specification allows a string, a number or null; Mura
#: refuses fractional numbers, which the specification says SHOULD NOT be used.
JsonId = str | int | None

DEFAULT_MAX_BATCH_LENGTH = 100
#: Seconds of handler time one batch may take on the event loop before its remaining calls
#: are answered busy: a hundred heavy reads must not hold up consensus for a minute.
DEFAULT_BATCH_WORK_SECONDS = 1.0
#: Bytes of answers one batch may be given: once its calls' answers reach this many, each
#: further call is answered busy instead. An answer waits in memory until its client takes it,
#: so a client that never reads must not pin a hundred large answers per request.
DEFAULT_BATCH_ANSWER_BYTES = 1024 * 1024


@dataclass(slots=True)
class _BatchBudget:
    """A batch's budgets of handler time on the event loop and of answer bytes, and what its
    calls used of them."""

    seconds: float
    answer_bytes: int
    spent: float = 0.0
    answered: int = 0
#: The observed method name of a call to a method that is not served.
UNKNOWN_METHOD = "unknown"
#: The observed method name of a body or batch entry that is not a valid request.
INVALID_REQUEST_METHOD = "invalid"
#: Entered around each call to a method that ``waits``, for as long as it runs;
#: raises ``RpcError`` to refuse the call instead.
WaitSlot = Callable[[], AbstractContextManager[None]]


class CallObserver(Protocol):
    """Told of every request the engine answers (``mura.rpc.metrics.Metrics`` is one)."""

    def observe_call(self, method: str, seconds: float, *, ok: bool) -> None:
        """``method`` is a served name, ``unknown`` or ``invalid``; ``ok`` is False for an error."""
        ...


class InvalidRequestError(Exception):
    """The value is not a valid Request object; ``request_id`` is its id if one could be read."""

    def __init__(self, reason: str, request_id: JsonId = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.request_id = request_id


@dataclass(frozen=True, slots=True)
class Call:
    """A valid Request object."""

    #: The method name, not yet looked up.
    method: str
    #: The params by position or by name (an absent member reads as no params).
    params: list[Any] | dict[str, Any]
    #: The id to echo; None both for a null id and for a notification.
    id: JsonId
    #: True when the request had no ``id`` member: it gets no response.
    is_notification: bool


def _is_valid_id(value: object) -> bool:
    return value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def read_call(entry: Any) -> Call:
    """``entry`` as a ``Call``, or ``InvalidRequestError`` saying what is wrong with it."""
    if not isinstance(entry, dict):
        raise InvalidRequestError(f"a request is a JSON object, got {json_type_name(entry)}")
    if "id" in entry and not _is_valid_id(entry["id"]):
        raise InvalidRequestError(f"id must be a string, an integer or null, got {json_type_name(entry['id'])}")
    request_id: JsonId = entry.get("id")
    if entry.get("jsonrpc") != "2.0":
        raise InvalidRequestError('jsonrpc must be exactly "2.0"', request_id)
    method = entry.get("method")
    if not isinstance(method, str):
        raise InvalidRequestError(f"method must be a string, got {json_type_name(method)}", request_id)
    params = entry.get("params", [])
    if not isinstance(params, (list, dict)):
        raise InvalidRequestError(f"params must be an array or an object, got {json_type_name(params)}", request_id)
    return Call(method, params, request_id, "id" not in entry)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_body(body: bytes | str) -> Any:
    """The JSON value of ``body``, or ``RpcError`` -32700 saying why it is not JSON."""
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise standard_error(PARSE_ERROR, reason="JSON is nested too deeply") from None
    except ValueError as error:  # also UnicodeDecodeError and oversized integer literals
        raise standard_error(PARSE_ERROR, reason=str(error)) from None


def _encode(message: Mapping[str, Any]) -> str:
    # ASCII output: a lone surrogate escaped in a request cannot break the UTF-8 response.
    return json.dumps(message, allow_nan=False, separators=(",", ":"))


def encode_error(error: RpcError, request_id: JsonId = None) -> str:
    """The text of an error Response object."""
    try:
        return _encode({"jsonrpc": "2.0", "error": error.to_object(), "id": request_id})
    except (TypeError, ValueError):
        logger.error("error data of code %d is not JSON; sent without data", error.code)
        return _encode({"jsonrpc": "2.0", "error": {"code": error.code, "message": error.message}, "id": request_id})


class JsonRpcEngine:
    """Answers JSON-RPC 2.0 request bodies with the given methods plus ``rpc.discover``."""

    def __init__(
        self,
        methods: Iterable[Method],
        *,
        max_batch_length: int = DEFAULT_MAX_BATCH_LENGTH,
        batch_work_seconds: float = DEFAULT_BATCH_WORK_SECONDS,
        batch_answer_bytes: int = DEFAULT_BATCH_ANSWER_BYTES,
        title: str = "Mura JSON-RPC",
        version: str = "0.1.0",
        description: str = "",
        observer: CallObserver | None = None,
    ) -> None:
        if max_batch_length < 1:
            raise ValueError("max_batch_length must be at least 1")
        if not batch_work_seconds > 0:
            raise ValueError("batch_work_seconds must be positive")
        if batch_answer_bytes < 1:
            raise ValueError("batch_answer_bytes must be at least 1")
        served = list(methods)
        names = [method.name for method in served]
        if len(set(names)) != len(names):
            raise ValueError("two methods share a name")
        reserved = [name for name in names if name.startswith("rpc.")]
        if reserved:
            raise ValueError(f"method names starting with 'rpc.' are reserved for the engine: {reserved}")
        served.append(discover_method(lambda: self._document))
        self._methods = MappingProxyType({method.name: method for method in served})
        self._document = build_document(served, title=title, version=version, description=description)
        self.max_batch_length = max_batch_length
        self.batch_work_seconds = batch_work_seconds
        self.batch_answer_bytes = batch_answer_bytes
        self._observer = observer

    @property
    def methods(self) -> Mapping[str, Method]:
        """Every method served, by name, ``rpc.discover`` included."""
        return self._methods

    @property
    def document(self) -> dict[str, Any]:
        """The OpenRPC document ``rpc.discover`` returns."""
        return self._document

    async def handle(self, body: bytes | str, *, wait_slot: WaitSlot | None = None) -> str | None:
        """The response body for a request body, or None when no response is due.

        Calls to methods that wait run inside ``wait_slot()`` when one is given.
        """
        try:
            payload = parse_body(body)
        except RpcError as error:
            self._observe(INVALID_REQUEST_METHOD, time.perf_counter(), ok=False)
            return encode_error(error)
        if isinstance(payload, list):
            return await self._answer_batch(payload, wait_slot)
        return await self._answer(payload, wait_slot)

    async def _answer_batch(self, entries: list[Any], wait_slot: WaitSlot | None) -> str | None:
        """One response per request that is due one, or a single error for the batch itself."""
        refusal = self._refuse_batch(len(entries))
        if refusal is not None:
            self._observe(INVALID_REQUEST_METHOD, time.perf_counter(), ok=False)
            return encode_error(refusal)
        # The specification lets a batch run concurrently and answer in any order. Its calls
        # share one budget of handler time on the event loop, which consensus shares too.
        budget = _BatchBudget(self.batch_work_seconds, self.batch_answer_bytes)
        responses = await asyncio.gather(*(self._answer(entry, wait_slot, budget) for entry in entries))
        parts = [response for response in responses if response is not None]
        return "[" + ",".join(parts) + "]" if parts else None

    def _refuse_batch(self, length: int) -> RpcError | None:
        """The error for a batch that is empty or too long, or None."""
        if length == 0:
            return standard_error(INVALID_REQUEST, reason="a batch must hold at least one request")
        if length > self.max_batch_length:
            return standard_error(
                INVALID_REQUEST,
                reason=f"a batch holds at most {self.max_batch_length} requests, got {length}",
                limit="max_batch_length",
                max_batch_length=self.max_batch_length,
                got=length,
            )
        return None

    async def _answer(
        self, entry: Any, wait_slot: WaitSlot | None, budget: _BatchBudget | None = None
    ) -> str | None:
        """The response to one request, or None for a notification. A call of a batch first
        lets the event loop serve what else is ready, and, if its method is charged (a read
        whose time is its own work on the loop), is answered busy (-32000) once the batch's
        charged calls have used its budget. Any call of a batch is answered busy once the
        answers given before it reach the batch's answer bytes (the first is always given)."""
        if budget is not None:
            await asyncio.sleep(0)
        started = time.perf_counter()
        try:
            call = read_call(entry)
        except InvalidRequestError as error:
            self._observe(INVALID_REQUEST_METHOD, started, ok=False)
            return encode_error(standard_error(INVALID_REQUEST, reason=error.reason), error.request_id)
        label = call.method if call.method in self._methods else UNKNOWN_METHOD
        method = self._methods.get(call.method)
        charged = budget if method is not None and method.charged and not method.waits else None
        if charged is not None and charged.spent >= charged.seconds:
            self._observe(label, started, ok=False)
            busy = SERVER_BUSY.error({"limit": "batch_work_seconds", "batch_work_seconds": self.batch_work_seconds})
            return None if call.is_notification else encode_error(busy, call.id)
        try:
            result = await self._invoke(call, wait_slot)
        except RpcError as error:
            if charged is not None:
                charged.spent += time.perf_counter() - started
            self._observe(label, started, ok=False)
            return None if call.is_notification else encode_error(error, call.id)
        if charged is not None:
            charged.spent += time.perf_counter() - started
        self._observe(label, started, ok=True)
        if call.is_notification:
            return None
        try:
            answer = _encode({"jsonrpc": "2.0", "result": result, "id": call.id})
        except (TypeError, ValueError, RecursionError):
            logger.exception("method %s returned a result that is not JSON", call.method)
            return encode_error(standard_error(INTERNAL_ERROR, method=call.method), call.id)
        if budget is not None:
            if budget.answered >= budget.answer_bytes:
                busy = SERVER_BUSY.error({"limit": "batch_answer_bytes", "batch_answer_bytes": budget.answer_bytes})
                return encode_error(busy, call.id)
            budget.answered += len(answer)
        return answer

    def _observe(self, method: str, started: float, *, ok: bool) -> None:
        if self._observer is not None:
            self._observer.observe_call(method, time.perf_counter() - started, ok=ok)

    async def _invoke(self, call: Call, wait_slot: WaitSlot | None) -> Any:
        """The handler's result, or the ``RpcError`` to answer with."""
        method = self._methods.get(call.method)
        if method is None:
            raise standard_error(METHOD_NOT_FOUND, method=call.method)
        try:
            arguments = method.bind(call.params)
            slot = wait_slot() if method.waits and wait_slot is not None else contextlib.nullcontext()
            with slot:
                return await method.handler(*arguments)
        except RpcError:
            raise
        except Exception:
            logger.exception("method %s failed", call.method)
            raise standard_error(INTERNAL_ERROR, method=call.method) from None

