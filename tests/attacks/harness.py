"""What every attack is measured by, and the context an attack runs in.

An attack is an async function of a ``Context``. It does its set-up first (links,
prepared frames, a chain loaded with transactions), then runs its measured part
inside ``async with context.window():``. The window starts the observer process
and notes the targets' memory, CPU time and log sizes; when the attack's part
ends it waits for the chain to move again (bounded by ``Scale.settle_seconds``),
stops the observer and computes the common figures:

- ``stall_s``: the longest time without a new final block, from the window's start
  to its end (the settling included), as the honest nodes' ``chain_status``
  answers show it (polled every 50 ms on each); ``stall_blocks_s`` is the same
  from the blocks' own timestamps;
- ``rpc_max_s``: the slowest of those ``chain_status`` calls, to the millisecond (a call still
  unanswered at the end counts with the time it has waited);
- memory (VmRSS before, after, peak) and CPU seconds of the target processes;
- log lines the targets wrote, how many of them start a traceback, and a digest;
- honest validators banned or disconnected (from the logs), and whether the
  attacker's own links were closed by a node or its key banned.

Attack-specific figures go into ``context.figures``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mura.bench.rpc import Rpc
from mura.tests.attacks.peer import LinkClosed, PeerLink, connect
from mura.tests.attacks.testnet import ATTACKER, HONEST, AttackCluster, die_with_parent

#: ``--scale`` at which attacks run at the strength of the reported figures.
FULL_SCALE = 10
OBSERVE_INTERVAL = 0.05
#: Heights every honest node must gain after an attack before the window closes.
SETTLE_HEIGHTS = 2


@dataclass(frozen=True, slots=True)
class Scale:
    """The size knob: 1 is a quick run of a few seconds per attack, ``FULL_SCALE`` full strength."""

    k: float

    def grow(self, quick: float, full: float) -> float:
        """``quick`` at 1, ``full`` at ``FULL_SCALE``, linear in between and beyond."""
        return quick + (full - quick) * (self.k - 1) / (FULL_SCALE - 1)

    def count(self, quick: int, full: int) -> int:
        return max(1, round(self.grow(quick, full)))

    @property
    def settle_seconds(self) -> float:
        """Longest wait for the chain to move again after an attack."""
        return self.grow(10, 90)


# --- reading processes and logs ---------------------------------------------------------


def read_status_kb(pid: int, field_name: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def read_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process, from ``/proc/PID/stat``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")
_NUMBERS = re.compile(r"\b(?:0x)?[0-9a-f]{6,}\b|\b\d+(?:\.\d+)?\b")
_BANNING = re.compile(r"banning peer ([0-9a-f]{8}) at (\S+)")
_DISCONNECTED = re.compile(r"disconnected from peer ([0-9a-f]{8}) at (\S+): (.*)")
_REFUSED_BANNED = re.compile(r"refused banned peer ([0-9a-f]{8})")
_CANNOT_KEEP_UP = re.compile(r"peer ([0-9a-f]{8}) at \S+ cannot keep up, disconnecting: (\d+) frames \((\d+) bytes\)")


@dataclass(slots=True)
class LogStats:
    """What a stretch of one node's log holds."""

    lines: int = 0
    tracebacks: int = 0
    levels: Counter[str] = field(default_factory=Counter)
    #: Message shapes (numbers and hex replaced by #), most frequent first.
    shapes: Counter[str] = field(default_factory=Counter)
    #: (banned key, where) for every "banning peer" line.
    bans: list[tuple[str, str]] = field(default_factory=list)
    #: (key, reason) for every "disconnected from peer" line.
    disconnects: list[tuple[str, str]] = field(default_factory=list)
    #: Keys refused at a handshake because they are banned.
    refused_banned: Counter[str] = field(default_factory=Counter)
    #: (key, frames, bytes) waiting for a peer when it was cut for not keeping up.
    overflows: list[tuple[str, int, int]] = field(default_factory=list)

    def count(self, needle: str) -> int:
        return sum(number for shape, number in self.shapes.items() if needle in shape)


