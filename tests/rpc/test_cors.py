"""Cross-origin requests to the RPC port (rpc/cors.py), over real HTTP: off by default; for a
listed origin, preflights answered and answers marked; for any other origin, nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import hdrs

from mura.bench.ports import free_port_range
from mura.genesis.testnet import generate_testnet, node_config_path
from mura.rpc.cors import CorsPolicy
from mura.rpc.server import RpcLimits, RpcServer

WALLET = "https://wallet.example"
STRANGER = "https://evil.example"
CALL = {"jsonrpc": "2.0", "method": "rpc.discover", "id": 1}
PREFLIGHT: dict[str, str] = {
    hdrs.ACCESS_CONTROL_REQUEST_METHOD: "POST", hdrs.ACCESS_CONTROL_REQUEST_HEADERS: "content-type"
}


@asynccontextmanager
async def serving(origins: list[str], **limits: Any) -> AsyncIterator[str]:
    """A server with ``rpc.cors_origins = origins``; yields its URL."""
    async with RpcServer(
        host="127.0.0.1", port=0, methods=[], cors=CorsPolicy.of(origins), limits=RpcLimits(**limits)
    ) as server:
        yield server.url


async def test_off_by_default_no_header_and_no_preflight(http: aiohttp.ClientSession) -> None:
    async with RpcServer(host="127.0.0.1", port=0, methods=[]) as server:
        async with http.post(server.url, json=CALL, headers={hdrs.ORIGIN: WALLET}) as response:
            assert response.status == 200 and (await response.json())["id"] == 1
            assert hdrs.ACCESS_CONTROL_ALLOW_ORIGIN not in response.headers
        async with http.options(server.url, headers={hdrs.ORIGIN: WALLET, **PREFLIGHT}) as response:
            assert response.status == 405
            assert hdrs.ACCESS_CONTROL_ALLOW_ORIGIN not in response.headers


async def test_preflight_from_a_listed_origin(http: aiohttp.ClientSession) -> None:
    async with serving([WALLET, "http://localhost:3000"]) as url:
        async with http.options(url, headers={hdrs.ORIGIN: WALLET, **PREFLIGHT}) as response:
            assert response.status == 204
            assert response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] == WALLET
            assert "POST" in response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS]
            assert response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS].lower() == "content-type"
            assert int(response.headers[hdrs.ACCESS_CONTROL_MAX_AGE]) > 0
            assert hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS not in response.headers


async def test_answers_to_a_listed_origin_carry_it(http: aiohttp.ClientSession) -> None:
    async with serving([WALLET, "http://localhost:3000"]) as url:
        for origin in (WALLET, "http://localhost:3000"):
            async with http.post(url, json=CALL, headers={hdrs.ORIGIN: origin}) as response:
                assert response.status == 200 and (await response.json())["id"] == 1
                assert response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] == origin
                assert hdrs.ORIGIN in response.headers.getall(hdrs.VARY)
        async with http.get(url + "health", headers={hdrs.ORIGIN: WALLET}) as response:
            assert response.status == 200 and response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] == WALLET


async def test_refusals_carry_it_too_so_a_wallet_can_read_why(http: aiohttp.ClientSession) -> None:
    async with serving([WALLET], max_body_bytes=100) as url:
        async with http.post(url, data=b"x" * 200, headers={hdrs.ORIGIN: WALLET}) as response:
            assert response.status == 413
            assert response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] == WALLET
            assert (await response.json())["error"]["data"]["limit"] == "max_body_bytes"


@pytest.mark.parametrize("origin", [STRANGER, "https://wallet.example.evil.example", "http://wallet.example", None])
async def test_invalid_origin_gets_no_header(http: aiohttp.ClientSession, origin: str | None) -> None:
    headers: dict[str, str] = {hdrs.ORIGIN: origin} if origin else {}
    async with serving([WALLET]) as url:
        async with http.post(url, json=CALL, headers=headers) as response:
            assert response.status == 200  # the call is answered; a browser keeps the page from reading it
            assert hdrs.ACCESS_CONTROL_ALLOW_ORIGIN not in response.headers
        async with http.options(url, headers={**headers, **PREFLIGHT}) as response:
            assert response.status == 403
            assert hdrs.ACCESS_CONTROL_ALLOW_ORIGIN not in response.headers
            assert hdrs.ACCESS_CONTROL_ALLOW_METHODS not in response.headers


async def test_any_origin_when_listed_as_star(http: aiohttp.ClientSession) -> None:
    async with serving(["*"]) as url:
        async with http.options(url, headers={hdrs.ORIGIN: STRANGER, **PREFLIGHT}) as response:
            assert response.status == 204 and response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] == "*"
        async with http.post(url, json=CALL, headers={hdrs.ORIGIN: STRANGER}) as response:
            assert response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] == "*"


def test_origins_compare_as_browsers_send_them() -> None:
    policy = CorsPolicy.of(["HTTPS://Wallet.Example"])
    assert policy.allow_origin("https://wallet.example") == "https://wallet.example"
    assert policy.allow_origin("https://wallet.example:443") is None
    assert not CorsPolicy.of([]).enabled


@pytest.mark.parametrize(
    "origin", ["wallet.example", "https://wallet.example/", "https://wallet.example/app", "ftp://wallet.example", ""]
)
def test_invalid_origin_setting_is_refused(origin: str) -> None:
    with pytest.raises(ValueError, match="is not an origin"):
        CorsPolicy.of([origin])


@pytest.mark.processes
def test_a_node_serves_the_origins_of_its_setting(tmp_path: Path) -> None:
    """``rpc.cors_origins`` reaches the RPC port of a real node process."""
    from mura.tests.node.cluster import wait_for

    base = free_port_range(2)
    layout = generate_testnet(tmp_path, validators=1, base_peer_port=base, base_rpc_port=base + 1)
    config = node_config_path(layout.directory, layout.genesis.validators[0].name)
    url = f"http://127.0.0.1:{base + 1}/"
    node = subprocess.Popen(
        [sys.executable, "-m", "mura.node", "--config", str(config), "--rpc-cors-origins", WALLET,
         "--rpc-cors-origins", "http://localhost:3000", "--consensus-empty-block-interval-ms", "200",
         "--log-level", "warning"],
    )
    try:
        wait_for(lambda: urllib.request.urlopen(url + "health", timeout=2).status == 200, "the node to serve")
        preflight = urllib.request.Request(url, method="OPTIONS", headers={hdrs.ORIGIN: WALLET, **PREFLIGHT})
        with urllib.request.urlopen(preflight, timeout=10) as response:
            assert response.status == 204 and response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] == WALLET
        for origin, allowed in ((WALLET, WALLET), ("http://localhost:3000", "http://localhost:3000"), (STRANGER, None)):
            call = urllib.request.Request(
                url, data=json.dumps({"jsonrpc": "2.0", "method": "chain_status", "id": 7}).encode(),
                headers={hdrs.ORIGIN: origin, hdrs.CONTENT_TYPE: "application/json"},
            )
            with urllib.request.urlopen(call, timeout=10) as response:
                assert json.loads(response.read())["result"]["height"] >= 0
                assert response.headers.get(hdrs.ACCESS_CONTROL_ALLOW_ORIGIN) == allowed
    finally:
        node.send_signal(signal.SIGTERM)
        assert node.wait(timeout=30) == 0
