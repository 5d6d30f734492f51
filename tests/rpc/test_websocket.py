"""JSON-RPC over websockets at /ws (rpc/websocket.py), with real sockets: subscriptions to
final blocks, the same methods and slots as POST, the limits on websockets, subscriptions,
unsent notifications and frame size, frames that are not requests, and stopping."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, hdrs

from mura.chain.block import Block, Header
from mura.chain.keys import SigningKey
from mura.chain.transaction import Transfer
from mura.rpc.cors import CorsPolicy
from mura.rpc.declarations import Method, Result
from mura.rpc.render import render_block_header
from mura.rpc.server import RpcLimits, RpcServer
from mura.rpc.subscriptions import NOTIFICATION_RESULT_SCHEMA, BlockFeed

from .support import DEADLINE, TestNode, schema_problems, wait_until
from .test_server import Gate, wait_long

PREFIX = "tnac"
PROPOSER = SigningKey.from_private_bytes(bytes(range(32))).public_key
SUBSCRIBE = {"jsonrpc": "2.0", "id": 1, "method": "chain_subscribe", "params": ["final_blocks"]}


def block(height: int) -> Block:
    """A block at ``height`` (its contents matter only as the notification shows them)."""
    header = Header("test", height, bytes([height % 256]) * 32, 1_790_000_000_000 + height, PROPOSER,
                    bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32)
    return Block(header, ())


def ws_url(server: RpcServer) -> str:
    return server.url.replace("http://", "ws://", 1) + "ws"


def request(method: str, params: Any = None, request_id: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
    if params is not None:
        message["params"] = params
    return message


async def next_message(socket: aiohttp.ClientWebSocketResponse) -> Any:
    """The next text frame, decoded; fails on anything else or at the deadline."""
    message = await asyncio.wait_for(socket.receive(), DEADLINE)
    assert message.type is WSMsgType.TEXT, message
    return json.loads(message.data)


async def answer(socket: aiohttp.ClientWebSocketResponse, payload: Any) -> Any:
    """Send ``payload`` and return the next frame that is not a notification."""
    await socket.send_str(json.dumps(payload))
    while True:
        message = await next_message(socket)
        if not (isinstance(message, dict) and message.get("method") == "chain_subscription"):
            return message


async def subscribe(socket: aiohttp.ClientWebSocketResponse) -> str:
    response = await answer(socket, SUBSCRIBE)
    assert response["id"] == 1 and response["result"].startswith("0x") and len(response["result"]) == 18, response
    return response["result"]  # type: ignore[no-any-return]


async def notified_height(socket: aiohttp.ClientWebSocketResponse, subscription: str) -> int:
    """The height of the next frame, which must be a notification of ``subscription``."""
    message = await next_message(socket)
    assert message["method"] == "chain_subscription" and message["params"]["subscription"] == subscription, message
    return message["params"]["result"]["height"]  # type: ignore[no-any-return]


async def closing(socket: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    """Read (and drop) text frames until the close frame, which is returned."""
    while True:
        message = await asyncio.wait_for(socket.receive(), DEADLINE)
        if message.type is not WSMsgType.TEXT:
            return message


def logged_problems(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What the server and aiohttp logged above INFO, or with a traceback at any level."""
    return [
        record for record in caplog.records
        if record.name.startswith(("aiohttp", "mura.rpc")) and (record.levelno > logging.INFO or record.exc_info)
    ]


Serving = tuple[RpcServer, BlockFeed]
ServeFeed = Callable[..., Awaitable[Serving]]


@pytest.fixture
async def serve_feed() -> AsyncIterator[ServeFeed]:
    """``await serve_feed(limits=..., methods=...)``: a started server with a feed; stopped at teardown."""
    servers: list[RpcServer] = []

    async def start(*, limits: RpcLimits = RpcLimits(), methods: Any = None, **options: Any) -> Serving:
        feed = BlockFeed(address_prefix=PREFIX)
        server = RpcServer(host="127.0.0.1", port=0, methods=Gate(1).methods() if methods is None else methods,
                           limits=limits, feed=feed, **options)
        await server.start()
        servers.append(server)
        return server, feed

    yield start
    for server in servers:
        await server.stop()


