"""A TCP fault proxy between validator processes: one listening port per directed link.

Node i dials node j at ``port(i, j)``; the proxy connects on to j's real peer
port and pumps bytes both ways. A link between two nodes is one TCP connection
dialed by either side, so bytes from the dialer's side flow i->j and the bytes
coming back flow j->i, whichever side dialed. Each direction obeys the rule of
its directed pair, read afresh for every chunk, so a rule set at run time takes
effect at once on live connections too.

What a rule can do to a direction (see ``Rule``):

- cut, as a *blackhole*: nothing arrives and nothing is refused; the proxy
  stops reading, so the sender's bytes wait in TCP buffers and its connection
  stays open, as across a real outage (a dead route, a pulled cable). Once
  healed, what waited flows on, as TCP retransmission would deliver it if the
  connection outlived the outage. A connection dialed into a blackhole (in
  either direction) is accepted by the proxy, since it must be, but goes no
  further: it reaches the target only at the first moment after the heal that
  the dialer's kernel would send its SYN again (1, 3, 7, 15 s... after the
  dial), and not at all if the dialer gave up first.
- cut, as a *reset*: every connection carrying the direction is reset at once
  and new ones are reset on arrival, as a firewall that rejects would.
- delay: a fixed delay plus jitter per chunk, never reordering bytes.
- latency spikes: a chunk held back now and then, as TCP holds a stream after
  a lost segment until it is retransmitted (dropping bytes from a TCP stream
  would corrupt it, not emulate loss).
- throttle: at most ``rate`` bytes per second, with backpressure to the sender.
- flaky: connections carrying the direction are reset after a random lifetime,
  mid-frame.

Run as a process (``python -m mura.tests.chaos.proxy --target 0=127.0.0.1:9700
...``) it prints one JSON line with its ports, then takes JSON-line commands on
stdin and answers each on stdout; it exits when stdin closes, so it never
outlives the process that owns it. ``ProxyProcess`` is that owner's side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

#: Bytes read from a socket at a time: small enough that delay, spikes and throttling act on
#: frames rather than on whole bursts.
CHUNK = 16 * 1024
#: Bytes one direction of a connection may hold (delayed or throttled) before the proxy stops
#: reading from the sender, so slowness reaches it as TCP backpressure.
MAX_HELD_BYTES = 4 * 1024 * 1024
#: Seconds to connect on to the target before the dialer's connection is reset.
CONNECT_TIMEOUT = 5.0
#: Seconds after a first SYN at which Linux sends it again (initial RTO 1 s, doubling): a
#: connection dialed into a blackhole completes at the first of these after the heal.
SYN_RETRANSMITS = (1.0, 3.0, 7.0, 15.0, 31.0, 63.0)

CutMode = Literal["blackhole", "reset"]
Pair = tuple[int, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """What happens to the bytes of one directed pair; the default lets them pass."""

    #: None: bytes pass. "blackhole": nothing arrives, connections stay open. "reset":
    #: connections carrying this direction are reset, now and on arrival.
    cut: CutMode | None = None
    #: Milliseconds every chunk is held back.
    delay_ms: float = 0.0
    #: Up to this many milliseconds more per chunk, drawn uniformly; order is kept.
    jitter_ms: float = 0.0
    #: Chance that a chunk (and, to keep order, what follows it) is held ``spike_ms`` more.
    spike_probability: float = 0.0
    #: Milliseconds of a latency spike.
    spike_ms: float = 0.0
    #: Bytes per second the direction carries; None: unlimited.
    rate: int | None = None
    #: Seconds (low, high) a connection carrying this direction lives before it is reset;
    #: None: connections live on.
    lifetime: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.cut not in (None, "blackhole", "reset"):
            raise ValueError(f"cut must be blackhole or reset, not {self.cut!r}")
        if min(self.delay_ms, self.jitter_ms, self.spike_ms) < 0 or not 0 <= self.spike_probability <= 1:
            raise ValueError("delays must not be negative and spike_probability must be within [0, 1]")
        if self.rate is not None and self.rate < 1:
            raise ValueError("rate must be at least 1 byte per second")
        if self.lifetime is not None and not 0 < self.lifetime[0] <= self.lifetime[1]:
            raise ValueError("lifetime must be (low, high) with 0 < low <= high")

    @property
    def passes(self) -> bool:
        return self == PASS

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Rule:
        values = dict(document)
        if values.get("lifetime") is not None:
            values["lifetime"] = tuple(values["lifetime"])
        return cls(**values)


#: The rule of a healthy link.
PASS = Rule()


def cut_mode(text: str) -> CutMode:
    """``text`` as a cut mode, or ValueError."""
    if text == "blackhole":
        return "blackhole"
    if text == "reset":
        return "reset"
    raise ValueError(f"a cut is blackhole or reset, not {text!r}")


@dataclass(slots=True)
class ProxyStats:
    """Counters of one proxy, for reports and for diagnosing a run."""

    #: Connections accepted, per directed pair (dialer, target).
    accepted: dict[Pair, int] = field(default_factory=dict)
    #: Connections the proxy reset (cut or flaky), per directed pair of the port they came in on.
    reset: dict[Pair, int] = field(default_factory=dict)
    #: Bytes delivered, per direction.
    delivered: dict[Pair, int] = field(default_factory=dict)
    #: Dials into a blackhole that the dialer gave up before the heal, per directed pair.
    abandoned: dict[Pair, int] = field(default_factory=dict)

    def add(self, table: dict[Pair, int], pair: Pair, count: int = 1) -> None:
        table[pair] = table.get(pair, 0) + count


class FaultProxy:
    """Listeners for every ordered pair of ``targets``; ``start()`` it, ``stop()`` it once done."""

    def __init__(
        self,
        targets: Mapping[int, tuple[str, int]],
        *,
        host: str = "127.0.0.1",
        seed: int = 0,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self._targets = dict(targets)
        self._host = host
        self._random = random.Random(seed)
        self._on_event = on_event
        self._rules: dict[Pair, Rule] = {}
        self._servers: dict[Pair, asyncio.Server] = {}
        self._connections: set[_Connection] = set()
        self._changed = asyncio.Event()
        self.stats = ProxyStats()
        self._started = False

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on a free port for every ordered pair of targets; idempotent."""
        if self._started:
            return
        self._started = True
        for dialer in self._targets:
            for target in self._targets:
                if dialer != target:
                    pair = (dialer, target)
                    self._servers[pair] = await asyncio.start_server(self._acceptor(pair), self._host, 0)

    async def stop(self) -> None:
        """Close every listener and reset every connection; idempotent."""
        for server in self._servers.values():
            server.close()
        for connection in list(self._connections):
            connection.reset("the proxy is stopping")
        for server in self._servers.values():
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
        for connection in list(self._connections):
            await connection.finished()

    def port(self, dialer: int, target: int) -> int:
        """The port ``dialer`` must dial to reach ``target`` through the proxy."""
        sockets = self._servers[(dialer, target)].sockets
        return int(sockets[0].getsockname()[1])

    def ports(self) -> dict[Pair, int]:
        return {pair: self.port(*pair) for pair in self._servers}

    # --- rules ---------------------------------------------------------------------------

    def rule(self, pair: Pair) -> Rule:
        return self._rules.get(pair, PASS)

    def set_rules(self, rules: Mapping[Pair, Rule]) -> None:
        """Give these directed pairs new rules (the others keep theirs); live connections obey at once."""
        for pair, rule in rules.items():
            if pair not in self._servers:
                raise KeyError(f"no link {pair[0]}->{pair[1]}")
            if rule.passes:
                self._rules.pop(pair, None)
            else:
                self._rules[pair] = rule
            self._event(f"rule {pair[0]}->{pair[1]} {_describe(rule)}")
        for connection in list(self._connections):
            connection.rules_changed()
        # Wake every pump waiting out a blackhole, and start the next wait afresh.
        self._changed.set()
        self._changed = asyncio.Event()

    def heal(self) -> None:
        """Every directed pair passes again."""
        self.set_rules({pair: PASS for pair in self._servers})

    async def wait_for_change(self) -> None:
        await self._changed.wait()

    def lifetime(self, rule: Rule) -> float | None:
        """A fresh connection lifetime under a flaky rule."""
        return None if rule.lifetime is None else self._random.uniform(*rule.lifetime)

    def extra_delay(self, rule: Rule) -> float:
        """Seconds one chunk is held back under ``rule``."""
        delay = rule.delay_ms + (self._random.uniform(0, rule.jitter_ms) if rule.jitter_ms else 0.0)
        if rule.spike_probability and self._random.random() < rule.spike_probability:
            delay += rule.spike_ms
        return delay / 1000

    # --- connections ---------------------------------------------------------------------

    def _acceptor(self, pair: Pair) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._accept(pair, reader, writer)

        return accept

    async def _accept(self, pair: Pair, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.add(self.stats.accepted, pair)
        dialer, target = pair
        forward, backward = self.rule(pair), self.rule((target, dialer))
        if "reset" in (forward.cut, backward.cut):
            self.stats.add(self.stats.reset, pair)
            self._event(f"refused {dialer}->{target}: the link is cut (reset)")
            _reset(writer)
            return
        early = b""
        if self._blackholed(pair):
            held = await self._hold_dial(pair, reader)
            if held is None:
                self.stats.add(self.stats.abandoned, pair)
                self._event(f"dial {dialer}->{target} given up in a blackhole")
                writer.close()
                return
            early = held
        host, port = self._targets[target]
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as error:
            self._event(f"cannot reach {target} for {dialer}: {error or type(error).__name__}")
            _reset(writer)
            return
        connection = _Connection(self, pair, (reader, writer), (upstream_reader, upstream_writer), early=early)
        self._connections.add(connection)
        self._event(f"accepted {dialer}->{target} #{connection.number}")
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)

    def _blackholed(self, pair: Pair) -> bool:
        dialer, target = pair
        return "blackhole" in (self.rule(pair).cut, self.rule((target, dialer)).cut)

    async def _hold_dial(self, pair: Pair, reader: asyncio.StreamReader) -> bytes | None:
        """Hold a connection dialed into a blackhole until its next SYN after the heal; the
        dialer's first bytes meanwhile, or None when it closed first (it gave up)."""
        started = time.monotonic()
        received = bytearray()
        collecting = asyncio.create_task(_collect(reader, received))
        try:
            while self._blackholed(pair):
                change = asyncio.create_task(self.wait_for_change())
                await asyncio.wait({collecting, change}, return_when=asyncio.FIRST_COMPLETED)
                change.cancel()
                if collecting.done():
                    return None
            elapsed = time.monotonic() - started
            retransmit = next((moment for moment in SYN_RETRANSMITS if moment >= elapsed), elapsed)
            await asyncio.wait({collecting}, timeout=retransmit - elapsed)
            return None if collecting.done() else bytes(received)
        finally:
            collecting.cancel()
            await asyncio.gather(collecting, return_exceptions=True)

    def connection_reset(self, connection: _Connection, reason: str) -> None:
        self.stats.add(self.stats.reset, connection.pair)
        self._event(f"reset {connection.pair[0]}->{connection.pair[1]} #{connection.number}: {reason}")

    def _event(self, text: str) -> None:
        if self._on_event is not None:
            self._on_event(text)


