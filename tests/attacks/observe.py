"""The observer: a separate process that watches the honest nodes while an attack runs.

``python -m mura.tests.attacks.observe --output FILE --url URL ... --pid PID ...``
asks every URL for ``chain_status`` every ``--interval`` seconds (the next call
starts when the previous one answered, or ``--interval`` after it started,
whichever is later) and reads VmRSS of every PID as often. It runs until SIGTERM
or SIGINT, then writes JSON: per URL every call as ``[sent, answered, height]``
and ``[sent, failed, null, error]`` for a failed one (``time.monotonic()``
seconds, one clock for every process on the machine; a call still unanswered at
the end is ``[sent, null, null, null]``), per PID ``[time, rss_kb]`` samples,
and the moment it stopped. Once every URL has answered once it creates
``FILE.ready``.

It is a process of its own so that the attacker's work in the harness never
delays an observation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

_STATUS = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "chain_status", "params": []}).encode()


def read_rss_kb(pid: int) -> int | None:
    """VmRSS of a live process in KiB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


async def _poll(
    session: aiohttp.ClientSession, url: str, interval: float, calls: list[list[Any]], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        sent = time.monotonic()
        call: list[Any] = [sent, None, None, None]
        calls.append(call)
        try:
            async with session.post(url, data=_STATUS, headers={"Content-Type": "application/json"}) as response:
                answer = json.loads(await response.read())
            height = int(answer["result"]["height"])
            call[1], call[2] = time.monotonic(), height
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError, KeyError, TypeError) as error:
            call[1], call[3] = time.monotonic(), f"{type(error).__name__}: {error}"[:200]
        delay = sent + interval - time.monotonic()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)


async def _sample_memory(
    pids: Sequence[int], interval: float, samples: dict[int, list[list[float]]], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        now = time.monotonic()
        for pid in pids:
            rss = read_rss_kb(pid)
            if rss is not None:
                samples[pid].append([now, rss])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def observe(urls: Sequence[str], pids: Sequence[int], *, interval: float, output: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    calls: dict[str, list[list[Any]]] = {url: [] for url in urls}
    memory: dict[int, list[list[float]]] = {pid: [] for pid in pids}
    # One connection per node, so a node that stops answering holds up only its own calls.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1), timeout=timeout) for _ in urls]
    tasks = [
        asyncio.create_task(_poll(session, url, interval, calls[url], stop))
        for session, url in zip(sessions, urls, strict=False)
    ]
    tasks.append(asyncio.create_task(_sample_memory(pids, interval, memory, stop)))
    while not stop.is_set() and not all(any(call[2] is not None for call in made) for made in calls.values()):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
    output.with_suffix(".ready").touch()
    await stop.wait()
    stopped = time.monotonic()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for session in sessions:
        await session.close()
    document = {"calls": calls, "memory": {str(pid): samples for pid, samples in memory.items()}, "stopped": stopped}
    temporary = output.with_suffix(".partial")
    temporary.write_text(json.dumps(document))
    temporary.replace(output)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mura.tests.attacks.observe")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--url", action="append", default=[])
    parser.add_argument("--pid", action="append", type=int, default=[])
    parser.add_argument("--interval", type=float, default=0.05)
    options = parser.parse_args(argv)
    asyncio.run(observe(options.url, options.pid, interval=options.interval, output=options.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
