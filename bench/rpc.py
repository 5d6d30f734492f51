"""A small asynchronous JSON-RPC 2.0 client over one keep-alive aiohttp session."""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import aiohttp

JSON_HEADERS = {"Content-Type": "application/json"}


class RpcFailure(Exception):
    """A node answered a call with a JSON-RPC error."""

    def __init__(self, method: str, error: dict[str, Any]) -> None:
        super().__init__(f"{method}: {error.get('code')} {error.get('message')} {error.get('data')}")
        self.error = error


class Rpc:
    """JSON-RPC calls and batches to any node URL, sharing keep-alive connections."""

    def __init__(self, *, timeout_seconds: float = 10.0, connections: int = 16) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._connections)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)

    async def stop(self) -> None:
        """Close the session; idempotent."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def __aenter__(self) -> Rpc:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.stop()

    async def post(self, url: str, body: bytes) -> Any:
        """POST a JSON-RPC body as is; the decoded answer."""
        assert self._session is not None, "Rpc.start() first"
        async with self._session.post(url, data=body, headers=JSON_HEADERS) as response:
            return json.loads(await response.read())

    async def call(self, url: str, method: str, *params: Any) -> Any:
        """One call's result; a JSON-RPC error raises ``RpcFailure``."""
        request = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        answer = await self.post(url, json.dumps(request).encode())
        if "error" in answer:
            raise RpcFailure(method, answer["error"])
        return answer["result"]

    async def batch(self, url: str, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[dict[str, Any]]:
        """One batch; the response objects (``result`` or ``error``) in the order of ``calls``."""
        requests = [
            {"jsonrpc": "2.0", "id": index, "method": method, "params": list(params)}
            for index, (method, params) in enumerate(calls)
        ]
        answer = await self.post(url, json.dumps(requests).encode())
        if isinstance(answer, dict):
            raise RpcFailure("batch", answer.get("error", {}))
        by_id = {response["id"]: response for response in answer}
        return [by_id[index] for index in range(len(calls))]