def sample(server: RpcServer, name: str, **labels: str) -> float:
    value = server.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


# --- notifications -----------------------------------------------------------------------------


async def test_each_final_block_is_notified_in_order_with_its_header(
    serve_feed: ServeFeed, http: aiohttp.ClientSession
) -> None:
    server, feed = await serve_feed()
    socket = await http.ws_connect(ws_url(server))
    subscription = await subscribe(socket)
    blocks = [block(height) for height in range(1, 6)]
    for each in blocks:
        feed.block_committed(each)
    for each in blocks:
        message = await next_message(socket)
        assert message == {
            "jsonrpc": "2.0",
            "method": "chain_subscription",
            "params": {"subscription": subscription, "result": render_block_header(each, PREFIX)},
        }
        assert schema_problems(message["params"]["result"], NOTIFICATION_RESULT_SCHEMA) == []
    assert sample(server, "mura_rpc_notifications_sent_total") == 5
    assert sample(server, "mura_rpc_subscriptions") == 1 and sample(server, "mura_rpc_websockets") == 1
    await socket.close()
    await wait_until(lambda: feed.subscriptions == 0 and server.websockets_open == 0, "the socket to be forgotten")


async def test_a_node_notifies_the_block_holding_a_transfer_as_chain_get_block_shows_it(
    node: TestNode, http: aiohttp.ClientSession
) -> None:
    socket = await http.ws_connect(ws_url(node.rpc.server))
    subscription = await subscribe(socket)
    transaction_hash = await node.submit(node.sign(Transfer("NAC", SigningKey.generate().public_key, 5)))
    headers: list[dict[str, Any]] = []
    async with asyncio.timeout(DEADLINE):
        while not headers or headers[-1]["transaction_count"] == 0:
            message = await next_message(socket)
            assert message["params"]["subscription"] == subscription
            headers.append(message["params"]["result"])
    heights = [header["height"] for header in headers]
    assert heights == list(range(heights[0], heights[0] + len(heights))), "no block skipped, none twice"
    for header in headers[-3:]:
        block_answer = await node.rpc.result("chain_getBlock", [header["height"]])
        assert header == {key: value for key, value in block_answer.items() if key != "transactions"}
    final = await node.rpc.result("chain_getBlock", [heights[-1]])
    assert final["transactions"] == [transaction_hash]


async def test_unsubscribe_stops_that_subscription_only(serve_feed: ServeFeed, http: aiohttp.ClientSession) -> None:
    server, feed = await serve_feed()
    socket = await http.ws_connect(ws_url(server))
    first, second = await subscribe(socket), await subscribe(socket)
    feed.block_committed(block(1))
    assert {await notified_height(socket, first), await notified_height(socket, second)} == {1}
    assert (await answer(socket, request("chain_unsubscribe", [first], 2)))["result"] is True
    assert (await answer(socket, request("chain_unsubscribe", [first], 3)))["result"] is False
    assert feed.subscriptions == 1
    for height in (2, 3):
        feed.block_committed(block(height))
        assert await notified_height(socket, second) == height, "nothing for the ended subscription"
    other = await http.ws_connect(ws_url(server))
    refused = await answer(other, request("chain_unsubscribe", [second], 4))
    assert refused["result"] is False, "one websocket cannot end another's subscription"
    malformed = await answer(other, request("chain_unsubscribe", ["0x12"], 5))
    assert malformed["error"]["code"] == -32602 and malformed["error"]["data"]["param"] == "subscription"


async def test_a_subscription_made_in_a_batch_is_notified_only_after_the_batch_is_answered(
    serve_feed: ServeFeed, http: aiohttp.ClientSession
) -> None:
    gate = Gate(expected=1)
    server, feed = await serve_feed(methods=gate.methods())
    socket = await http.ws_connect(ws_url(server))
    await socket.send_str(json.dumps([SUBSCRIBE, request("test_wait", request_id=2)]))
    await asyncio.wait_for(gate.all_held.wait(), DEADLINE)
    feed.block_committed(block(7))  # while the batch is still being answered
    gate.release.set()
    responses = await next_message(socket)
    subscription = next(response["result"] for response in responses if response["id"] == 1)
    assert await notified_height(socket, subscription) == 7