class _Connection:
    """One dialed connection through the proxy: two pumps and an optional death timer."""

    _numbers = 0

    def __init__(
        self,
        proxy: FaultProxy,
        pair: Pair,
        downstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        *,
        early: bytes = b"",
    ) -> None:
        _Connection._numbers += 1
        self.number = _Connection._numbers
        self.proxy = proxy
        self.pair = pair
        dialer, target = pair
        self._writers = {dialer: downstream[1], target: upstream[1]}
        self._pumps = (
            _Pump(self, (dialer, target), downstream[0], upstream[1]),
            _Pump(self, (target, dialer), upstream[0], downstream[1]),
        )
        if early:
            self._pumps[0].preload(early)
        self._death: asyncio.TimerHandle | None = None
        self._notice: asyncio.Task[None] | None = None
        self._done = asyncio.Event()
        self._was_reset = False

    def directions(self) -> tuple[Pair, Pair]:
        dialer, target = self.pair
        return (dialer, target), (target, dialer)

    async def run(self) -> None:
        self.rules_changed()
        tasks = [asyncio.create_task(pump.run()) for pump in self._pumps]
        try:
            await asyncio.gather(*tasks)
            if self._notice is not None:
                await self._notice
        finally:
            for task in [*tasks, *([self._notice] if self._notice else [])]:
                task.cancel()
            await asyncio.gather(*tasks, *([self._notice] if self._notice else []), return_exceptions=True)
            self._cancel_death()
            for writer in self._writers.values():
                writer.close()
            self._done.set()

    async def finished(self) -> None:
        await self._done.wait()

    def rules_changed(self) -> None:
        """Apply a reset cut at once, and start or stop a flaky connection's death timer."""
        rules = [self.proxy.rule(direction) for direction in self.directions()]
        if any(rule.cut == "reset" for rule in rules):
            self.reset("the link is cut (reset)")
            return
        flaky = [rule for rule in rules if rule.lifetime is not None]
        if not flaky:
            self._cancel_death()
        elif self._death is None:
            lifetime = self.proxy.lifetime(flaky[0])
            assert lifetime is not None
            self._death = asyncio.get_running_loop().call_later(lifetime, self.reset, f"flaky, lived {lifetime:.1f} s")

    def _cancel_death(self) -> None:
        if self._death is not None:
            self._death.cancel()
            self._death = None

    def reset(self, reason: str) -> None:
        """Reset both sides now (RST, whatever is in flight)."""
        if self._was_reset or self._done.is_set():
            return
        self._was_reset = True
        self._death = None
        self.proxy.connection_reset(self, reason)
        for writer in self._writers.values():
            _reset(writer)
        for pump in self._pumps:
            pump.stop()

    def side_failed(self, node: int) -> None:
        """``node``'s end went away (reset or error). The other end can only learn it through
        the direction from ``node``: while that is blackholed the other end hears nothing,
        as its peer's RST would be lost on a dead route."""
        if self._was_reset or self._notice is not None:
            return
        for pump in self._pumps:
            pump.stop()
        _reset(self._writers[node])
        other = self.pair[1] if node == self.pair[0] else self.pair[0]
        self._notice = asyncio.create_task(self._tell(node, other))

    async def _tell(self, node: int, other: int) -> None:
        while self.proxy.rule((node, other)).cut == "blackhole":
            await self.proxy.wait_for_change()
        self.reset(f"{node} went away")


