"""Link micro-benchmarks: ``python -m mura.bench.links``.

Prints what the encryption and the redial policy cost:

* sealing and opening one frame (ChaCha20-Poly1305) of 200 B, 64 KiB, 1 MiB
  and 16 MiB, in microseconds per frame;
* one complete handshake (``open_link`` against a running ``Network`` on
  loopback), in milliseconds;
* the time from a peer being reachable again to its link being up, after the
  peer was down long enough for the redial delay to reach its cap: once with
  the peer's port refusing connections meanwhile (a stopped node), once with a
  relay that swallows every byte (a partition that drops packets), each over
  ``--trials`` runs, with the production ``NetworkLimits`` unless
  ``--backoff-max`` or ``--connect-timeout`` say otherwise. The relay keeps
  a connection made during the partition stuck even after it heals (real TCP
  might get through on a retransmission), so that figure is the worst case:
  up to ``connect_timeout`` for the stuck attempt plus one redial delay.

Figures, not pass/fail: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

from mura.chain.keys import SigningKey, sha256
from mura.p2p.channel import SecureChannel
from mura.p2p.client import open_link
from mura.p2p.handshake import Identity
from mura.p2p.network import Network
from mura.p2p.settings import NetworkLimits, PeerAddress

CHAIN_ID = "mura-bench"
GENESIS_HASH = sha256(b"mura-bench genesis")
HOST = "127.0.0.1"
KEYS = [SigningKey.from_private_bytes(sha256(b"p2p-bench-%d" % index)) for index in range(3)]


def seal_and_open(size: int) -> tuple[float, float]:
    """Microseconds to seal, and to open, one frame of ``size`` bytes."""
    sender = SecureChannel(send_key=b"s" * 32, receive_key=b"r" * 32)
    receiver = SecureChannel(send_key=b"r" * 32, receive_key=b"s" * 32)
    frame = os.urandom(size)
    count = max(3, min(5_000, (64 * 1024 * 1024) // size))  # at most 64 MiB of sealed frames held
    start = time.perf_counter()
    sealed = [sender.seal(frame) for _ in range(count)]
    seal = (time.perf_counter() - start) / len(sealed)
    start = time.perf_counter()
    for message in sealed:
        receiver.open(message)
    return seal * 1e6, (time.perf_counter() - start) / len(sealed) * 1e6


def _network(index: int, port: int, *, peers: list[PeerAddress], limits: NetworkLimits) -> Network:
    async def ignore(peer: bytes, payload: object) -> None:
        pass

    return Network(
        key=KEYS[index], chain_id=CHAIN_ID, genesis_hash=GENESIS_HASH, listen_host=HOST, listen_port=port,
        peers=peers, admitted=[key.public_key for key in KEYS], handlers={"data": ignore}, limits=limits,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


async def handshake_milliseconds(count: int) -> float:
    """Median time of ``count`` complete handshakes with a running node."""
    node = _network(0, 0, peers=[], limits=NetworkLimits())
    await node.start()
    identity = Identity(KEYS[1], CHAIN_ID, GENESIS_HASH, frozenset(key.public_key for key in KEYS))
    times = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            link = await open_link(
                f"http://{HOST}:{node.listen_port}/p2p", identity, expected_public_key=KEYS[0].public_key
            )
            times.append(time.perf_counter() - start)
            await link.close()
    finally:
        await node.stop()
    return statistics.median(times) * 1e3


class _Relay:
    """Forwards TCP to ``target`` while healed; while partitioned it swallows every byte."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = _free_port()
        self.partitioned = False
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, HOST, self.port)

    async def stop(self) -> None:
        self.partition()
        if self._server is not None:
            self._server.close()

    def partition(self) -> None:
        self.partitioned = True
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        if self.partitioned:
            while await reader.read(65536):
                pass  # swallowed, as by a network that drops packets
            return
        target_reader, target_writer = await asyncio.open_connection(HOST, self.target)
        self._writers.append(target_writer)
        await asyncio.gather(_pump(reader, target_writer), _pump(target_reader, writer), return_exceptions=True)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while chunk := await reader.read(65536):
        writer.write(chunk)
        await writer.drain()
    writer.transport.abort()


