"""JSON-RPC error codes, the error a method raises, and the table of application errors.

The five standard codes come from the JSON-RPC 2.0 specification. Mura's own
errors sit in the range the specification leaves to servers (-32000..-32099);
each is declared once here as an ``ApplicationError`` with a stable code, so
that no two errors share a code and the OpenRPC document can list them.

==========  =====================  ================================================
code        name                   ``data``
==========  =====================  ================================================
-32700      parse error            ``{"reason"}``: why the body is not JSON
-32600      invalid request        ``{"reason"}``, and ``{"limit", <limit>: n,
                                   "got"}`` for body size and batch length, or
                                   ``{"limit", "body_timeout_seconds"}`` for a
                                   body too slow to arrive (HTTP 408)
-32601      method not found       ``{"method"}``
-32602      invalid params         ``{"param"`` or ``"position", "reason"}``, plus
                                   ``"rule"`` when a chain rule refused the value
-32603      internal error         ``{"method"}``; the traceback is only logged
-32000      server busy            ``{"limit", <limit>: n}``: requests in flight
                                   (``max_concurrent_requests``, HTTP 503),
                                   ``tx_wait`` calls waiting (``max_waiting``),
                                   websockets (``max_websockets``,
                                   ``max_websockets_per_source``, HTTP 503) or
                                   a websocket's subscriptions
                                   (``max_subscriptions_per_websocket``)
-32001      node stopping          ``{"reason"}``
-32010      transaction refused    ``{"rule", "message", ...details}``
-32011      mempool refused        ``{"rule", "message", ...details}``
-32020      block not found        ``{"height"}`` or ``{"hash"}``, and ``"head"``
                                   (also a ``height`` param above the head)
-32021      transaction not found  ``{"transaction_hash", "pending"}``
-32022      no certificate         ``{"height", "reason"}``
-32023      transaction dropped    ``{"transaction_hash", "rule", "message"}``, and
                                   ``"replaced_by"`` when the rule is ``replaced``
-32024      unknown asset          ``{"asset"}``
-32025      not a bond             ``{"asset"}``
-32026      no offering            ``{"bond"}``
-32027      validators unknown     ``{"height", "head", "known_up_to"}``
-32030      wait timed out         ``{"transaction_hash", "timeout_seconds",
                                   "pending"}``
-32040      not kept               ``{"height", "kept_from", "reason"}``
-32050      websocket only         ``{"reason"}``: a subscription asked for over
                                   HTTP
==========  =====================  ================================================
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mura.chain.drops import Dropped
from mura.chain.errors import Invalid

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

#: The messages the specification gives the standard codes.
STANDARD_MESSAGES: Mapping[int, str] = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
}

#: The range the specification reserves for implementation-defined server errors.
APPLICATION_CODES = range(-32099, -32000 + 1)


class RpcError(Exception):
    """A JSON-RPC error response: raised by a method (or the engine) to answer with it."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_object(self) -> dict[str, Any]:
        """The ``error`` member of the response."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = json_safe(self.data)
        return error


class InvalidParams(RpcError):
    """-32602: a param is missing, unexpected or refused; ``data`` names it and says why."""

    def __init__(self, reason: str, *, param: str | None = None, position: int | None = None, **extra: Any) -> None:
        data: dict[str, Any] = {}
        if param is not None:
            data["param"] = param
        if position is not None:
            data["position"] = position
        data["reason"] = reason
        data.update(extra)
        super().__init__(INVALID_PARAMS, STANDARD_MESSAGES[INVALID_PARAMS], data)


def standard_error(code: int, **data: Any) -> RpcError:
    """One of the five standard errors with its specified message and ``data``."""
    return RpcError(code, STANDARD_MESSAGES[code], data or None)


@dataclass(frozen=True, slots=True)
class ApplicationError:
    """A documented server error with a stable code in -32000..-32099."""

    #: The stable code clients may act on.
    code: int
    #: The short message every response with this code carries.
    message: str
    #: What the error means and what its ``data`` holds (shown in OpenRPC).
    description: str

    def __post_init__(self) -> None:
        if self.code not in APPLICATION_CODES:
            raise ValueError(f"application error codes lie in -32099..-32000, got {self.code}")

    def error(self, data: Any = None) -> RpcError:
        """The error to raise, with ``data`` saying what was wrong."""
        return RpcError(self.code, self.message, data)


SERVER_BUSY = ApplicationError(
    -32000,
    "Server busy",
    "The server is at one of its limits; retry shortly. data: {limit, <limit>: n}, where limit is "
    "'max_concurrent_requests' (HTTP requests and websocket frames in flight), 'max_waiting' (tx_wait calls "
    "waiting), 'max_connections_per_source' (open connections from one address), 'max_websockets' or "
    "'max_websockets_per_source' (open websockets, in all or from one address), "
    "'max_subscriptions_per_websocket' (subscriptions on one websocket: unsubscribe one first) or "
    "'batch_work_seconds' (a batch used its second of handler time: the calls left were not run; send "
    "them again).",
)
NODE_STOPPING = ApplicationError(
    -32001,
    "Node stopping",
    "The node is shutting down and ended the call before it could finish. data: {reason}.",
)
TRANSACTION_REFUSED = ApplicationError(
    -32010,
    "Transaction refused",
    "The transaction breaks a chain rule and will not be accepted as it is. "
    "data: {rule, message, ...facts}, e.g. {rule: 'nonce_too_low', expected: 7, got: 5}.",
)
MEMPOOL_REFUSED = ApplicationError(
    -32011,
    "Mempool refused",
    "The transaction may be valid but the mempool cannot take it now (full, duplicate, pending spend "
    "over balance, a replacement too soon after the sender's last, a transaction replaced by one still "
    "pending). data: {rule, message, ...facts}.",
)
BLOCK_NOT_FOUND = ApplicationError(
    -32020,
    "Block not found",
    "No final block has this height or hash (yet); also the answer to a height param above the head. "
    "data: {height} or {hash}, and head: the height of the last final block.",
)
TRANSACTION_NOT_FOUND = ApplicationError(
    -32021,
    "Transaction not found",
    "No final block holds a transaction with this hash. data: {transaction_hash, pending}: pending is "
    "true when this node's mempool holds it, waiting for a block.",
)
NO_CERTIFICATE = ApplicationError(
    -32022,
    "No certificate",
    "The block exists but has no commit certificate: the genesis block is final by agreement on the "
    "genesis file, not by votes. data: {height, reason}.",
)
TRANSACTION_DROPPED = ApplicationError(
    -32023,
    "Transaction dropped",
    "The transaction is not final and this node dropped it from its mempool: it expired, was replaced "
    "by another with its sender and nonce, or can never be included (e.g. another transaction used its "
    "nonce). Another node may still hold it; resubmitting with the same nonce is safe. data: "
    "{transaction_hash, rule, message}, and replaced_by when the rule is 'replaced'.",
)
NOT_KEPT = ApplicationError(
    -32040,
    "Not kept on this node",
    "The block or history asked for lies below the height this node joined at by state sync: it holds "
    "the state from that height on and no block below it (a node with sync.mode full keeps them all). "
    "data: {height, kept_from, reason}.",
)
UNKNOWN_ASSET = ApplicationError(
    -32024,
    "Unknown asset",
    "No asset with this id has been issued on this network (asset_list lists those that have). data: {asset}.",
)
NOT_A_BOND = ApplicationError(
    -32025,
    "Not a bond",
    "The asset exists but was issued as a plain asset, not as a bond (bond_list lists the bonds). data: {asset}.",
)
NO_OFFERING = ApplicationError(
    -32026,
    "No offering",
    "The bond's issuer has opened no offering of it. data: {bond}.",
)
VALIDATORS_UNKNOWN = ApplicationError(
    -32027,
    "Validator set not known",
    "No validator set is known for the height: heights start at 1, and a node knows the set of every height up "
    "to its head's + 2. data: {height, head, known_up_to}.",
)
WEBSOCKET_ONLY = ApplicationError(
    -32050,
    "Websocket only",
    "The method keeps sending to its caller, which HTTP cannot: call it over a websocket at /ws on the "
    "same port. data: {reason}.",
)
WAIT_TIMED_OUT = ApplicationError(
    -32030,
    "Wait timed out",
    "The transaction did not become final within the timeout; it may still. data: {transaction_hash, "
    "timeout_seconds, pending}: pending is true when this node's mempool holds it.",
)


def invalid_data(error: Invalid) -> dict[str, Any]:
    """The ``data`` of an error caused by a chain rule: its facts, its rule and its message."""
    return {**json_safe(error.details), "rule": error.rule, "message": error.message}


def dropped_data(dropped: Dropped) -> dict[str, Any]:
    """The ``data`` of ``TRANSACTION_DROPPED``: the hash, the rule and why."""
    data: dict[str, Any] = {
        "transaction_hash": "0x" + dropped.transaction_hash.hex(),
        "rule": dropped.rule,
        "message": dropped.message,
    }
    if dropped.replaced_by is not None:
        data["replaced_by"] = "0x" + dropped.replaced_by.hex()
    return data


def json_safe(value: Any) -> Any:
    """``value`` with bytes as ``0x`` hex and every container made of JSON types.

    Keeps error ``data`` serializable whatever facts a chain rule attached.
    """
    if value is None or isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, enum.Enum):
        return value.value if isinstance(value.value, (int, str)) else value.name
    if isinstance(value, int):
        return int(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(item) for item in value]
    return str(value)
