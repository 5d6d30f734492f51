"""Tests for p2p/connections.py: open connections capped per source at accept time (on
the peer port and, with the same rule, on the RPC port), the open-file limit raised to
the hard limit, and accept failures for want of descriptors logged once per interval.

The stranger holding idle sockets runs as a separate process (``socket_holder.py``), so
that its sockets do not count against the limit of the process under test."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mura.p2p.connections import (
    AcceptErrorLog,
    install_accept_error_log,
    raise_open_file_limit,
    remove_accept_error_log,
)
from mura.rpc.server import RpcServer

from .conftest import HOST, Cluster, limits, link_as, wait_for

HOLDER = Path(__file__).with_name("socket_holder.py")
STRANGER = "127.0.0.2"


@contextmanager
def soft_open_file_limit(soft: int) -> Iterator[None]:
    """This process's soft limit on open files set to ``soft`` for a while."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, before[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


@asynccontextmanager
async def holder(
    *targets: tuple[int, int], expect: int | None = None, spare_files: int | None = None
) -> AsyncIterator[int]:
    """A process holding ``count`` idle connections from ``STRANGER`` to each ``(port, count)``;
    yields how many it still held once no more than ``expect`` were open (or 10 s passed),
    or without ``expect`` a moment after opening them all. With ``spare_files``, this
    process may open only that many more files while they are held."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(HOLDER), STRANGER, *(f"{HOST}:{port}:{count}" for port, count in targets),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        with soft_open_file_limit(open_files() + spare_files) if spare_files is not None else nullcontext():
            process.stdin.write(b"go\n" if expect is None else f"go {expect}\n".encode())
            async with asyncio.timeout(30):
                line = (await process.stdout.readline()).decode()
            assert line.startswith("held "), f"the holder said {line!r}"
            yield int(line.split()[1])
    finally:
        process.stdin.close()
        try:
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


async def test_a_source_past_its_connections_is_closed_at_once_and_others_are_served(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mura.p2p")
    a = await cluster.start("a", limits=limits(max_connections_per_source=6))
    async with holder((a.network.listen_port, 10), expect=6) as held:
        assert held == 6
        await wait_for(lambda: a.network.stats.connections_turned_away == 4, "four connections turned away")
        assert a.network.connections_from(STRANGER) == 6
        async with link_as(a, "b"):
            await wait_for(lambda: len(a.network.connected_peers()) == 1, "b to link from another address")
    await wait_for(lambda: a.network.connections_from(STRANGER) == 0, "the holder's connections to be counted out")
    lines = [record.getMessage() for record in caplog.records if "turned away a connection" in record.getMessage()]
    assert len(lines) == 1 and STRANGER in lines[0], lines


async def test_idle_connections_from_one_address_no_longer_exhaust_the_descriptors(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """The soft limit at the common 1,024; one address holds 600 idle connections to the peer
    port and 600 to the RPC port. Each once kept them all until the header timeout: the
    process ran out of descriptors, new links and RPC calls failed, and asyncio logged an
    ERROR with a traceback at every retry of accept()."""
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 1_400:
        pytest.skip("the holder needs a hard limit of at least 1,400 open files")
    caplog.set_level(logging.INFO)
    with soft_open_file_limit(1024):
        a = await cluster.start("a")  # the production limits per source: 64 peer connections
        async with RpcServer(host=HOST, port=0, methods=[]) as rpc, aiohttp.ClientSession() as http:
            async with holder((a.network.listen_port, 600), (rpc.port, 600), expect=64 + 256) as held:
                assert held == 64 + 256
                assert a.network.connections_from(STRANGER) == 64 and rpc.connections_from(STRANGER) == 256
                assert open_files() < 600
                async with link_as(a, "b"):
                    await wait_for(lambda: len(a.network.connected_peers()) == 1, "b to link")
                async with http.get(f"{rpc.url}health") as response:
                    assert response.status == 200
                assert a.network.stats.connections_turned_away == 600 - 64
                assert rpc.connections_turned_away == 600 - 256
    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []


async def test_accept_failures_for_want_of_descriptors_are_one_line_per_interval(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a = await cluster.start("a", limits=limits(log_interval=60.0))
    handler = asyncio.get_running_loop().get_exception_handler()
    assert isinstance(handler, AcceptErrorLog), "the network installs it while it runs"
    async with holder((a.network.listen_port, 20), spare_files=4):
        # asyncio retries accept() once a second; each failure reaches the handler.
        await wait_for(lambda: handler.failures >= 2, "accept() to fail twice", timeout=10)
    lines = [record for record in caplog.records if record.name == "mura.p2p.connections"]
    assert [record.levelno for record in lines] == [logging.WARNING], [record.getMessage() for record in lines]
    assert "cannot accept connections" in lines[0].getMessage() and "EMFILE" in lines[0].getMessage()
    assert all(record.exc_info is None for record in caplog.records)
    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []
    await a.network.stop()
    assert asyncio.get_running_loop().get_exception_handler() is None, "stop puts the old handler back"


async def test_other_loop_errors_go_to_the_handler_that_was_there() -> None:
    loop = asyncio.get_running_loop()
    seen: list[str] = []

    def before(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        seen.append(context["message"])

    loop.set_exception_handler(before)
    try:
        handler = install_accept_error_log()
        assert install_accept_error_log() is handler, "two networks on one loop share it"
        loop.call_exception_handler({"message": "something else", "exception": ValueError("x")})
        loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                     "exception": OSError(24, "Too many open files")})
        assert seen == ["something else"] and handler.failures == 1
        remove_accept_error_log(loop, handler)
        assert loop.get_exception_handler() is handler, "one network still runs"
        remove_accept_error_log(loop, handler)
        assert loop.get_exception_handler() is before
    finally:
        loop.set_exception_handler(None)


def test_the_soft_open_file_limit_is_raised_to_the_hard_limit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mura.p2p.connections")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with soft_open_file_limit(256):
        raised = raise_open_file_limit()
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == raised.after == min(hard, 1 << 20)
        assert raised.before == 256 and raised.hard == hard
    assert any(f"raised the open-file limit from 256 to {raised.after}" in record.getMessage()
               for record in caplog.records)