def read_log(path: Path, start: int) -> tuple[LogStats, int]:
    """Statistics of ``path`` from byte ``start`` on, and the offset of its end."""
    stats = LogStats()
    try:
        with open(path, "rb") as file:
            file.seek(start)
            data = file.read()
    except OSError:
        return stats, start
    for raw in data.decode(errors="replace").splitlines():
        stats.lines += 1
        if raw.startswith("Traceback (most recent call last)"):
            stats.tracebacks += 1
        match = _TIMESTAMP.match(raw)
        if not match:
            continue
        rest = raw[match.end():]
        level, _, message = rest.partition(" ")
        stats.levels[level] += 1
        stats.shapes[f"{level} {_NUMBERS.sub('#', message.strip())[:110]}"] += 1
        if found := _BANNING.search(rest):
            stats.bans.append((found[1], found[2]))
        if found := _DISCONNECTED.search(rest):
            stats.disconnects.append((found[1], found[3][:100]))
        if found := _REFUSED_BANNED.search(rest):
            stats.refused_banned[found[1]] += 1
        if found := _CANNOT_KEEP_UP.search(rest):
            stats.overflows.append((found[1], int(found[2]), int(found[3])))
    return stats, start + len(data)


def log_offsets(cluster: AttackCluster, indexes: Iterable[int]) -> dict[int, int]:
    return {
        index: cluster.log_path(index).stat().st_size if cluster.log_path(index).exists() else 0 for index in indexes
    }


# --- the observer's record -----------------------------------------------------------


def longest_stall(calls: dict[str, list[list[Any]]], start: float, end: float) -> tuple[float, float]:
    """The longest stretch of [start, end] in which no honest node reported a new height,
    and when (seconds after ``start``) it began."""
    events: list[tuple[float, int]] = []
    for made in calls.values():
        events += [(call[1], call[2]) for call in made if call[2] is not None]
    events.sort()
    best = -1
    for answered, height in events:
        if answered <= start:
            best = max(best, height)
    moments = [start]
    for answered, height in events:
        if start < answered <= end and height > best:
            best = height
            moments.append(answered)
    moments.append(end)
    gap, began = max((later - earlier, earlier - start) for earlier, later in itertools.pairwise(moments))
    return gap, began


def slowest_call(calls: dict[str, list[list[Any]]], start: float, end: float, stopped: float) -> tuple[float, int]:
    """The longest ``chain_status`` call sent in [start, end] (unanswered ones by the time
    waited when the observer stopped), and how many failed."""
    slowest = 0.0
    failures = 0
    for made in calls.values():
        for sent, finished, _height, error in made:
            if not start <= sent <= end:
                continue
            if error is not None:
                failures += 1
            slowest = max(slowest, (finished if finished is not None else stopped) - sent)
    return slowest, failures


class Observer:
    """The observer process (``mura.tests.attacks.observe``) for one window."""

    def __init__(self, workdir: Path, urls: Sequence[str], pids: Sequence[int]) -> None:
        self.output = workdir / f"observed-{time.monotonic_ns()}.json"
        arguments = [sys.executable, "-m", "mura.tests.attacks.observe", "--output", str(self.output)]
        arguments += [f"--url={url}" for url in urls] + [f"--pid={pid}" for pid in pids]
        arguments += ["--interval", str(OBSERVE_INTERVAL)]
        self.process = subprocess.Popen(arguments, start_new_session=True, preexec_fn=die_with_parent)

    async def ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.output.with_suffix(".ready").exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"the observer exited with status {self.process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("the observer saw no node answer in time")
            await asyncio.sleep(0.05)

    async def stop(self) -> dict[str, Any]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while self.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.kill()
        document: dict[str, Any] = json.loads(self.output.read_text())
        return document

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