# --- methods over the socket ---------------------------------------------------------------------


async def test_methods_answer_over_the_socket_as_over_post(paused: TestNode, http: aiohttp.ClientSession) -> None:
    socket = await http.ws_connect(ws_url(paused.rpc.server))
    assert await answer(socket, request("chain_status")) == await paused.rpc.call("chain_status")
    batch = [
        request("chain_status", request_id=1),
        request("chain_getBlock", [0], 2),
        request("no_such_method", request_id=3),
        {"jsonrpc": "2.0", "method": "mempool_status"},  # a notification: no answer
    ]
    over_socket = await answer(socket, batch)
    _, over_post = await paused.rpc.post(batch)
    by_id = sorted(over_socket, key=lambda response: response["id"])
    assert by_id == sorted(over_post, key=lambda response: response["id"])
    assert [response["id"] for response in by_id] == [1, 2, 3] and by_id[2]["error"]["code"] == -32601


async def test_subscribing_over_http_is_websocket_only(paused: TestNode) -> None:
    for method, params in (("chain_subscribe", ["final_blocks"]), ("chain_unsubscribe", ["0x0123456789abcdef"])):
        error = await paused.rpc.error(method, params)
        assert error == {
            "code": -32050,
            "message": "Websocket only",
            "data": {"reason": "open a websocket at /ws to subscribe"},
        }


async def test_an_unknown_topic_is_invalid_params(serve_feed: ServeFeed, http: aiohttp.ClientSession) -> None:
    server, _ = await serve_feed()
    socket = await http.ws_connect(ws_url(server))
    response = await answer(socket, request("chain_subscribe", ["pending_transactions"]))
    assert response["error"]["code"] == -32602
    assert response["error"]["data"] == {
        "param": "topic", "reason": "unknown topic 'pending_transactions'; topics: final_blocks",
    }
    assert (await answer(socket, request("chain_subscribe")))["result"].startswith("0x"), "the topic is optional"


async def test_frames_take_the_same_slots_as_posts(serve_feed: ServeFeed, http: aiohttp.ClientSession) -> None:
    """A frame holds a request slot while answered; a waiting call counts against max_waiting
    and holds none, over the socket as over HTTP."""
    gate = Gate(expected=2)
    server, _ = await serve_feed(methods=gate.methods_that_wait_long(),
                                 limits=RpcLimits(max_concurrent_requests=1, max_waiting=1))
    busy, waiting, other = [await http.ws_connect(ws_url(server)) for _ in range(3)]
    await waiting.send_str(json.dumps(request("test_waitLong", request_id=2)))
    await wait_until(lambda: (server.in_flight, server.waiting) == (0, 1), "the call to give its slot up and wait")
    await busy.send_str(json.dumps(request("test_wait", request_id=1)))
    await asyncio.wait_for(gate.all_held.wait(), DEADLINE)
    assert (server.in_flight, server.waiting) == (1, 1)
    refused = await answer(other, request("test_ping", request_id=3))
    assert refused["error"] == {
        "code": -32000, "message": "Server busy",
        "data": {"limit": "max_concurrent_requests", "max_concurrent_requests": 1},
    }
    async with http.post(server.url, json=request("test_ping")) as response:
        assert response.status == 503, "the socket's frame holds the one slot HTTP would take"
    gate.release.set()
    assert (await next_message(busy))["result"] == "released"
    assert (await next_message(waiting))["result"] == "released"
    gate.release.clear()
    gate.held, gate.all_held = 0, asyncio.Event()
    await waiting.send_str(json.dumps(request("test_waitLong", request_id=4)))
    await wait_until(lambda: server.waiting == 1, "a call waiting over the socket")
    over_post = await (await http.post(server.url, json=request("test_waitLong", request_id=5))).json()
    assert over_post["error"]["data"] == {"limit": "max_waiting", "max_waiting": 1}
    assert (await answer(other, request("test_ping", request_id=6)))["result"] == "pong", "the slot is free"
    gate.release.set()
    assert (await next_message(waiting))["result"] == "released"


