"""Tests for p2p/read_gate.py, which reaches into aiohttp: they fail loudly when an
aiohttp release moves the parser, the reader queue or the client's connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web, web_protocol

from mura.p2p.read_gate import (
    ReadGate,
    SentBeforeUpgrade,
    UnsupportedAiohttp,
    check_supported,
    gate_client_reads,
    prepare_gated,
)

from .conftest import HOST, free_port, wait_for

MiB = 1024 * 1024
BUDGET = 1000

ServerScript = Callable[[web.WebSocketResponse, ReadGate | None], Awaitable[None]]
UPGRADE = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """``await serve(script, gated=...)``: a websocket server running ``script``; its URL.
    A gated server answers 400 when ``prepare_gated`` refuses the upgrade."""
    runners: list[web.AppRunner] = []

    async def start(script: ServerScript, *, gated: bool) -> str:
        async def handle(request: web.Request) -> web.StreamResponse:
            websocket = web.WebSocketResponse(max_msg_size=2 * MiB)
            gate = None
            if gated:
                try:
                    gate = await prepare_gated(request, websocket, budget=BUDGET)
                except SentBeforeUpgrade as error:
                    return web.Response(status=400, text=str(error))
            else:
                await websocket.prepare(request)
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


def masked_frame(payload: bytes) -> bytes:
    """A client's binary websocket message (mask 0000: the payload goes as it is)."""
    if len(payload) < 126:
        return bytes([0x82, 0x80 | len(payload)]) + bytes(4) + payload
    return bytes([0x82, 0x80 | 126]) + len(payload).to_bytes(2, "big") + bytes(4) + payload


async def test_bytes_sent_with_the_upgrade_request_count_against_the_budget(
    serve: Callable[..., Awaitable[str]],
) -> None:
    """600 bytes in the same write as the upgrade request, 600 more after the answer: the gate
    counts all 1,200 against its budget of 1,000 (it once counted only the last 600)."""
    gates: list[ReadGate] = []
    seen: list[aiohttp.WSMessage] = []

    async def script(websocket: web.WebSocketResponse, gate: ReadGate | None) -> None:
        assert gate is not None
        gates.append(gate)
        seen.append(await websocket.receive())
        seen.append(await websocket.receive())

    url = await serve(script, gated=True)
    reader, writer = await asyncio.open_connection(HOST, int(url.rsplit(":", 1)[1].strip("/")))
    try:
        early = masked_frame(b"e" * 592)
        writer.write(UPGRADE + early)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.split()[1] == b"101"
        writer.write(masked_frame(b"l" * 592))
        await writer.drain()
        await wait_for(lambda: len(seen) >= 2, "both messages to reach the handler")
    finally:
        writer.transport.abort()
    assert seen[0].data == b"e" * 592, "what came early still reaches the parser, once counted"
    assert seen[1].type is aiohttp.WSMsgType.ERROR and seen[1].data.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    assert gates[0].exceeded and gates[0].received == 2 * len(early)


async def test_more_than_the_budget_with_the_upgrade_request_is_refused_before_any_parsing(
    serve: Callable[..., Awaitable[str]],
) -> None:
    """100 KiB behind the upgrade request: no upgrade at all (the bytes once reached the
    parser uncounted, and the gate's bound was a socket read, 256 KiB, not its budget)."""
    scripts: list[ReadGate | None] = []

    async def script(websocket: web.WebSocketResponse, gate: ReadGate | None) -> None:
        scripts.append(gate)

    url = await serve(script, gated=True)
    reader, writer = await asyncio.open_connection(HOST, int(url.rsplit(":", 1)[1].strip("/")))
    try:
        header = bytes([0x82, 0xFF]) + (16 * MiB).to_bytes(8, "big") + bytes(4)  # a 16 MiB message begins
        writer.write(UPGRADE + header + bytes(100 * 1024))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        body = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.transport.abort()
    assert head.split()[1] == b"400", head
    assert b"sent with the upgrade request" in body and scripts == []


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


def test_an_aiohttp_that_keeps_its_parser_elsewhere_is_refused_once_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    check_supported()  # the installed aiohttp
    monkeypatch.setattr(web_protocol.RequestHandler, "__slots__", ("_payload_parser",))
    with pytest.raises(UnsupportedAiohttp, match="update that module"):
        check_supported()
