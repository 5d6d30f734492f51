"""The query process: ``account_getBalance`` against one node, from a few keep-alive clients.

``python -m mura.bench.queries --url URL --addresses FILE --seconds S --clients C --output FILE``
runs C clients, each on its own keep-alive connection, each sending one
single-request call after another (no batches) with addresses drawn from the
file, for S seconds. The output is JSON: answered queries, errors, the
measured seconds and the per-call latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from mura.bench.rpc import JSON_HEADERS


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


async def client(url: str, addresses: Sequence[str], deadline: float, seed: int) -> tuple[list[float], int]:
    """One client's call latencies and error count until the deadline."""
    chooser = random.Random(seed)
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
        while time.monotonic() < deadline:
            request = {"jsonrpc": "2.0", "id": 1, "method": "account_getBalance", "params": [chooser.choice(addresses)]}
            start = time.monotonic()
            try:
                async with session.post(url, data=json.dumps(request).encode(), headers=JSON_HEADERS) as response:
                    answer = json.loads(await response.read())
                if not isinstance(answer.get("result"), int):
                    raise ValueError(answer)
                latencies.append(time.monotonic() - start)
            except (TimeoutError, aiohttp.ClientError, ValueError, AttributeError):
                errors += 1
    return latencies, errors


async def measure(url: str, addresses: Sequence[str], *, seconds: float, clients: int) -> dict[str, Any]:
    start = time.monotonic()
    results = await asyncio.gather(*(client(url, addresses, start + seconds, seed) for seed in range(clients)))
    elapsed = time.monotonic() - start
    latencies = sorted(latency for client_latencies, _ in results for latency in client_latencies)
    return {
        "queries": len(latencies),
        "errors": sum(errors for _, errors in results),
        "seconds": elapsed,
        "clients": clients,
        "queries_per_second": len(latencies) / elapsed,
        "latency_p50_ms": percentile(latencies, 0.50) * 1000,
        "latency_p99_ms": percentile(latencies, 0.99) * 1000,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mura.bench.queries", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the node's JSON-RPC URL")
    parser.add_argument("--addresses", type=Path, required=True, help="JSON list of text addresses to query")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--output", type=Path, required=True, help="where to write the JSON figures")
    options = parser.parse_args(argv)
    addresses = json.loads(options.addresses.read_text())
    figures = asyncio.run(measure(options.url, addresses, seconds=options.seconds, clients=options.clients))
    options.output.write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