async def _until(condition: Callable[[], bool], *, deadline: float = 60.0) -> float:
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > deadline:
            raise TimeoutError(f"the link did not come back within {deadline:.0f} s")
        await asyncio.sleep(0.005)
    return time.perf_counter() - start


async def reconnect_after_restart(limits: NetworkLimits, *, down: float) -> float:
    """a dials b; b is stopped for ``down`` seconds, then started again: seconds until linked."""
    port = _free_port()
    b = _network(1, port, peers=[], limits=limits)
    a = _network(0, 0, peers=[PeerAddress(KEYS[1].public_key, HOST, port)], limits=limits)
    await b.start()
    await a.start()
    try:
        await _until(lambda: bool(a.connected_peers()))
        await b.stop()
        await asyncio.sleep(down)  # the outage being modelled
        b = _network(1, port, peers=[], limits=limits)
        await b.start()
        return await _until(lambda: bool(a.connected_peers()))
    finally:
        await a.stop()
        await b.stop()


async def reconnect_after_partition(limits: NetworkLimits, *, down: float) -> float:
    """a dials b through a relay that swallows everything for ``down`` seconds: seconds from
    the relay forwarding again until the link is up."""
    b = _network(1, 0, peers=[], limits=limits)
    await b.start()
    relay = _Relay(b.listen_port)
    await relay.start()
    a = _network(0, 0, peers=[PeerAddress(KEYS[1].public_key, HOST, relay.port)], limits=limits)
    await a.start()
    try:
        await _until(lambda: bool(a.connected_peers()))
        relay.partition()
        await asyncio.sleep(down)  # the partition being modelled
        relay.partitioned = False
        return await _until(lambda: bool(a.connected_peers()))
    finally:
        await a.stop()
        await relay.stop()
        await b.stop()


async def _reconnect_figures(limits: NetworkLimits, trials: int, down: float) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {"restart": [], "partition": []}
    for _ in range(trials):
        figures["restart"].append(await reconnect_after_restart(limits, down=down))
        figures["partition"].append(await reconnect_after_partition(limits, down=down))
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mura.bench.links", description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=6, help="reconnection runs of each kind")
    parser.add_argument("--down", type=float, default=12.0, help="seconds a peer stays unreachable per run")
    parser.add_argument("--backoff-max", type=float, default=None, help="override NetworkLimits.backoff_max")
    parser.add_argument("--connect-timeout", type=float, default=None, help="override NetworkLimits.connect_timeout")
    options = parser.parse_args(argv)
    limits = NetworkLimits()
    if options.backoff_max is not None:
        limits = replace(limits, backoff_max=options.backoff_max)
    if options.connect_timeout is not None:
        limits = replace(limits, connect_timeout=options.connect_timeout)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    for size, label in ((200, "200 B"), (64 * 1024, "64 KiB"), (1024 * 1024, "1 MiB"), (16 * 1024 * 1024, "16 MiB")):
        seal, opened = seal_and_open(size)
        print(f"seal / open one {label:>6} frame: {seal:10.1f} / {opened:10.1f} us"
              f"  ({size / seal:8.1f} / {size / opened:8.1f} MB/s)")
    print(f"handshake (open_link, median of 50): {asyncio.run(handshake_milliseconds(50)):.2f} ms")
    try:
        figures = asyncio.run(_reconnect_figures(limits, options.trials, options.down))
    except TimeoutError as error:
        raise SystemExit(f"reconnection runs stopped: {error}") from None
    for kind, seconds in figures.items():
        print(f"link up after the peer is reachable again ({kind}, backoff_max {limits.backoff_max:g} s, "
              f"connect_timeout {limits.connect_timeout:g} s, {options.trials} runs): "
              f"min {min(seconds):.2f} median {statistics.median(seconds):.2f} "
              f"max {max(seconds):.2f} s")


if __name__ == "__main__":
    main()
