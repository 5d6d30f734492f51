"""The RPC port answers only to IP addresses and allowed host names (rpc/hosts.py), so that a web
page cannot reach a node by DNS rebinding: over real HTTP, on every path, and in a node process."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from aiohttp import hdrs

from mura.bench.ports import free_port_range
from mura.genesis.testnet import generate_testnet, node_config_path
from mura.rpc.cors import CorsPolicy
from mura.rpc.explorer import ExplorerFiles
from mura.rpc.hosts import HostAllowlist, host_name_problem, name_in
from mura.rpc.server import RpcLimits, RpcServer

CALL = {"jsonrpc": "2.0", "method": "rpc.discover", "id": 1}
REBOUND = "attacker.example"


@pytest.mark.parametrize(("host", "name"), [
    ("127.0.0.1:8700", "127.0.0.1"), ("LocalHost:8700", "localhost"), ("localhost.:8700", "localhost"),
    ("[::1]:8700", "::1"), ("[::1]", "::1"), ("node.village.example", "node.village.example"), ("::1", "::1"),
])
def test_the_name_in_a_host_header(host: str, name: str) -> None:
    assert name_in(host) == name


@pytest.mark.parametrize(("host", "allowed"), [
    (None, True),  # HTTP/1.0 scripts send none; browsers always do
    ("127.0.0.1:8700", True), ("10.0.0.7", True), ("[::1]:8700", True), ("[2001:db8::5]:80", True),
    ("localhost:8700", True), ("LOCALHOST", True), ("localhost.:8700", True),
    ("node.village.example:8700", True),
    ("attacker.example:8700", False), ("localhost.attacker.example", False), ("127.0.0.1.nip.io", False),
    ("127.1:8700", False),  # not an address in the form browsers send; a name like any other
    ("", False), ("[::1", False),
    # forms no browser sends, refused rather than guessed at
    ("[fe80::1%attacker.example]", False), ("[::1%x]:80", False), ("[127.0.0.1]", False), ("localhost..", False),
    ("localhost:\u0668\u0667\u0660\u0660", False), ("127.0.0.1\x0b", False), ("localhost:", False),
])
def test_ip_addresses_and_listed_names_are_allowed(host: str | None, allowed: bool) -> None:
    assert HostAllowlist.of(["localhost", "node.village.example"]).allows(host) is allowed


def test_answers_are_remembered_for_a_bounded_number_of_host_values() -> None:
    allowlist = HostAllowlist.of(["localhost"])
    for index in range(1_000):
        assert not allowlist.allows(f"x{index}.{REBOUND}")
        assert allowlist.allows("127.0.0.1:8700") and allowlist.allows("localhost:8700")
    assert len(allowlist._seen) <= 64


def test_any_name_with_a_star_and_the_listen_name_always() -> None:
    assert HostAllowlist.of(["*"]).allows("attacker.example")
    own = HostAllowlist.of([], listen_host="node.village.example")
    assert own.allows("node.village.example:8700") and not own.allows("localhost:8700")
    assert HostAllowlist.of([], listen_host="0.0.0.0").names == frozenset()


@pytest.mark.parametrize("name", ["http://node.example", "node.example:8700", "node.example/rpc", "", "a b", "-x."])
def test_what_is_not_a_host_name_is_refused(name: str) -> None:
    assert host_name_problem(name) is not None
    with pytest.raises(ValueError, match="is not a host name"):
        HostAllowlist.of([name])


@pytest.mark.parametrize("name", ["localhost", "node.village.example", "Node-1.LAN", "mura_rpc", "*"])
def test_host_names_are_accepted(name: str) -> None:
    assert host_name_problem(name) is None


async def test_a_rebound_name_is_refused_on_every_path(http: aiohttp.ClientSession) -> None:
    """Every route, the explorer's, the websocket's and CORS preflights included, is 403 with a
    JSON-RPC error naming the setting; the same requests by address and by localhost are answered."""
    async with RpcServer(host="127.0.0.1", port=0, methods=[], cors=CorsPolicy.of(["*"]),
                         explorer=ExplorerFiles.packaged()) as server:
        paths = [("POST", "", 200), ("GET", "explorer/", 200), ("GET", "explorer/explorer.js", 200),
                 ("GET", "health", 200), ("GET", "ready", 200), ("GET", "metrics", 200), ("OPTIONS", "", 204),
                 ("GET", "nowhere", 405)]  # only OPTIONS is routed there
        for method, path, status in paths:
            for host, expected in ((REBOUND, 403), (f"{REBOUND}:{server.port}", 403),
                                   (f"127.0.0.1:{server.port}", status), (f"localhost:{server.port}", status)):
                headers = {hdrs.HOST: host, hdrs.ORIGIN: f"http://{host}", hdrs.ACCESS_CONTROL_REQUEST_METHOD: "POST"}
                async with http.request(method, server.url + path, json=CALL if method == "POST" else None,
                                        headers=headers) as response:
                    assert response.status == expected, (method, path, host)
                    if expected == 403:
                        assert response.headers[hdrs.CONNECTION].lower() == "close", "a refused client sends on"
                        error = (await response.json())["error"]
                        assert error["code"] == -32600 and error["data"]["limit"] == "allowed_hosts"
                        assert REBOUND in error["data"]["reason"] and "rpc.allowed_hosts" in error["data"]["reason"]
        async with http.get(server.url + "metrics") as response:
            assert f"mura_rpc_wrong_host_requests_total {2 * len(paths)}.0" in await response.text()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(server.url + "ws", headers={hdrs.HOST: REBOUND, hdrs.ORIGIN: f"http://{REBOUND}"})
        assert refused.value.status == 403
        async with http.ws_connect(server.url + "ws", headers={hdrs.ORIGIN: f"http://127.0.0.1:{server.port}"}) as ws:
            await ws.send_json(CALL)
            assert (await ws.receive_json(timeout=10))["id"] == 1


async def test_a_listed_name_is_answered(http: aiohttp.ClientSession) -> None:
    async with RpcServer(host="127.0.0.1", port=0, methods=[], allowed_hosts=["node.village.example"]) as server:
        async with http.post(server.url, json=CALL, headers={hdrs.HOST: "node.village.example"}) as response:
            assert response.status == 200 and (await response.json())["id"] == 1
        async with http.post(server.url, json=CALL, headers={hdrs.HOST: "localhost"}) as response:
            assert response.status == 403, "the list replaces the default, localhost included"


async def test_refusals_are_logged_at_a_bounded_rate(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mura")
    async with RpcServer(host="127.0.0.1", port=0, methods=[], limits=RpcLimits(refusal_log_interval=3600)) as server:
        for attempt in range(50):
            async with http.get(server.url + "health", headers={hdrs.HOST: f"x{attempt}.{REBOUND}"}) as response:
                assert response.status == 403
        async with http.get(server.url + "health") as response:
            assert response.status == 200, "the server keeps answering"
    lines = [record for record in caplog.records if record.name == "mura.rpc.hosts"]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert "rpc.allowed_hosts" in lines[0].getMessage()


@pytest.mark.processes
def test_a_node_answers_to_the_names_of_its_setting(tmp_path: Path) -> None:
    """``rpc.allowed_hosts`` reaches the RPC port of a real node process, and the default keeps
    localhost."""
    from mura.tests.node.cluster import wait_for

    base = free_port_range(2)
    layout = generate_testnet(tmp_path, validators=1, base_peer_port=base, base_rpc_port=base + 1)
    config = node_config_path(layout.directory, layout.genesis.validators[0].name)
    url = f"http://127.0.0.1:{base + 1}/"
    node = subprocess.Popen(
        [sys.executable, "-m", "mura.node", "--config", str(config), "--rpc-allowed-hosts", "node.village.example",
         "--consensus-empty-block-interval-ms", "200", "--log-level", "warning"],
    )

    def status(host: str) -> int:
        call = urllib.request.Request(url, data=json.dumps({"jsonrpc": "2.0", "method": "chain_status", "id": 7})
                                      .encode(), headers={hdrs.HOST: host, hdrs.CONTENT_TYPE: "application/json"})
        try:
            with urllib.request.urlopen(call, timeout=10) as response:
                assert json.loads(response.read())["result"]["height"] >= 0
                return int(response.status)
        except urllib.error.HTTPError as refused:
            assert json.loads(refused.read())["error"]["data"]["limit"] == "allowed_hosts"
            return refused.code

    try:
        wait_for(lambda: urllib.request.urlopen(url + "health", timeout=2).status == 200, "the node to serve")
        assert status(f"node.village.example:{base + 1}") == 200
        assert status(f"127.0.0.1:{base + 1}") == 200
        assert status(f"{REBOUND}:{base + 1}") == 403
        assert status(f"localhost:{base + 1}") == 403
    finally:
        node.send_signal(signal.SIGTERM)
        assert node.wait(timeout=30) == 0
