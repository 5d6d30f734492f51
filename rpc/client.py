"""A small blocking JSON-RPC 2.0 client over HTTP, for the ``mura`` command and scripts.

Blocking on purpose: a command makes a few calls in a row and has nothing to
do meanwhile, and the standard library's ``urllib`` needs no event loop.
Like aiohttp's client it ignores proxy environment variables, since a node's
RPC is reached directly. Every failure is one ``RpcClientError``:
``NodeUnreachable`` when no answer came, ``BadResponse`` when the answer is
not JSON-RPC, ``RemoteError`` when the node answered with an error object.
"""

from __future__ import annotations

import itertools
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8700"
DEFAULT_TIMEOUT_SECONDS = 10.0
#: JSON-RPC error code of a transaction the node dropped from its mempool (never final there).
TRANSACTION_DROPPED = -32023
#: JSON-RPC error code of an asset id no issue created.
UNKNOWN_ASSET = -32024
#: Failures that happen before a request leaves this machine: it certainly did not arrive.
_NOT_SENT = (ConnectionRefusedError, socket.gaierror)


class RpcClientError(Exception):
    """A call did not return a result."""


class NodeUnreachable(RpcClientError):
    """No HTTP answer came from the node: refused, timed out, or not an HTTP server.

    ``may_have_arrived`` is False only when the request certainly never reached the node
    (the connection was refused, or the host has no address); after a timeout or a reset
    the node may have received the request, and acted on it.
    """

    def __init__(self, message: str, *, may_have_arrived: bool = True) -> None:
        super().__init__(message)
        self.may_have_arrived = may_have_arrived


class BadResponse(RpcClientError):
    """The node answered, but not with a JSON-RPC response to this call."""


class RemoteError(RpcClientError):
    """The node answered a call of ``method`` with a JSON-RPC error object.

    ``str()`` of it is one line a person can act on, written from the
    documented ``data`` of Mura's error codes (see ``mura.rpc.errors``).
    """

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        self.method = method
        self.code = code
        self.message = message
        self.data = data
        super().__init__(self._describe())

    def _describe(self) -> str:
        data = self.data if isinstance(self.data, dict) else {}
        if self.code in (-32010, -32011):
            return f"transaction refused ({data.get('rule')}): {data.get('message')}"
        if self.code == -32602:
            return f"invalid {data.get('param') or 'param ' + str(data.get('position'))}: {data.get('reason')}"
        if self.code == -32020:
            asked = data.get("hash", data.get("height"))
            return f"no final block {asked}; the chain's head is at height {data.get('head')}"
        if self.code == UNKNOWN_ASSET:
            return f"no asset {data.get('asset')} on this network (mura asset list shows those there are)"
        if self.code in (-32021, -32030):
            return self._describe_not_final(data)
        if self.code == TRANSACTION_DROPPED:
            replaced = f" by {data['replaced_by']}" if data.get("replaced_by") else ""
            return (
                f"transaction {data.get('transaction_hash')} was dropped ({data.get('rule')}{replaced}): "
                f"{data.get('message')}"
            )
        if self.code == -32601:
            return f"the node does not serve {self.method}: is it an older version?"
        detail = f": {json.dumps(self.data)}" if self.data is not None else ""
        return f"{self.method} failed: {self.message} ({self.code}){detail}"

    def _describe_not_final(self, data: dict[str, Any]) -> str:
        transaction_hash = data.get("transaction_hash")
        where = "pending in the node's mempool" if data.get("pending") else "unknown to this node"
        if self.code == -32021:
            return f"transaction {transaction_hash} is not final: {where}"
        return (
            f"transaction {transaction_hash} not final after {data.get('timeout_seconds')} s ({where}); "
            f"look again with: mura tx {transaction_hash}"
        )


class RpcClient:
    """Calls the JSON-RPC endpoint at ``url``, one request per call."""

    def __init__(self, url: str = DEFAULT_URL, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        """``ValueError`` unless ``url`` is an ``http://`` or ``https://`` URL with a host."""
        shape = f"the node's URL must look like http://HOST:PORT, got {url[:60]!r}"
        try:
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
            (parts.hostname or "").encode("idna")
        except ValueError:  # UnicodeError is one
            raise ValueError(shape) from None
        if parts.scheme not in ("http", "https") or not parts.hostname or not url.isprintable() or " " in url:
            raise ValueError(shape)
        self.url = url if url.endswith("/") else url + "/"
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, method: str, params: Sequence[Any] | Mapping[str, Any] = (), *, timeout: float | None = None) -> Any:
        """The result of ``method``; waits at most ``timeout`` seconds (default: the client's)."""
        request_id = next(self._ids)
        payload = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": _params(params)}
        body = self._post(json.dumps(payload).encode(), self.timeout if timeout is None else timeout)
        return _read_response(body, method, request_id)

    def _post(self, body: bytes, timeout: float) -> bytes:
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        try:
            with self._opener.open(request, timeout=timeout) as answer:
                return answer.read()  # type: ignore[no-any-return]
        except urllib.error.HTTPError as error:
            # The server answers its limits (413, 503) with a JSON-RPC error body.
            text: bytes = error.read()
            if text:
                return text
            raise BadResponse(f"the node at {self.url} answered HTTP {error.code} with no body") from None
        except urllib.error.URLError as error:
            raise NodeUnreachable(
                f"cannot reach the node at {self.url}: {_reason(error.reason)}",
                may_have_arrived=not isinstance(error.reason, _NOT_SENT),
            ) from None
        except ValueError as error:  # http.client's InvalidURL: refused before anything was sent
            raise NodeUnreachable(f"cannot call the node at {self.url}: {error}", may_have_arrived=False) from None
        except TimeoutError:
            raise NodeUnreachable(f"the node at {self.url} did not answer within {timeout:g} s") from None
        except OSError as error:
            raise NodeUnreachable(
                f"cannot reach the node at {self.url}: {_reason(error)}",
                may_have_arrived=not isinstance(error, _NOT_SENT),
            ) from None


def _params(params: Sequence[Any] | Mapping[str, Any]) -> list[Any] | dict[str, Any]:
    return dict(params) if isinstance(params, Mapping) else list(params)


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason)


def _read_response(body: bytes, method: str, request_id: int) -> Any:
    try:
        response = json.loads(body)
    except ValueError:
        raise BadResponse("the node's answer is not JSON") from None
    if not isinstance(response, dict) or response.get("jsonrpc") != "2.0":
        raise BadResponse("the node's answer is not a JSON-RPC 2.0 response")
    error = response.get("error")
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        if not isinstance(code, int) or not isinstance(message, str):
            raise BadResponse("the node's error has no integer code and text message")
        raise RemoteError(method, code, message, error.get("data"))
    if response.get("id") != request_id or "result" not in response:
        raise BadResponse("the node's answer does not answer this request")
    return response["result"]