class _Pump:
    """One direction of a connection: a reader that holds chunks until due, a writer that
    delivers them in order, within the rule's delay, spikes and rate."""

    def __init__(
        self, connection: _Connection, direction: Pair, source: asyncio.StreamReader, sink: asyncio.StreamWriter
    ) -> None:
        self._connection = connection
        self._proxy = connection.proxy
        self.direction = direction
        self._source = source
        self._sink = sink
        self._queue: deque[tuple[float, bytes]] = deque()
        self._held_bytes = 0
        self._last_due = 0.0
        self._wake_writer = asyncio.Event()
        self._wake_reader = asyncio.Event()
        self._stopped = False
        self._tasks: list[asyncio.Task[None]] = []

    def preload(self, data: bytes) -> None:
        """Bytes read before the pump started (while a dial was held), delivered first."""
        self._queue.append((time.monotonic(), data))
        self._held_bytes += len(data)

    async def run(self) -> None:
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._write())]
        try:
            await asyncio.gather(*self._tasks)
        except asyncio.CancelledError:
            if not self._stopped:
                raise

    def stop(self) -> None:
        self._stopped = True
        for task in self._tasks:
            task.cancel()

    async def _wait_until_open(self) -> Rule:
        """The direction's rule once it is not blackholed (a blackhole holds everything)."""
        while True:
            rule = self._proxy.rule(self.direction)
            if rule.cut != "blackhole":
                return rule
            await self._proxy.wait_for_change()

    async def _read(self) -> None:
        try:
            await self._read_until_end()
        except (ConnectionError, OSError):
            self._connection.side_failed(self.direction[0])

    async def _read_until_end(self) -> None:
        while True:
            await self._wait_until_open()
            while self._held_bytes >= MAX_HELD_BYTES:
                self._wake_reader.clear()
                await self._wake_reader.wait()
            data = await self._source.read(CHUNK)
            # The rule may have changed while the read waited: a chunk that arrives in a
            # blackhole waits in the queue for the heal like everything after it.
            rule = self._proxy.rule(self.direction)
            due = max(self._last_due, time.monotonic() + self._proxy.extra_delay(rule))
            self._last_due = due
            self._queue.append((due, data))
            self._held_bytes += len(data)
            self._wake_writer.set()
            if not data:
                return

    async def _write(self) -> None:
        try:
            await self._write_until_end()
        except (ConnectionError, OSError):
            self._connection.side_failed(self.direction[1])

    async def _write_until_end(self) -> None:
        while True:
            while not self._queue:
                self._wake_writer.clear()
                await self._wake_writer.wait()
            due, data = self._queue[0]
            rule = await self._wait_until_open()
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                continue  # the rule may have changed meanwhile
            self._queue.popleft()
            self._held_bytes -= len(data)
            self._wake_reader.set()
            if not data:
                if self._sink.can_write_eof():
                    self._sink.write_eof()
                return
            self._sink.write(data)
            await self._sink.drain()
            self._proxy.stats.add(self._proxy.stats.delivered, self.direction, len(data))
            if rule.rate is not None:
                await asyncio.sleep(len(data) / rule.rate)


