"""The HTTP server: lifecycle, health, and the limits on body size and time, batch length,
requests in flight and calls waiting."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from mura.rpc.declarations import Method, Result
from mura.rpc.server import HealthReport, RpcLimits, RpcServer

from .support import Endpoint, Serve, wait_until

DEADLINE = 5.0


class Gate:
    """A method that holds each call until released, and reports how many are held."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.held = 0
        self.all_held = asyncio.Event()
        self.release = asyncio.Event()

    async def wait(self) -> str:
        self.held += 1
        if self.held >= self.expected:
            self.all_held.set()
        await self.release.wait()
        return "released"

    async def ping(self) -> str:
        return "pong"

    def methods(self) -> list[Method]:
        result = Result("word", {"type": "string"}, "A word.")
        return [
            Method(name="test_wait", handler=self.wait, summary="Wait for the gate.", result=result),
            Method(name="test_ping", handler=self.ping, summary="Answer at once.", result=result),
        ]

    def methods_that_wait_long(self) -> list[Method]:
        """``methods()`` and ``test_waitLong``, which waits for the gate as ``tx_wait`` waits for the chain."""
        result = Result("word", {"type": "string"}, "A word.")
        wait_long = Method(name="test_waitLong", handler=self.wait, summary="Wait long.", result=result, waits=True)
        return [*self.methods(), wait_long]


def ping(request_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "test_ping", "id": request_id}


def wait_long(request_id: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "test_waitLong", "id": request_id}


