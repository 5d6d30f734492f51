"""Tests for p2p/read_gate.py, which reaches into aiohttp: they fail loudly when an
aiohttp release moves the parser, the reader queue or the client's connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from mura.p2p.read_gate import ReadGate, gate_client_reads, gate_server_reads

from .conftest import HOST, free_port

MiB = 1024 * 1024
BUDGET = 1000

ServerScript = Callable[[web.WebSocketResponse, ReadGate | None], Awaitable[None]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """``await serve(script, gated=...)``: a websocket server running ``script``; its URL."""
    runners: list[web.AppRunner] = []

    async def start(script: ServerScript, *, gated: bool) -> str:
        async def handle(request: web.Request) -> web.WebSocketResponse:
            websocket = web.WebSocketResponse(max_msg_size=2 * MiB)
            await websocket.prepare(request)
            gate = gate_server_reads(request, websocket, budget=BUDGET) if gated else None
            await script(websocket, gate)
            await websocket.close()
            return websocket

        app = web.Application()
        app.router.add_get("/", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, HOST, port).start()
        return f"http://{HOST}:{port}/"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_a_server_gate_refuses_bytes_past_its_budget_like_an_oversized_message(
    serve: Callable[..., Awaitable[str]],
) -> None:
    seen: list[aiohttp.WSMessage] = []
    gates: list[ReadGate] = []

    async def script(websocket: web.WebSocketResponse, gate: ReadGate | None) -> None:
        assert gate is not None
        gates.append(gate)
        seen.append(await websocket.receive())
        await websocket.send_bytes(b"ack")
        seen.append(await websocket.receive())

    url = await serve(script, gated=True)
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as websocket:
        await websocket.send_bytes(b"small" * 10)
        assert (await websocket.receive(timeout=5)).data == b"ack"
        await websocket.send_bytes(b"x" * MiB)
        await websocket.receive(timeout=5)
    assert seen[0].data == b"small" * 10
    assert seen[1].type is aiohttp.WSMsgType.ERROR and seen[1].data.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    assert gates[0].exceeded and gates[0].received <= BUDGET + 256 * 1024
    assert websocket.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


async def test_an_open_gate_hands_the_parser_back(serve: Callable[..., Awaitable[str]]) -> None:
    sizes: list[int] = []

    async def script(websocket: web.WebSocketResponse, gate: ReadGate | None) -> None:
        assert gate is not None
        sizes.append(len((await websocket.receive()).data))
        gate.open()
        assert websocket._reader is not None and gate is not getattr(websocket, "_parser", None)
        await websocket.send_bytes(b"open")
        sizes.append(len((await websocket.receive()).data))

    url = await serve(script, gated=True)
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as websocket:
        await websocket.send_bytes(b"hello")
        assert (await websocket.receive(timeout=5)).data == b"open"
        await websocket.send_bytes(b"x" * MiB)
        await websocket.receive(timeout=5)
    assert sizes == [5, MiB]


async def test_a_client_gate_refuses_a_server_that_sends_too_much(serve: Callable[..., Awaitable[str]]) -> None:
    async def script(websocket: web.WebSocketResponse, gate: ReadGate | None) -> None:
        await websocket.receive()
        await websocket.send_bytes(b"x" * 100_000)
        await websocket.receive()

    url = await serve(script, gated=False)
    async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=2 * MiB) as websocket:
        gate = gate_client_reads(websocket, budget=BUDGET)
        await websocket.send_bytes(b"go")
        message = await websocket.receive(timeout=5)
    assert message.type is aiohttp.WSMsgType.ERROR and message.data.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    assert gate.exceeded


async def test_a_client_gate_lets_everything_through_once_open(serve: Callable[..., Awaitable[str]]) -> None:
    async def script(websocket: web.WebSocketResponse, gate: ReadGate | None) -> None:
        await websocket.receive()
        await websocket.send_bytes(b"x" * MiB)
        await websocket.receive()

    url = await serve(script, gated=False)
    async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=2 * MiB) as websocket:
        gate = gate_client_reads(websocket, budget=BUDGET)
        gate.open()
        await websocket.send_bytes(b"go")
        message = await asyncio.wait_for(websocket.receive(), 5)
    assert len(message.data) == MiB and not gate.exceeded


def test_invalid_protocol_fails_loudly() -> None:
    class NotAiohttp:
        pass

    with pytest.raises(RuntimeError, match="update that module"):
        gate_client_reads(NotAiohttp(), budget=BUDGET)  # type: ignore[arg-type]