# --- frames that are not requests --------------------------------------------------------------------


async def test_binary_and_malformed_frames_are_answered_and_the_socket_stays_open(
    serve_feed: ServeFeed, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server, _ = await serve_feed()
    socket = await http.ws_connect(ws_url(server))
    await socket.send_bytes(json.dumps(request("test_ping")).encode())
    binary = await next_message(socket)
    assert binary["id"] is None and binary["error"]["code"] == -32600 and "text" in binary["error"]["data"]["reason"]
    for text, code in (("{not json", -32700), ('{"jsonrpc": "2.0"}', -32600), ("[]", -32600), ("7", -32600)):
        await socket.send_str(text)
        assert (await next_message(socket))["error"]["code"] == code, text
    assert await answer(socket, request("test_ping")) == {"jsonrpc": "2.0", "result": "pong", "id": 1}
    assert logged_problems(caplog) == []


async def test_a_frame_over_the_size_limit_closes_the_socket_with_1009(
    serve_feed: ServeFeed, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server, _ = await serve_feed(limits=RpcLimits(max_body_bytes=1024))
    socket = await http.ws_connect(ws_url(server))
    padded = json.dumps(request("test_ping", {"padding": "x" * 1000}))
    await socket.send_str(padded)
    closed = await closing(socket)
    assert closed.type is WSMsgType.CLOSE and closed.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    await wait_until(lambda: server.websockets_open == 0, "the socket to be forgotten")
    fitting = await http.ws_connect(ws_url(server))
    assert (await answer(fitting, request("test_ping")))["result"] == "pong"
    assert logged_problems(caplog) == []


async def test_a_text_frame_that_is_not_utf8_closes_the_socket_with_1007(
    serve_feed: ServeFeed, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server, _ = await serve_feed()
    socket = await http.ws_connect(ws_url(server))
    await socket.send_frame(b'{"jsonrpc": "2.0", "method": "\xff"}', WSMsgType.TEXT)
    closed = await closing(socket)
    assert closed.type is WSMsgType.CLOSE and closed.data == aiohttp.WSCloseCode.INVALID_TEXT
    await wait_until(lambda: server.websockets_open == 0, "the socket to be forgotten")
    assert logged_problems(caplog) == []


async def test_get_without_an_upgrade_is_told_how_to_call(
    serve_feed: ServeFeed, http: aiohttp.ClientSession
) -> None:
    server, _ = await serve_feed()
    async with http.get(server.url + "ws") as response:
        assert response.status == 426 and response.headers[hdrs.UPGRADE] == "websocket"
        error = (await response.json())["error"]
    assert error["code"] == -32600 and "POST JSON-RPC to /" in error["data"]["reason"]


async def test_pages_of_other_origins_may_not_open_one_unless_listed(
    serve_feed: ServeFeed, http: aiohttp.ClientSession
) -> None:
    server, _ = await serve_feed(cors=CorsPolicy.of(["https://wallet.example"]))
    own = f"http://127.0.0.1:{server.port}"
    for origin in (own, "https://wallet.example"):
        socket = await http.ws_connect(ws_url(server), origin=origin)
        assert (await answer(socket, request("test_ping")))["result"] == "pong", origin
        await socket.close()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(ws_url(server), origin="https://evil.example")
    assert refused.value.status == 403


# --- limits ---------------------------------------------------------------------------------------


UPGRADE = {
    hdrs.UPGRADE: "websocket", hdrs.CONNECTION: "Upgrade", hdrs.SEC_WEBSOCKET_VERSION: "13",
    hdrs.SEC_WEBSOCKET_KEY: "dGhlIHNhbXBsZSBub25jZQ==",
}


async def refusal(session: aiohttp.ClientSession, server: RpcServer) -> tuple[int, dict[str, Any]]:
    """The status and error of an upgrade the server refuses."""
    async with session.get(server.url + "ws", headers=UPGRADE) as response:
        return response.status, (await response.json())["error"]


ADDRESSES = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


@pytest.fixture
async def sessions() -> AsyncIterator[dict[str, aiohttp.ClientSession]]:
    """A client session from each of ``ADDRESSES``: a source of its own to the server."""
    opened = {address: aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))
              for address in ADDRESSES}
    yield opened
    for session in opened.values():
        await session.close()


async def test_websockets_past_the_limits_per_source_and_in_all_are_turned_away(
    serve_feed: ServeFeed, sessions: dict[str, aiohttp.ClientSession], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mura.rpc")
    server, _ = await serve_feed(limits=RpcLimits(max_websockets=4, max_websockets_per_source=3))
    near, far = sessions["127.0.0.2"], sessions["127.0.0.3"]
    sockets = [await near.ws_connect(ws_url(server)) for _ in range(3)]
    assert server.websockets_from("127.0.0.2") == 3
    for _ in range(3):
        assert await refusal(near, server) == (503, {
            "code": -32000, "message": "Server busy",
            "data": {"limit": "max_websockets_per_source", "max_websockets_per_source": 3},
        })
    await sockets.pop(0).close()
    await wait_until(lambda: server.websockets_open == 2, "the closed one to be counted out")
    sockets += [await far.ws_connect(ws_url(server)) for _ in range(2)]
    for session in (near, far):  # each holds as many as the largest: all four places are fairly shared
        status, error = await refusal(session, server)
        assert (status, error["data"]) == (503, {"limit": "max_websockets", "max_websockets": 4})
    for socket in sockets:
        assert (await answer(socket, request("test_ping")))["result"] == "pong", "those let in are served"
    await sockets[0].close()
    await wait_until(lambda: server.websockets_open == 3, "the closed one to be counted out")
    sockets.append(await sessions["127.0.0.4"].ws_connect(ws_url(server)))
    assert sample(server, "mura_rpc_websockets_refused_total", limit="max_websockets_per_source") == 3
    assert sample(server, "mura_rpc_websockets_refused_total", limit="max_websockets") == 2
    assert sample(server, "mura_rpc_websockets_closed_fair_share_total") == 0
    lines = [record.getMessage() for record in caplog.records if "turned away a websocket" in record.getMessage()]
    assert len(lines) == 1 and "127.0.0.2" in lines[0] and "max_websockets_per_source" in lines[0], lines


async def test_when_all_are_open_the_largest_source_gives_its_oldest_up_to_another(
    serve_feed: ServeFeed, sessions: dict[str, aiohttp.ClientSession], caplog: pytest.LogCaptureFixture
) -> None:
    """Two sources holding every websocket once kept all others out for as long as they liked."""
    caplog.set_level(logging.WARNING, logger="mura.rpc")
    server, feed = await serve_feed(limits=RpcLimits(max_websockets=4, max_websockets_per_source=3))
    big, small, newcomer = (sessions[address] for address in ADDRESSES)
    oldest, *others = [await big.ws_connect(ws_url(server)) for _ in range(3)]
    await subscribe(oldest)
    kept = [*others, await small.ws_connect(ws_url(server))]
    kept.append(await newcomer.ws_connect(ws_url(server)))
    closed = await closing(oldest)
    assert (closed.type, closed.data) == (WSMsgType.CLOSE, aiohttp.WSCloseCode.TRY_AGAIN_LATER)
    assert str(closed.extra).startswith("rpc.max_websockets: all 4 open") and len(str(closed.extra).encode()) <= 123
    await wait_until(lambda: server.websockets_open == 4 and feed.subscriptions == 0, "the oldest to be gone")
    assert [server.websockets_from(address) for address in ADDRESSES] == [2, 1, 1]
    status, error = await refusal(big, server)
    assert (status, error["data"]) == (503, {"limit": "max_websockets", "max_websockets": 4}), "at its fair share"
    # With one more, small would hold as many as big: nothing of big's is taken for it.
    status, error = await refusal(small, server)
    assert (status, error["data"]) == (503, {"limit": "max_websockets", "max_websockets": 4})
    for socket in kept:
        assert (await answer(socket, request("test_ping")))["result"] == "pong", "those let in are served"
    assert sample(server, "mura_rpc_websockets_closed_fair_share_total") == 1
    assert sample(server, "mura_rpc_websockets_refused_total", limit="max_websockets") == 2
    for socket in kept:
        await socket.close()
    await wait_until(lambda: server.websockets_open == 0, "every socket to be counted out")
    assert [server.websockets_from(address) for address in ADDRESSES] == [0, 0, 0]
    lines = [record.getMessage() for record in caplog.records if "to let one from" in record.getMessage()]
    assert len(lines) == 1 and "127.0.0.2" in lines[0] and "rpc max_websockets" in lines[0], lines


async def test_a_source_with_a_single_websocket_never_gives_it_up_to_another(
    serve_feed: ServeFeed, sessions: dict[str, aiohttp.ClientSession]
) -> None:
    """Once every source held one, each newcomer from yet another address closed the oldest: with
    enough addresses, someone could close every honest client's websocket in turn."""
    server, _ = await serve_feed(limits=RpcLimits(max_websockets=2, max_websockets_per_source=2))
    first, second, newcomer = (sessions[address] for address in ADDRESSES)
    held = [await first.ws_connect(ws_url(server)), await second.ws_connect(ws_url(server))]
    status, error = await refusal(newcomer, server)
    assert (status, error["data"]) == (503, {"limit": "max_websockets", "max_websockets": 2})
    for socket in held:
        assert (await answer(socket, request("test_ping")))["result"] == "pong"
    assert sample(server, "mura_rpc_websockets_closed_fair_share_total") == 0
    for socket in held:
        await socket.close()


async def test_one_source_may_hold_only_its_share_of_the_waiting_calls_over_both(
    serve_feed: ServeFeed, sessions: dict[str, aiohttp.ClientSession]
) -> None:
    """A websocket frame's waiting calls and a POST's count against the same share of their source."""
    gate = Gate(expected=3)
    server, _ = await serve_feed(methods=gate.methods_that_wait_long(),
                                 limits=RpcLimits(max_waiting=4, max_waiting_per_source=2))
    near, far = sessions["127.0.0.2"], sessions["127.0.0.3"]
    socket = await near.ws_connect(ws_url(server))
    await socket.send_str(json.dumps(wait_long(1)))
    over_post = asyncio.create_task(near.post(server.url, json=wait_long(2)))
    await wait_until(lambda: server.waiting_from("127.0.0.2") == 2, "two calls waiting from one address")
    second = await near.ws_connect(ws_url(server))  # the first answers one frame at a time
    refused = await answer(second, [wait_long(3), request("test_ping", request_id=4)])
    assert {response["id"]: response.get("error") for response in refused} == {
        3: {"code": -32000, "message": "Server busy",
            "data": {"limit": "max_waiting_per_source", "max_waiting_per_source": 2}},
        4: None,
    }
    async with near.post(server.url, json=wait_long(5)) as response:
        assert (await response.json())["error"]["data"]["limit"] == "max_waiting_per_source"
    other = await far.ws_connect(ws_url(server))
    await other.send_str(json.dumps(wait_long(6)))
    await asyncio.wait_for(gate.all_held.wait(), DEADLINE)
    assert (server.waiting, server.waiting_from("127.0.0.3")) == (3, 1), "another address still waits"
    gate.release.set()
    assert (await next_message(socket))["result"] == "released"
    assert (await next_message(other))["result"] == "released"
    async with await asyncio.wait_for(over_post, DEADLINE) as response:
        assert (await response.json())["result"] == "released"
    assert (server.waiting, server.waiting_from("127.0.0.2")) == (0, 0)


async def open_raw_websocket(server: RpcServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A websocket opened on a plain TCP connection, which the test can drop at any moment."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = "".join(f"{name}: {value}\r\n" for name, value in UPGRADE.items())
    writer.write(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode())
    status_line = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
    assert status_line.startswith(b"HTTP/1.1 101"), status_line
    return reader, writer


def masked_text_frame(text: str) -> bytes:
    """One text frame as a client sends it (RFC 6455: masked); up to 64 KiB."""
    payload = text.encode()
    assert len(payload) < 65536
    mask = os.urandom(4)
    length = bytes([0x80 | len(payload)]) if len(payload) < 126 else bytes([0x80 | 126]) + len(payload).to_bytes(2)
    return bytes([0x81]) + length + mask + bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))


async def test_a_client_that_hangs_up_mid_wait_gives_its_places_back_at_once(
    serve_feed: ServeFeed, caplog: pytest.LogCaptureFixture
) -> None:
    """A frame's waiting calls once held max_waiting until they timed out, long after their client left."""
    caplog.set_level(logging.DEBUG)
    gate = Gate(expected=20)
    server, _ = await serve_feed(methods=gate.methods_that_wait_long())
    _, writer = await open_raw_websocket(server)
    writer.write(masked_text_frame(json.dumps([wait_long(n) for n in range(20)])))
    await asyncio.wait_for(gate.all_held.wait(), DEADLINE)
    assert (server.waiting, server.websockets_open) == (20, 1)
    writer.close()
    await wait_until(lambda: server.waiting == 0, "the frame's calls to stop waiting")
    assert not gate.release.is_set(), "no call ended on its own"
    await wait_until(lambda: server.websockets_open == 0 and server.websockets_from("127.0.0.1") == 0,
                     "the socket to be counted out")
    assert logged_problems(caplog) == []


async def test_subscriptions_past_the_limit_are_server_busy(serve_feed: ServeFeed, http: aiohttp.ClientSession) -> None:
    server, feed = await serve_feed(limits=RpcLimits(max_subscriptions_per_websocket=2))
    socket = await http.ws_connect(ws_url(server))
    first = await subscribe(socket)
    await subscribe(socket)
    refused = await answer(socket, SUBSCRIBE)
    assert refused["error"] == {
        "code": -32000, "message": "Server busy",
        "data": {"limit": "max_subscriptions_per_websocket", "max_subscriptions_per_websocket": 2},
    }
    assert (await answer(socket, request("chain_unsubscribe", [first])))["result"] is True
    await subscribe(socket)
    other = await http.ws_connect(ws_url(server))
    await subscribe(other)
    assert feed.subscriptions == 3, "the limit is per websocket"


async def test_a_client_that_does_not_read_is_closed_and_another_keeps_receiving(
    serve_feed: ServeFeed, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A subscriber that reads nothing once let notifications pile up without bound."""
    caplog.set_level(logging.WARNING, logger="mura.rpc")
    server, feed = await serve_feed(limits=RpcLimits(websocket_queue=4, websocket_close_seconds=10))
    slow, fast = await http.ws_connect(ws_url(server)), await http.ws_connect(ws_url(server))
    await subscribe(slow)
    fast_subscription = await subscribe(fast)
    height = 0
    # The slow client stops reading; the kernel's buffers take what is sent until they are full,
    # then its notifications wait here, up to the limit.
    async with asyncio.timeout(60):
        while not sample(server, "mura_rpc_websockets_closed_slow_total"):
            height += 1
            feed.block_committed(block(height))
            assert await notified_height(fast, fast_subscription) == height
    for _ in range(3):
        height += 1
        feed.block_committed(block(height))
        assert await notified_height(fast, fast_subscription) == height
    received: list[int] = []
    async with asyncio.timeout(DEADLINE):
        while (message := await slow.receive()).type is WSMsgType.TEXT:
            received.append(json.loads(message.data)["params"]["result"]["height"])
    assert message.type is WSMsgType.CLOSE and message.data == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert str(message.extra).startswith("rpc.websocket_queue: 4 notifications unsent")
    assert received == list(range(1, len(received) + 1)) and len(received) < height, "what was sent, in order"
    await wait_until(lambda: server.websockets_open == 1 and feed.subscriptions == 1, "the slow one to be gone")
    lines = [record.getMessage() for record in caplog.records if "websocket_queue" in record.getMessage()]
    assert len(lines) == 1, lines


async def test_a_client_that_takes_nothing_sent_to_it_is_cut_off_and_its_answer_freed(
    serve_feed: ServeFeed, http: aiohttp.ClientSession
) -> None:
    """A client that asked for a large answer and read nothing once pinned it in memory for as long
    as it kept its socket open (answering pings keeps it open)."""

    async def large() -> str:
        return "x" * 32 * 1024 * 1024  # more than the kernel's socket buffers take

    method = Method(name="test_large", handler=large, summary="A long string.",
                    result=Result("text", {"type": "string"}, "The string."))
    server, _ = await serve_feed(methods=[method], limits=RpcLimits(websocket_send_seconds=0.5))
    # A bare client: it sends its request and then reads nothing at all.
    stalled_reader, stalled = await asyncio.open_connection("127.0.0.1", server.port)
    stalled.write(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert b" 101 " in (await stalled_reader.readuntil(b"\r\n\r\n")).split(b"\r\n")[0]
    payload = json.dumps(request("test_large")).encode()
    mask = bytes([1, 2, 3, 4])
    stalled.write(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    reader = await http.ws_connect(ws_url(server), max_msg_size=0)
    await wait_until(lambda: sample(server, "mura_rpc_websockets_closed_slow_total") == 1, "the stalled one cut off")
    await wait_until(lambda: server.websockets_open == 1, "the stalled one to be gone")
    # Another client on the same server is served as before.
    assert (await answer(reader, request("test_large")))["result"] == "x" * 32 * 1024 * 1024
    stalled.close()


# --- stopping ------------------------------------------------------------------------------------


async def test_stop_closes_every_websocket_at_once_with_1001(http: aiohttp.ClientSession) -> None:
    gate = Gate(expected=1)
    feed = BlockFeed(address_prefix=PREFIX)
    server = RpcServer(host="127.0.0.1", port=0, methods=gate.methods(), feed=feed, shutdown_timeout=30,
                       limits=RpcLimits(websocket_close_seconds=30))
    await server.start()
    idle, subscribed, answering = [await http.ws_connect(ws_url(server)) for _ in range(3)]
    await subscribe(subscribed)
    await answering.send_str(json.dumps(request("test_wait")))
    await asyncio.wait_for(gate.all_held.wait(), DEADLINE)
    ends = [asyncio.create_task(closing(socket)) for socket in (idle, subscribed, answering)]
    started = time.monotonic()
    await asyncio.wait_for(server.stop(), DEADLINE)
    assert time.monotonic() - started < 3, "no websocket held the stop up"
    for end in ends:
        message = await end
        assert (message.type, message.data, message.extra) == (
            WSMsgType.CLOSE, aiohttp.WSCloseCode.GOING_AWAY, "the node is stopping"
        )
    assert (server.websockets_open, server.in_flight, feed.subscriptions) == (0, 0, 0)


# --- the node's settings -------------------------------------------------------------------------


async def test_a_node_serves_its_websocket_settings(start_node: Callable[..., Awaitable[TestNode]]) -> None:
    settings = {"rpc.max_websockets": 40, "rpc.max_websockets_per_source": 5,
                "rpc.max_subscriptions_per_websocket": 3, "rpc.websocket_queue": 70,
                "rpc.max_waiting": 30, "rpc.max_waiting_per_source": 7}
    started = await start_node(settings)
    limits = started.rpc.server.limits
    assert (limits.max_websockets, limits.max_websockets_per_source, limits.max_subscriptions_per_websocket,
            limits.websocket_queue, limits.max_waiting, limits.max_waiting_per_source) == (40, 5, 3, 70, 30, 7)


@pytest.mark.parametrize(
    "limit",
    ["max_websockets", "max_websockets_per_source", "max_subscriptions_per_websocket", "websocket_queue",
     "websocket_heartbeat_seconds", "websocket_close_seconds"],
)
def test_websocket_limits_must_be_positive(limit: str) -> None:
    with pytest.raises(ValueError, match=limit):
        RpcLimits(**{limit: 0})