PONG = {"jsonrpc": "2.0", "result": "pong", "id": 1}


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def post_part_of_a_body(server: RpcServer, *, declared: int, sent: bytes) -> Connection:
    """A raw connection that has POSTed headers declaring ``declared`` body bytes, and only ``sent``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = (
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    writer.write(head.encode() + sent)
    await writer.drain()
    return reader, writer


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], Any]:
    """The status, headers (lower-case names) and decoded JSON body of one HTTP response."""
    status_line = await reader.readline()
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, json.loads(body)


# --- lifecycle and health ---------------------------------------------------------------------


async def test_port_zero_picks_a_port_and_stop_is_idempotent(http: aiohttp.ClientSession) -> None:
    server = RpcServer(host="127.0.0.1", port=0, methods=Gate(1).methods())
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port
    await server.start()
    try:
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}/"
        with pytest.raises(RuntimeError, match="already started"):
            await server.start()
        assert await Endpoint(server, http).post(ping()) == (200, {"jsonrpc": "2.0", "result": "pong", "id": 1})
        url = server.url
    finally:
        await server.stop()
    await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await http.post(url, json=ping())


async def test_async_context_manager_starts_and_stops(http: aiohttp.ClientSession) -> None:
    async with RpcServer(host="127.0.0.1", port=0, methods=[]) as server:
        status, response = await Endpoint(server, http).post({"jsonrpc": "2.0", "method": "rpc.discover", "id": 1})
        assert status == 200 and response["result"]["methods"][0]["name"] == "rpc.discover"
    with pytest.raises(RuntimeError):
        _ = server.port


async def test_health_is_ok_while_running(serve: Serve, http: aiohttp.ClientSession) -> None:
    endpoint = await serve(Gate(1).methods())
    async with http.get(endpoint.server.url + "health") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("report", "status", "body"),
    [
        (HealthReport(details={"height": 4}), 200, {"status": "ok", "height": 4}),
        (HealthReport(healthy=False, details={"reason": "store closed"}), 503,
         {"status": "unhealthy", "reason": "store closed"}),
        (None, 503, {"status": "error"}),
    ],
    ids=["details", "unhealthy", "check-raises"],
)
async def test_health_reports_the_node(
    serve: Serve, http: aiohttp.ClientSession, report: HealthReport | None, status: int, body: dict[str, Any]
) -> None:
    def health() -> HealthReport:
        if report is None:
            raise RuntimeError("health check bug")
        return report

    endpoint = await serve([], health=health)
    async with http.get(endpoint.server.url + "health") as response:
        assert (response.status, await response.json()) == (status, body)


async def test_only_post_speaks_json_rpc(serve: Serve, http: aiohttp.ClientSession) -> None:
    endpoint = await serve([])
    async with http.get(endpoint.server.url) as response:
        assert response.status == 405


# --- body and batch limits ---------------------------------------------------------------------


@pytest.fixture
async def small(serve: Serve) -> Endpoint:
    return await serve(Gate(1).methods(), limits=RpcLimits(max_body_bytes=1024, max_batch_length=3))


async def test_oversized_body_is_refused_with_the_limit(small: Endpoint) -> None:
    padded = {**ping(), "params": {}, "padding": "x" * 2000}
    status, response = await small.post(padded)
    assert status == 413
    assert response["id"] is None
    assert response["error"]["code"] == -32600
    data = response["error"]["data"]
    assert data["limit"] == "max_body_bytes" and data["max_body_bytes"] == 1024 and data["got"] > 1024
    assert await small.post(ping()) == (200, {"jsonrpc": "2.0", "result": "pong", "id": 1})


async def test_oversized_chunked_body_is_refused_while_reading(small: Endpoint) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b" " * 512
        yield json.dumps(ping()).encode()

    async with small.session.post(small.server.url, data=chunks()) as response:
        assert response.status == 413
        error = (await response.json())["error"]
    assert error["code"] == -32600 and error["data"]["limit"] == "max_body_bytes" and "got" not in error["data"]
    assert await small.post(ping()) == (200, {"jsonrpc": "2.0", "result": "pong", "id": 1})


async def test_body_at_the_limit_is_accepted(small: Endpoint) -> None:
    raw = json.dumps(ping()).encode()
    raw += b" " * (1024 - len(raw))
    assert await small.post(raw=raw) == (200, {"jsonrpc": "2.0", "result": "pong", "id": 1})


async def test_oversized_batch_is_one_invalid_request_naming_the_limit(small: Endpoint) -> None:
    status, response = await small.post([ping(n) for n in range(4)])
    assert status == 200
    assert response["id"] is None and response["error"]["code"] == -32600
    data = response["error"]["data"]
    assert (data["limit"], data["max_batch_length"], data["got"]) == ("max_batch_length", 3, 4)
    status, responses = await small.post([ping(n) for n in range(3)])
    assert status == 200 and sorted(r["id"] for r in responses) == [0, 1, 2]


# --- bodies slow to arrive ----------------------------------------------------------------------


async def test_slow_bodies_hold_no_slot_and_other_clients_are_served(serve: Serve) -> None:
    endpoint = await serve(Gate(1).methods(), limits=RpcLimits(max_concurrent_requests=2, body_timeout_seconds=60))
    server = endpoint.server
    slow = [await post_part_of_a_body(server, declared=100, sent=b'{"jsonrpc": ') for _ in range(3)]
    try:
        await wait_until(lambda: server.reading == 3, "three slow bodies, one more than the slots, being read")
        assert server.in_flight == 0
        assert await asyncio.gather(*(endpoint.post(ping()) for _ in range(2))) == [(200, PONG)] * 2
        assert server.reading == 3, "the slow clients still hold their connections"
    finally:
        for _, writer in slow:
            writer.close()
    await wait_until(lambda: server.reading == 0, "the slow bodies to be given up when their clients leave")


async def test_a_body_that_does_not_arrive_in_time_is_refused_with_408(serve: Serve) -> None:
    endpoint = await serve(Gate(1).methods(), limits=RpcLimits(body_timeout_seconds=0.1))
    reader, writer = await post_part_of_a_body(endpoint.server, declared=100, sent=b'{"jsonrpc": ')
    try:
        status, headers, response = await asyncio.wait_for(read_response(reader), DEADLINE)
    finally:
        writer.close()
    assert status == 408 and headers["connection"].lower() == "close"
    assert response == {
        "jsonrpc": "2.0",
        "error": {
            "code": -32600,
            "message": "Invalid Request",
            "data": {
                "reason": "the request body did not arrive within 0.1 seconds",
                "limit": "body_timeout_seconds",
                "body_timeout_seconds": 0.1,
            },
        },
        "id": None,
    }
    assert (endpoint.server.reading, endpoint.server.in_flight) == (0, 0)
    assert await endpoint.post(ping()) == (200, PONG)


# --- malformed HTTP --------------------------------------------------------------------------


def server_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What the server and aiohttp logged above DEBUG, or with a traceback at any level."""
    return [
        record for record in caplog.records
        if record.name.startswith(("aiohttp", "mura.rpc")) and (record.levelno > logging.DEBUG or record.exc_info)
        and "listening on" not in record.getMessage()
    ]


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd", "x-unknown"])
async def test_a_compressed_body_is_refused_with_415_and_logs_nothing(
    serve: Serve, caplog: pytest.LogCaptureFixture, encoding: str
) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint = await serve(Gate(1).methods())
    body = json.dumps(ping()).encode()  # not actually compressed: it is refused before it is read
    reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.server.port)
    writer.write(f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Encoding: {encoding}\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    try:
        status, _, response = await asyncio.wait_for(read_response(reader), DEADLINE)
    finally:
        writer.close()
    assert status == 415 and response["error"]["code"] == -32600
    assert "Content-Encoding" in response["error"]["data"]["reason"]
    assert server_lines(caplog) == []
    assert await endpoint.post(ping()) == (200, PONG)


@pytest.mark.parametrize(
    "request_head",
    [
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"\x16\x03\x01\x00\xa5 a TLS hello\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    ],
)
async def test_a_malformed_request_gets_400_and_at_most_one_debug_line(
    serve: Serve, caplog: pytest.LogCaptureFixture, request_head: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint = await serve(Gate(1).methods())
    reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.server.port)
    writer.write(request_head)
    try:
        status_line = await asyncio.wait_for(reader.readline(), DEADLINE)
    finally:
        writer.close()
    assert status_line.split()[1] == b"400", status_line
    assert server_lines(caplog) == []
    aiohttp_lines = [record for record in caplog.records if record.name.startswith("aiohttp.server")]
    assert len(aiohttp_lines) <= 1 and all("\n" not in record.getMessage() for record in aiohttp_lines)


async def test_a_client_hanging_up_mid_body_logs_one_debug_line(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint = await serve(Gate(1).methods())
    _, writer = await post_part_of_a_body(endpoint.server, declared=100, sent=b'{"jsonrpc": ')
    await wait_until(lambda: endpoint.server.reading == 1, "the server to read the body")
    writer.transport.abort()
    await wait_until(lambda: endpoint.server.reading == 0, "the server to give the body up")
    assert server_lines(caplog) == []
    assert [record.getMessage() for record in caplog.records if "hung up" in record.getMessage()] != []
    assert await endpoint.post(ping()) == (200, PONG)


async def test_a_request_head_that_never_completes_is_closed(serve: Serve) -> None:
    endpoint = await serve(Gate(1).methods(), limits=RpcLimits(header_timeout_seconds=0.3))
    connections = [await asyncio.open_connection("127.0.0.1", endpoint.server.port) for _ in range(20)]
    try:
        for _, writer in connections:
            writer.write(b"POST / HTT")
        async with asyncio.timeout(DEADLINE):
            closed = await asyncio.gather(*(reader.read() for reader, _ in connections))
    finally:
        for _, writer in connections:
            writer.close()
    assert closed == [b""] * 20
    assert await endpoint.post(ping()) == (200, PONG)


async def test_connections_past_the_limit_per_source_are_told_server_busy_at_once(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """Idle connections from one address once had no bound but the header timeout: enough
    of them used up the process's file descriptors."""
    caplog.set_level(logging.WARNING, logger="mura.rpc")
    endpoint = await serve(Gate(1).methods(), limits=RpcLimits(max_connections_per_source=5))
    server = endpoint.server
    connections = [await asyncio.open_connection("127.0.0.1", server.port, local_addr=("127.0.0.2", 0))
                   for _ in range(8)]
    try:
        await wait_until(lambda: server.connections_turned_away == 3, "three connections to be turned away")
        assert server.connections_from("127.0.0.2") == 5
        async with asyncio.timeout(DEADLINE):
            refused = [await reader.read() for reader, _ in connections[5:]]
        for answer in refused:
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 ") and b"Connection: close" in head
            error = json.loads(body)["error"]
            assert error["code"] == -32000 and error["data"]["limit"] == "max_connections_per_source"
        assert await endpoint.post(ping()) == (200, PONG), "another address is served"
        for _, writer in connections[:2]:
            writer.close()
        await wait_until(lambda: server.connections_from("127.0.0.2") == 3, "the closed ones to be counted out")
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, local_addr=("127.0.0.2", 0))
        connections.append((reader, writer))
        writer.write(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%s" % (
            len(json.dumps(ping())), json.dumps(ping()).encode()))
        async with asyncio.timeout(DEADLINE):
            assert (await reader.readuntil(b"pong\"")).startswith(b"HTTP/1.1 200 ")
    finally:
        for _, writer in connections:
            writer.close()
    lines = [record.getMessage() for record in caplog.records if "turned away" in record.getMessage()]
    assert len(lines) == 1 and "127.0.0.2" in lines[0], lines


# --- requests in flight ------------------------------------------------------------------------


async def test_requests_over_the_concurrency_limit_are_told_server_busy(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    gate = Gate(expected=2)
    endpoint = await serve(gate.methods(), limits=RpcLimits(max_concurrent_requests=2))
    held = [
        asyncio.create_task(endpoint.post({"jsonrpc": "2.0", "method": "test_wait", "id": n})) for n in range(2)
    ]
    try:
        await asyncio.wait_for(gate.all_held.wait(), DEADLINE)
        assert endpoint.server.in_flight == 2

        status, response = await endpoint.post(ping(7))
        assert status == 503
        assert response["error"] == {
            "code": -32000,
            "message": "Server busy",
            "data": {"limit": "max_concurrent_requests", "max_concurrent_requests": 2},
        }
        async with http.get(endpoint.server.url + "health") as health:
            assert health.status == 200, "health is not counted against the limit"
    finally:
        gate.release.set()
    answers = await asyncio.wait_for(asyncio.gather(*held), DEADLINE)
    assert sorted(response["id"] for status, response in answers) == [0, 1]
    assert all(status == 200 and response["result"] == "released" for status, response in answers)
    assert endpoint.server.in_flight == 0
    assert await endpoint.post(ping(8)) == (200, {"jsonrpc": "2.0", "result": "pong", "id": 8})


async def test_stop_ends_requests_still_in_flight(http: aiohttp.ClientSession) -> None:
    gate = Gate(expected=1)
    server = RpcServer(host="127.0.0.1", port=0, methods=gate.methods(), shutdown_timeout=0.05)
    await server.start()
    held = asyncio.create_task(Endpoint(server, http).post({"jsonrpc": "2.0", "method": "test_wait", "id": 1}))
    await asyncio.wait_for(gate.all_held.wait(), DEADLINE)
    await asyncio.wait_for(server.stop(), DEADLINE)
    with pytest.raises(aiohttp.ClientError):
        await held
    assert server.in_flight == 0


async def test_waiting_calls_hold_no_slot_and_have_their_own_limit(serve: Serve) -> None:
    gate = Gate(expected=2)
    endpoint = await serve(gate.methods_that_wait_long(), limits=RpcLimits(max_concurrent_requests=1, max_waiting=2))
    held = [asyncio.create_task(endpoint.post(wait_long(n))) for n in range(2)]
    try:
        await asyncio.wait_for(gate.all_held.wait(), DEADLINE)
        assert (endpoint.server.waiting, endpoint.server.in_flight) == (2, 0)
        assert await endpoint.post(ping()) == (200, PONG), "the one request slot is free"
        status, response = await endpoint.post(wait_long(3))
        assert status == 200
        assert response["error"] == {
            "code": -32000,
            "message": "Server busy",
            "data": {"limit": "max_waiting", "max_waiting": 2},
        }
    finally:
        gate.release.set()
    answers = await asyncio.wait_for(asyncio.gather(*held), DEADLINE)
    assert [(status, response["result"]) for status, response in answers] == [(200, "released")] * 2
    assert (endpoint.server.waiting, endpoint.server.in_flight) == (0, 0)


async def test_each_waiting_call_of_a_batch_counts_against_the_waiting_limit(serve: Serve) -> None:
    gate = Gate(expected=2)
    endpoint = await serve(gate.methods_that_wait_long(), limits=RpcLimits(max_concurrent_requests=1, max_waiting=2))
    batch = asyncio.create_task(endpoint.post([wait_long(n) for n in range(3)] + [ping(3)]))
    try:
        await asyncio.wait_for(gate.all_held.wait(), DEADLINE)
        assert (endpoint.server.waiting, endpoint.server.in_flight) == (2, 0)
        assert await endpoint.post(ping()) == (200, PONG), "the batch gave its slot up once a call waited"
    finally:
        gate.release.set()
    status, responses = await asyncio.wait_for(batch, DEADLINE)
    assert status == 200
    answers = sorted(response.get("result") or response["error"]["message"] for response in responses)
    assert answers == ["Server busy", "pong", "released", "released"]
    assert (endpoint.server.waiting, endpoint.server.in_flight) == (0, 0)


async def test_one_source_may_hold_only_its_share_of_the_waiting_calls(serve: Serve) -> None:
    gate = Gate(expected=3)
    endpoint = await serve(gate.methods_that_wait_long(), limits=RpcLimits(max_waiting=4, max_waiting_per_source=2))
    server = endpoint.server
    sessions = {address: aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))
                for address in ("127.0.0.2", "127.0.0.3")}
    try:
        near, far = (Endpoint(server, sessions[address]) for address in ("127.0.0.2", "127.0.0.3"))
        held = [asyncio.create_task(near.post(wait_long(n))) for n in range(2)]
        await wait_until(lambda: server.waiting_from("127.0.0.2") == 2, "two calls waiting from one address")
        status, refused = await near.post([wait_long(3), ping(4)])
        assert status == 200 and {answer["id"]: answer.get("error") for answer in refused} == {
            3: {"code": -32000, "message": "Server busy",
                "data": {"limit": "max_waiting_per_source", "max_waiting_per_source": 2}},
            4: None,
        }
        held.append(asyncio.create_task(far.post(wait_long(5))))
        await asyncio.wait_for(gate.all_held.wait(), DEADLINE)
        assert (server.waiting, server.waiting_from("127.0.0.3")) == (3, 1), "another address still waits"
        gate.release.set()
        answers = await asyncio.wait_for(asyncio.gather(*held), DEADLINE)
        assert [response["result"] for _, response in answers] == ["released"] * 3
    finally:
        gate.release.set()
        for session in sessions.values():
            await session.close()
    assert (server.waiting, server.waiting_from("127.0.0.2"), server.waiting_from("127.0.0.3")) == (0, 0, 0)


async def test_a_client_that_hangs_up_gives_its_waiting_places_back_at_once(serve: Serve) -> None:
    """Its handler is cancelled: the calls do not hold max_waiting until they time out."""
    gate = Gate(expected=3)
    endpoint = await serve(gate.methods_that_wait_long())
    body = json.dumps([wait_long(n) for n in range(3)]).encode()
    _, writer = await post_part_of_a_body(endpoint.server, declared=len(body), sent=body)
    await asyncio.wait_for(gate.all_held.wait(), DEADLINE)
    assert endpoint.server.waiting == 3
    writer.close()
    await wait_until(lambda: endpoint.server.waiting == 0, "the hung-up client's calls to stop waiting")
    assert endpoint.server.in_flight == 0 and not gate.release.is_set(), "no call ended on its own"
    assert await endpoint.post(ping()) == (200, PONG)


def large_answer(size: int) -> Method:
    """``test_large``: a string of ``size`` bytes, for clients that take it slowly or not at all."""

    async def large() -> str:
        return "x" * size

    return Method(name="test_large", handler=large, summary="A long string.",
                  result=Result("text", {"type": "string"}, "The string."))


def large_call(*, close: bool) -> bytes:
    """The whole HTTP request calling ``test_large``, asking to close the connection after it or not."""
    body = json.dumps({"jsonrpc": "2.0", "method": "test_large", "id": 1}).encode()
    connection = b"Connection: close\r\n" if close else b""
    return (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + connection + b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


async def test_a_client_that_takes_nothing_of_its_answer_is_cut_off(serve: Serve) -> None:
    """A client that asked for a large answer and read nothing once pinned it in memory for as long
    as it kept its connection open."""

    endpoint = await serve([large_answer(32 * 1024 * 1024)], limits=RpcLimits(answer_send_seconds=0.5))
    _, writer = await asyncio.open_connection("127.0.0.1", endpoint.server.port)
    writer.write(large_call(close=False))  # and then it reads nothing
    await wait_until(lambda: endpoint.server.answers_cut_off == 1, "the client that reads nothing to be cut off")
    await wait_until(lambda: endpoint.server.connections_from("127.0.0.1") == 0, "its connection to be gone")
    writer.close()
    status, answer = await endpoint.post({"jsonrpc": "2.0", "method": "test_large", "id": 2})
    assert status == 200 and len(answer["result"]) == 32 * 1024 * 1024, "a client that reads is answered"


async def test_a_client_that_reads_its_answer_slowly_is_not_cut_off(serve: Serve) -> None:
    """Only a client that stopped taking its answer is cut off: one on a slow link, taking a little
    in every window, gets all of it however long that takes."""
    size = 16 * 1024 * 1024
    endpoint = await serve([large_answer(size)], limits=RpcLimits(answer_send_seconds=0.5))
    reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.server.port, limit=1024 * 1024)
    writer.write(large_call(close=True))
    received = 0
    started = asyncio.get_running_loop().time()
    while chunk := await asyncio.wait_for(reader.read(1024 * 1024), DEADLINE):
        received += len(chunk)
        await asyncio.sleep(0.2)  # a slow link: about 5 MiB a second
    writer.close()
    assert received > size and endpoint.server.answers_cut_off == 0
    assert asyncio.get_running_loop().time() - started > 1.0, "the answer took several windows to take"


async def test_a_client_that_takes_a_trickle_of_its_answer_is_not_cut_off(serve: Serve) -> None:
    """A few kilobytes a second leave the transport's own buffer where it was for many windows (the
    kernel queue in front of it is megabytes): the bytes the kernel still holds count too."""
    size = 8 * 1024 * 1024
    endpoint = await serve([large_answer(size)], limits=RpcLimits(answer_send_seconds=0.5))
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a phone on a poor link
    client.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_connect(client, ("127.0.0.1", endpoint.server.port))
        await loop.sock_sendall(client, large_call(close=True))
        received = 0
        started = loop.time()
        while loop.time() - started < 3.0:  # six windows at about 20 KiB a second, straight from the socket
            received += len(await asyncio.wait_for(loop.sock_recv(client, 2048), DEADLINE))
            await asyncio.sleep(0.1)
        assert endpoint.server.answers_cut_off == 0
        assert 0 < received < size, "the client read a trickle of its answer"
    finally:
        client.close()


@pytest.mark.parametrize(
    "limit",
    ["max_body_bytes", "body_timeout_seconds", "header_timeout_seconds", "max_batch_length",
     "max_concurrent_requests", "max_waiting", "max_waiting_per_source", "backlog", "max_connections_per_source",
     "refusal_log_interval", "answer_send_seconds"],
)
def test_limits_must_be_positive(limit: str) -> None:
    with pytest.raises(ValueError, match=limit):
        RpcLimits(**{limit: 0})