async def _collect(reader: asyncio.StreamReader, into: bytearray) -> None:
    """Read into ``into`` until the other side closes (or resets)."""
    try:
        while data := await reader.read(CHUNK):
            into += data
    except (ConnectionError, OSError):
        return


def _reset(writer: asyncio.StreamWriter) -> None:
    """Abort a connection with an RST rather than a FIN, as a reset link does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _describe(rule: Rule) -> str:
    if rule.passes:
        return "pass"
    return " ".join(f"{name}={value}" for name, value in asdict(rule).items() if value not in (None, 0, 0.0))


# --- the proxy as a process ------------------------------------------------------------------


def rules_to_json(rules: Mapping[Pair, Rule]) -> list[list[Any]]:
    return [[dialer, target, asdict(rule)] for (dialer, target), rule in rules.items()]


def rules_from_json(items: Iterable[Sequence[Any]]) -> dict[Pair, Rule]:
    return {(int(dialer), int(target)): Rule.from_json(rule) for dialer, target, rule in items}


async def serve_commands(proxy: FaultProxy, reader: asyncio.StreamReader, write: Callable[[str], None]) -> None:
    """Answer JSON-line commands until ``reader`` ends: ``{"id", "rules": [[i, j, rule], ...]}``,
    ``{"id", "heal": true}`` or ``{"id", "stats": true}``."""
    while line := await reader.readline():
        command = json.loads(line)
        answer: dict[str, Any] = {"id": command.get("id")}
        try:
            if "rules" in command:
                proxy.set_rules(rules_from_json(command["rules"]))
            elif command.get("heal"):
                proxy.heal()
            if command.get("stats"):
                stats = proxy.stats
                answer["stats"] = {
                    name: [[*pair, count] for pair, count in getattr(stats, name).items()]
                    for name in ("accepted", "reset", "delivered", "abandoned")
                }
            answer["ok"] = True
        except (KeyError, TypeError, ValueError) as error:
            answer |= {"ok": False, "error": str(error)}
        write(json.dumps(answer))


async def run_process(targets: Mapping[int, tuple[str, int]], *, seed: int, events_path: str | None) -> None:
    events = open(events_path, "a", buffering=1) if events_path else None  # noqa: SIM115, ASYNC230 - closed below; opened once at start

    def on_event(text: str) -> None:
        if events is not None:
            events.write(f"{time.time():.3f} {text}\n")

    def write(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    proxy = FaultProxy(targets, seed=seed, on_event=on_event)
    await proxy.start()
    try:
        write(json.dumps({"ports": [[dialer, target, port] for (dialer, target), port in proxy.ports().items()]}))
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        await serve_commands(proxy, reader, write)
    finally:
        await proxy.stop()
        if events is not None:
            events.close()


def parse_target(text: str) -> tuple[int, tuple[str, int]]:
    """``INDEX=HOST:PORT``."""
    index, _, address = text.partition("=")
    host, _, port = address.rpartition(":")
    return int(index), (host, int(port))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mura.tests.chaos.proxy", description=__doc__.split("\n")[0])
    parser.add_argument("--target", action="append", required=True, help="INDEX=HOST:PORT of a node's peer port")
    parser.add_argument("--seed", type=int, default=0, help="seed of jitter, spikes and lifetimes")
    parser.add_argument("--events", help="file to append timestamped connection events to")
    options = parser.parse_args(argv)
    targets = dict(parse_target(text) for text in options.target)
    asyncio.run(run_process(targets, seed=options.seed, events_path=options.events))
    return 0


class ProxyProcess:
    """The owner's side of a proxy process: start it, set rules, stop it."""

    def __init__(self, targets: Mapping[int, tuple[str, int]], *, seed: int, events_path: str | None = None) -> None:
        self._targets = dict(targets)
        self._seed = seed
        self._events_path = events_path
        self._process: asyncio.subprocess.Process | None = None
        self._ports: dict[Pair, int] = {}
        self._next_id = 0
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        if self._process is not None:
            return
        arguments = [f"--target={index}={host}:{port}" for index, (host, port) in self._targets.items()]
        arguments += [f"--seed={self._seed}"] + ([f"--events={self._events_path}"] if self._events_path else [])
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mura.tests.chaos.proxy", *arguments,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        assert self._process.stdout is not None
        async with asyncio.timeout(30):
            first = await self._process.stdout.readline()
        if not first:
            raise RuntimeError("the fault proxy exited before it listened")
        self._ports = {(dialer, target): port for dialer, target, port in json.loads(first)["ports"]}

    def port(self, dialer: int, target: int) -> int:
        return self._ports[(dialer, target)]

    async def set_rules(self, rules: Mapping[Pair, Rule]) -> None:
        await self._command({"rules": rules_to_json(rules)})

    async def heal(self) -> None:
        await self._command({"heal": True})

    async def stats(self) -> dict[str, dict[Pair, int]]:
        answer = await self._command({"stats": True})
        return {name: {(i, j): count for i, j, count in rows} for name, rows in answer["stats"].items()}

    async def _command(self, command: dict[str, Any]) -> dict[str, Any]:
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            raise RuntimeError("the fault proxy is not running")
        async with self._lock:
            self._next_id += 1
            process.stdin.write((json.dumps({"id": self._next_id, **command}) + "\n").encode())
            await process.stdin.drain()
            async with asyncio.timeout(10):
                line = await process.stdout.readline()
        if not line:
            raise RuntimeError("the fault proxy exited")
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise ValueError(f"the fault proxy refused {command}: {answer.get('error')}")
        return answer

    async def stop(self) -> None:
        """Close its stdin (it stops) and wait for it; idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


if __name__ == "__main__":
    raise SystemExit(main())
