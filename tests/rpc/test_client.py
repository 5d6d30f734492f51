"""The blocking client against a real node: results, the node's errors as one readable line,
an unreachable node and an answer that is not JSON-RPC."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from mura.bench.ports import free_port_range
from mura.rpc.client import BadResponse, NodeUnreachable, RemoteError, RpcClient

from .support import TestNode


async def test_results_and_errors_from_a_node(paused: TestNode) -> None:
    client = RpcClient(paused.rpc.server.url.rstrip("/"))
    status = await asyncio.to_thread(client.call, "chain_status")
    assert status["chain_id"] == paused.chain_id
    by_name = await asyncio.to_thread(client.call, "chain_getBlock", {"block": 0})
    assert by_name["height"] == 0
    with pytest.raises(RemoteError) as raised:
        await asyncio.to_thread(client.call, "chain_getBlock", [7])
    assert (raised.value.code, raised.value.data) == (-32020, {"height": 7, "head": 0})
    assert str(raised.value) == "no final block 7; the chain's head is at height 0"


async def test_an_answer_that_is_not_json_rpc(paused: TestNode) -> None:
    client = RpcClient(paused.rpc.server.url + "metrics")
    with pytest.raises(BadResponse, match="not JSON"):
        await asyncio.to_thread(client.call, "chain_status")


def test_an_unreachable_node() -> None:
    with pytest.raises(NodeUnreachable, match="connection refused") as raised:
        RpcClient(f"http://127.0.0.1:{free_port_range(1)}").call("chain_status")
    assert raised.value.may_have_arrived is False, "a refused connection carried nothing"


def test_a_connection_closed_after_the_request_may_have_delivered_it() -> None:
    """A server that reads the request and hangs up: the request arrived, the answer did not."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        received: list[bytes] = []

        def hang_up() -> None:
            connection, _ = server.accept()
            with connection:
                # The head and the body may come in separate segments: read the whole request.
                request = b""
                while b"\r\n\r\n" not in request or len(request.partition(b"\r\n\r\n")[2]) < _length(request):
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    request += chunk
                received.append(request)

        thread = threading.Thread(target=hang_up)
        thread.start()
        with pytest.raises(NodeUnreachable) as raised:
            RpcClient(f"http://127.0.0.1:{port}").call("tx_submit", ["0x00"], timeout=10)
        thread.join(timeout=10)
    assert raised.value.may_have_arrived is True and b"tx_submit" in received[0]


@pytest.mark.parametrize("url", ["localhost:8700", "notaurl", "ftp://node/", "http://", "http://node:99999",
                                 "http://[::1", "http://a b:1", "http://node:1/\x7f"])
def test_a_url_that_is_not_http_is_refused_at_once(url: str) -> None:
    with pytest.raises(ValueError, match="must look like http://HOST:PORT"):
        RpcClient(url)


@pytest.mark.parametrize(
    ("code", "data", "line"),
    [
        (-32010, {"rule": "nonce_too_low", "message": "nonce 5 was already used; the next is 7"},
         "transaction refused (nonce_too_low): nonce 5 was already used; the next is 7"),
        (-32602, {"param": "address", "reason": "address checksum does not match: it has a typo"},
         "invalid address: address checksum does not match: it has a typo"),
        (-32021, {"transaction_hash": "0xab", "pending": True},
         "transaction 0xab is not final: pending in the node's mempool"),
        (-32030, {"transaction_hash": "0xab", "timeout_seconds": 5, "pending": False},
         "transaction 0xab not final after 5 s (unknown to this node); look again with: mura tx 0xab"),
        (-32601, {"method": "tx_wait"}, "the node does not serve tx_wait: is it an older version?"),
        (-32023, {"transaction_hash": "0xab", "rule": "expired", "message": "pending for longer than 600 s"},
         "transaction 0xab was dropped (expired): pending for longer than 600 s"),
        (-32023, {"transaction_hash": "0xab", "rule": "replaced", "message": "another took its nonce",
                  "replaced_by": "0xcd"},
         "transaction 0xab was dropped (replaced by 0xcd): another took its nonce"),
        (-32000, {"limit": "max_waiting", "max_waiting": 1},
         'tx_wait failed: Server busy (-32000): {"limit": "max_waiting", "max_waiting": 1}'),
    ],
    ids=[
        "refused", "invalid-params", "not-found-pending", "wait-timed-out", "not-served", "dropped", "replaced", "busy"
    ],
)
def test_remote_errors_read_as_one_line(code: int, data: dict[str, object], line: str) -> None:
    assert str(RemoteError("tx_wait", code, "Server busy", data)) == line


def _length(request: bytes) -> int:
    """The Content-Length a request's head states (0 before the head is complete)."""
    head = request.partition(b"\r\n\r\n")[0].lower()
    for line in head.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.partition(b":")[2])
    return 0