# --- attacker links that keep reading ----------------------------------------------------


class Drained:
    """An attacker link whose incoming frames are read (and counted) in the background, as a
    node's would be: a node cuts a peer that reads nothing."""

    def __init__(self, link: PeerLink, name: str, on_frame: Callable[[bytes], None] | None = None) -> None:
        self.link = link
        self.name = name
        self.on_frame = on_frame
        self.frames_in = 0
        self.bytes_in = 0
        #: Why the node closed the link, if it did (not when this client closed it).
        self.closed_by_node: str | None = None
        self._task = asyncio.create_task(self._drain(), name=f"drain-{name}")

    async def _drain(self) -> None:
        while True:
            try:
                frame = await self.link.receive(timeout=1.0)
            except LinkClosed as closed:
                if "closed by this client" not in str(closed):
                    self.closed_by_node = str(closed)
                return
            if frame:
                self.frames_in += 1
                self.bytes_in += len(frame)
                if self.on_frame is not None:
                    self.on_frame(frame)

    async def send(self, frame: bytes, *, timeout: float = 30.0) -> bool:
        """Write a frame; False once the link has ended or when the node took nothing for ``timeout``."""
        try:
            await self.link.send(frame, timeout=timeout)
        except (LinkClosed, TimeoutError):
            return False
        return True

    @property
    def open(self) -> bool:
        return not self.link.closed

    async def close(self) -> None:
        await self.link.close()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class Moment:
    """The targets and the chain at one moment of a window."""

    #: ``time.monotonic()``, the clock the observer uses.
    time: float
    #: ``time.time()``, the clock of block timestamps.
    wall_time: float
    #: Final height by honest node index (those that answered).
    heights: dict[int, int]
    #: VmRSS, VmHWM (the peak so far) and CPU seconds by target index (None: the process is gone).
    rss_kb: dict[int, int | None]
    peak_rss_kb: dict[int, int | None]
    cpu_s: dict[int, float | None]
    #: The machine's load averages over 1, 5 and 15 minutes.
    load_average: list[float]

    @classmethod
    def take(cls, pids: dict[int, int], heights: dict[int, int]) -> Moment:
        return cls(
            time.monotonic(),
            time.time(),
            heights,
            {index: read_status_kb(pid, "VmRSS") for index, pid in pids.items()},
            {index: read_status_kb(pid, "VmHWM") for index, pid in pids.items()},
            {index: read_cpu_seconds(pid) for index, pid in pids.items()},
            [round(value, 2) for value in os.getloadavg()],
        )


# --- the context -----------------------------------------------------------------------


