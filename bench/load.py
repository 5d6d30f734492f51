"""The load process: submits a file of ``tx_submit`` batches over keep-alive connections.

``python -m mura.bench.load --input FILE --output FILE --url URL ...``
reads lines written by ``workload.write_batch_file`` (``node<TAB>count<TAB>body``)
and posts each body to its node's URL. Without ``--rate`` it is a closed loop at
maximum load: ``--connections`` workers per node, each posting its node's next
batch as soon as the previous answer arrives. With ``--rate`` it is an open
loop: batch k is due when the batches before it hold ``k / rate`` seconds'
worth of transactions from the start, by the monotonic clock, and is posted
then whatever the answers before it are doing.

The output is JSON: for each line, ``[node, scheduled, start, end, accepted]``
in ``time.monotonic()`` seconds (one clock for every process on the machine),
each refused transaction as ``[id, code, rule or message]``, and the CPU
seconds the load process used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from mura.bench.rpc import JSON_HEADERS

#: A batch sent but not answered after this long counts as refused.
REQUEST_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class Batch:
    """One line of the load file."""

    line: int
    node: int
    count: int
    body: bytes


@dataclass(slots=True)
class LoadRecord:
    """What happened to every batch: timing per line, and the refusals."""

    #: Per line: ``[node, scheduled, start, end, accepted]``; scheduled is 0.0 at maximum load.
    batches: list[list[Any]]
    #: ``[id, code, rule or message]`` for each transaction the node refused or never answered.
    refused: list[list[Any]] = field(default_factory=list)


def read_batches(path: Path) -> list[Batch]:
    batches = []
    with open(path, "rb") as file:
        for line_number, line in enumerate(file):
            node, count, body = line.rstrip(b"\n").split(b"\t", 2)
            batches.append(Batch(line_number, int(node), int(count), body))
    return batches


def batch_ids(body: bytes) -> list[int]:
    """The request ids in a batch body (only needed when a whole batch failed)."""
    return [request["id"] for request in json.loads(body)]


async def post_batch(
    session: aiohttp.ClientSession, url: str, batch: Batch, record: LoadRecord, scheduled: float
) -> None:
    """Post one batch and record its timing, acceptances and refusals."""
    start = time.monotonic()
    accepted = 0
    try:
        async with session.post(url, data=batch.body, headers=JSON_HEADERS) as response:
            answers = json.loads(await response.read())
        if not isinstance(answers, list):
            raise ValueError(f"HTTP {response.status}: {answers}")
        for answer in answers:
            error = answer.get("error")
            if error is None:
                accepted += 1
            else:
                data = error.get("data") or {}
                record.refused.append([answer.get("id"), error.get("code"), data.get("rule") or error.get("message")])
    except (TimeoutError, aiohttp.ClientError, ValueError) as failure:
        reason = f"transport: {type(failure).__name__}: {failure}"
        record.refused.extend([index, None, reason] for index in batch_ids(batch.body))
    record.batches[batch.line] = [batch.node, scheduled, start, time.monotonic(), accepted]


def open_sessions(urls: Sequence[str], connections: int) -> list[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    return [
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections), timeout=timeout) for _ in urls
    ]


async def run_closed_loop(batches: list[Batch], urls: Sequence[str], *, connections: int, record: LoadRecord) -> None:
    """Maximum load: each node's workers post its batches back to back."""
    queues: list[deque[Batch]] = [deque() for _ in urls]
    for batch in batches:
        queues[batch.node].append(batch)
    sessions = open_sessions(urls, connections)

    async def worker(node: int) -> None:
        while queues[node]:
            await post_batch(sessions[node], urls[node], queues[node].popleft(), record, 0.0)

    try:
        async with asyncio.TaskGroup() as group:
            for node in range(len(urls)):
                for _ in range(connections):
                    group.create_task(worker(node))
    finally:
        for session in sessions:
            await session.close()


async def run_open_loop(
    batches: list[Batch], urls: Sequence[str], *, rate: float, connections: int, record: LoadRecord
) -> None:
    """A fixed offered rate: each batch is posted when its turn comes by the monotonic clock."""
    sessions = open_sessions(urls, connections)
    start = time.monotonic()
    offered = 0
    try:
        async with asyncio.TaskGroup() as group:
            for batch in batches:
                due = start + offered / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                group.create_task(post_batch(sessions[batch.node], urls[batch.node], batch, record, due))
                offered += batch.count
    finally:
        for session in sessions:
            await session.close()


async def run(batches: list[Batch], urls: Sequence[str], *, rate: float | None, connections: int) -> LoadRecord:
    record = LoadRecord(batches=[[] for _ in batches])
    if rate is None:
        await run_closed_loop(batches, urls, connections=connections, record=record)
    else:
        await run_open_loop(batches, urls, rate=rate, connections=connections, record=record)
    return record


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mura.bench.load", description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, required=True, help="batch file (node, count, body per line)")
    parser.add_argument("--output", type=Path, required=True, help="where to write the JSON record")
    parser.add_argument("--url", action="append", required=True, help="a node's JSON-RPC URL, in node order")
    parser.add_argument("--rate", type=float, help="offered transactions per second (default: maximum load)")
    parser.add_argument("--connections", type=int, default=2, help="keep-alive connections per node (default 2)")
    options = parser.parse_args(argv)
    batches = read_batches(options.input)
    record = asyncio.run(run(batches, options.url, rate=options.rate, connections=options.connections))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_seconds = usage.ru_utime + usage.ru_stime
    figures = {"batches": record.batches, "refused": record.refused, "cpu_seconds": cpu_seconds}
    options.output.write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