class Context:
    """One attack's testnet, tools and figures."""

    def __init__(self, cluster: AttackCluster, rpc: Rpc, scale: Scale, workdir: Path) -> None:
        self.cluster = cluster
        self.rpc = rpc
        self.scale = scale
        self.workdir = workdir
        #: Attack-specific figures, for the table and the JSON.
        self.figures: dict[str, Any] = {}
        #: The common figures, filled when the window closes.
        self.measured: dict[str, Any] = {}
        self.links: list[Drained] = []
        #: Whether the attack uses validator 3's key (then its bans and disconnects are reported).
        self.uses_key = False
        #: What each node logged during the window, once it has closed.
        self.logs: dict[int, LogStats] = {}
        self._observer: Observer | None = None

    # --- attacker links ------------------------------------------------------------------

    async def link_as_attacker(self, index: int, on_frame: Callable[[bytes], None] | None = None) -> Drained:
        """A link to honest node ``index`` authenticated with the attacker's validator key."""
        self.uses_key = True
        link = await connect(self.cluster.endpoint(index), key=self.cluster.key(ATTACKER), testnet=self.cluster.testnet)
        drained = Drained(link, self.cluster.names[index], on_frame)
        self.links.append(drained)
        return drained

    async def close_links(self) -> None:
        await asyncio.gather(*(link.close() for link in self.links), return_exceptions=True)

    # --- the chain, as RPC shows it -------------------------------------------------------------

    async def status(self, index: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = await self.rpc.call(self.cluster.url(index), "chain_status")
        return result

    async def heights(self) -> dict[int, int]:
        answers = await asyncio.gather(*(self.status(index) for index in HONEST), return_exceptions=True)
        return {
            index: answer["height"] for index, answer in zip(HONEST, answers, strict=False) if isinstance(answer, dict)
        }

    def log_mark(self, indexes: Iterable[int]) -> dict[int, int]:
        """Where the logs of ``indexes`` end now, for ``log_since``."""
        return log_offsets(self.cluster, indexes)

    def log_since(self, marks: dict[int, int]) -> dict[int, LogStats]:
        return {index: read_log(self.cluster.log_path(index), offset)[0] for index, offset in marks.items()}

    # --- the measured window -----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def window(
        self, *, targets: Sequence[int] = HONEST, log_targets: Sequence[int] | None = None
    ) -> AsyncIterator[None]:
        """Measure what happens from entering to leaving (plus settling; see the module docstring)."""
        cluster = self.cluster
        log_targets = list(log_targets if log_targets is not None else targets)
        pids = {index: cluster.pid(index) for index in targets}
        observer = Observer(self.workdir, [cluster.url(index) for index in HONEST], list(pids.values()))
        self._observer = observer
        try:
            await observer.ready()
            offsets = log_offsets(cluster, set(log_targets) | set(HONEST))
            before = Moment.take(pids, await self.heights())
            yield
            attack_end = time.monotonic()
            settled = await self._settle()
            after = Moment.take(pids, await self.heights())
            observed = await observer.stop()
        finally:
            observer.kill()
            self._observer = None
        self.logs = {index: read_log(cluster.log_path(index), offsets[index])[0] for index in offsets}
        self.measured = {
            "load_average": before.load_average,
            "load_average_after": after.load_average,
            "attack_seconds": round(attack_end - before.time, 2),
            "window_seconds": round(after.time - before.time, 2),
            "recovered": settled,
            **await self._chain_figures(observed, before, after),
            **self._process_figures(observed, pids, before, after),
            **self._log_figures(self.logs, log_targets, after.time - before.time),
        }

    async def _chain_figures(self, observed: dict[str, Any], before: Moment, after: Moment) -> dict[str, Any]:
        stall, stall_began = longest_stall(observed["calls"], before.time, after.time)
        slowest, failures = slowest_call(observed["calls"], before.time, after.time, observed["stopped"])
        return {
            "stall_s": round(stall, 2),
            "stall_began_s": round(stall_began, 2),
            "stall_blocks_s": await self._block_gap(before.heights, before.wall_time, after.wall_time),
            "rpc_max_s": round(slowest, 3),
            "rpc_failures": failures,
            "heights": [before.heights, after.heights],
        }

    def _process_figures(
        self, observed: dict[str, Any], pids: dict[int, int], before: Moment, after: Moment
    ) -> dict[str, Any]:
        """Memory before, after and at its peak (the observer's samples, or VmHWM if it rose), and CPU seconds."""
        peaks: dict[int, int | None] = {}
        for index, pid in pids.items():
            samples = [kb for moment, kb in observed["memory"].get(str(pid), []) if before.time <= moment <= after.time]
            high_before, high_after = before.peak_rss_kb.get(index), after.peak_rss_kb.get(index)
            if high_before is not None and high_after is not None and high_after > high_before:
                samples.append(high_after)
            peaks[index] = max(samples, default=None)
        cpu = {}
        for index in pids:
            used_before, used_after = before.cpu_s.get(index), after.cpu_s.get(index)
            if used_before is not None and used_after is not None:
                cpu[self.cluster.names[index]] = round(used_after - used_before, 2)
        return {"rss_before_mb": _mb(before.rss_kb), "rss_after_mb": _mb(after.rss_kb), "rss_peak_mb": _mb(peaks),
                "cpu_s": cpu}

    async def _settle(self) -> bool:
        """Wait until every honest node gained ``SETTLE_HEIGHTS`` heights; False if the bound passed."""
        deadline = time.monotonic() + self.scale.settle_seconds
        first = await self.heights()
        while time.monotonic() < deadline:
            now = await self.heights()
            if all(index in first and now.get(index, -1) >= first[index] + SETTLE_HEIGHTS for index in HONEST):
                return True
            await asyncio.sleep(0.1)
        return False

    async def _block_gap(self, heights_before: dict[int, int], wall_start: float, wall_end: float) -> float | None:
        """The longest gap between block timestamps in the window (proposal times, so a block
        that waited for its commit shows the wait before the next)."""
        try:
            head = (await self.status(0))["height"]
            first = min(heights_before.values()) if heights_before else head
            calls = [("chain_getBlock", [height, False]) for height in range(max(1, first), head + 1)]
            stamps: list[float] = []
            for chunk in range(0, len(calls), 100):
                for answer in await self.rpc.batch(self.cluster.url(0), calls[chunk : chunk + 100]):
                    stamps.append(answer["result"]["timestamp_ms"] / 1000)
        except Exception:
            return None
        moments = [wall_start] + [stamp for stamp in stamps if wall_start < stamp <= wall_end] + [wall_end]
        return round(max(later - earlier for earlier, later in itertools.pairwise(moments)), 2)

    def _log_figures(self, logs: dict[int, LogStats], targets: Sequence[int], seconds: float) -> dict[str, Any]:
        cluster = self.cluster
        honest_keys = {cluster.short_key(index): cluster.names[index] for index in HONEST}
        attacker_key = cluster.short_key(ATTACKER)
        honest_bans = sorted({f"{cluster.names[node]} banned {honest_keys[key]}" for node, stats in logs.items()
                              for key, _ in stats.bans if key in honest_keys})
        honest_disconnects = Counter(f"{cluster.names[node]}-{honest_keys[key]}" for node, stats in logs.items()
                                     for key, _ in stats.disconnects if key in honest_keys)
        attacker_bans = sum(1 for stats in logs.values() for key, _ in stats.bans if key == attacker_key)
        attacker_disconnects = [reason for stats in logs.values() for key, reason in stats.disconnects
                                if key == attacker_key]
        closed = [f"{link.name}: {link.closed_by_node}" for link in self.links if link.closed_by_node]
        shapes: Counter[str] = Counter()
        for index in targets:
            shapes.update(logs[index].shapes)
        lines = sum(logs[index].lines for index in targets)
        return {
            "log_lines": lines,
            "log_lines_per_s": round(lines / seconds, 1) if seconds > 0 else 0.0,
            "tracebacks": sum(logs[index].tracebacks for index in targets),
            "log_levels": dict(sum((logs[index].levels for index in targets), Counter())),
            "log_digest": shapes.most_common(8),
            "honest_bans": honest_bans,
            "honest_disconnects": dict(honest_disconnects),
            "attacker_banned": attacker_bans if self.uses_key else None,
            "attacker_disconnected": (closed or attacker_disconnects[:3]) if self.uses_key else None,
        }

    def kill_observer(self) -> None:
        if self._observer is not None:
            self._observer.kill()


def _mb(values: dict[int, int | None]) -> dict[str, float | None]:
    return {str(index): None if kb is None else round(kb / 1024, 1) for index, kb in values.items()}


Attack = Callable[[Context], Awaitable[None]]


async def every(interval: float, until: float) -> AsyncIterator[float]:
    """Yield ``time.monotonic()`` every ``interval`` seconds until ``until`` (no drift)."""
    tick = time.monotonic()
    while tick < until:
        now = time.monotonic()
        if now < tick:
            await asyncio.sleep(tick - now)
        yield tick
        tick += interval
