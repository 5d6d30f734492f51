"""Attacks on a node's JSON-RPC port, by anyone."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import time
import zlib
from collections import Counter
from typing import Any

import aiohttp

from mura.chain.transaction import Transaction, Transfer
from mura.tests.attacks.harness import Context, read_status_kb
from mura.tests.attacks.keyless_attacks import OUTSIDER
from mura.tests.attacks.testnet import ASSET

TARGET = 0
BATCH = 100
CONNECTIONS = 4


def refused_batch(chain_id: str, first_id: int) -> bytes:
    """A JSON-RPC batch of ``tx_submit`` calls, each a transfer from a fresh key with nothing
    to spend (the balance rule refuses it before its signature is looked at)."""
    calls = []
    for number in range(BATCH):
        transaction = Transaction(chain_id, os.urandom(32), 0, Transfer(ASSET, os.urandom(32), 1), os.urandom(64))
        calls.append(
            f'{{"jsonrpc":"2.0","id":{first_id + number},"method":"tx_submit",'
            f'"params":["{transaction.encoded.hex()}"]}}'
        )
    return ("[" + ",".join(calls) + "]").encode()


async def refused_submissions(context: Context) -> None:
    """``tx_submit`` calls the node refuses, in batches of 100, and the node's memory per 100,000."""
    total = context.scale.count(20_000, 610_000)
    url = context.cluster.url(TARGET)
    pid = context.cluster.pid(TARGET)
    chain_id = context.cluster.chain_id
    rules: Counter[str] = Counter()
    done = 0
    marks: list[tuple[int, float | None]] = []
    next_mark = 100_000
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONNECTIONS, local_addr=(OUTSIDER, 0)),
                                    timeout=aiohttp.ClientTimeout(total=120))
    batches = iter(range(0, total, BATCH))

    async def worker() -> None:
        nonlocal done, next_mark
        for first in batches:
            body = refused_batch(chain_id, first)
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                answers = json.loads(await response.read())
            for answer in answers if isinstance(answers, list) else [answers]:
                error = answer.get("error")
                rules[str((error.get("data") or {}).get("rule", error.get("message"))) if error else "accepted"] += 1
            done += BATCH
            if done >= next_mark:
                rss = read_status_kb(pid, "VmRSS")
                marks.append((done, None if rss is None else round(rss / 1024, 1)))
                next_mark += 100_000

    try:
        async with context.window(targets=[TARGET]):
            started = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
            seconds = time.monotonic() - started
    finally:
        await session.close()
    before = context.measured["rss_before_mb"][str(TARGET)]
    after = context.measured["rss_after_mb"][str(TARGET)]
    growth = None if before is None or after is None else after - before
    context.figures.update({
        "refused": done - rules["accepted"],
        "accepted": rules["accepted"],
        "rules": dict(rules.most_common(4)),
        "refusals_per_s": round(done / seconds) if seconds else None,
        "rss_mb_at_each_100k": marks,
        "rss_growth_mb_per_100k": None if growth is None else round(growth * 100_000 / done, 1),
    })


# --- 8. Content-Encoding ---------------------------------------------------------------------

_REQUEST = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "chain_status", "params": []}).encode()
#: (name, Content-Encoding header, body)
ENCODINGS: tuple[tuple[str, str, bytes], ...] = (
    ("identity", "identity", _REQUEST),
    ("gzip_valid", "gzip", gzip.compress(_REQUEST)),
    ("gzip_invalid", "gzip", b"this is not gzip at all"),
    ("deflate_valid", "deflate", zlib.compress(_REQUEST)),
    ("deflate_invalid", "deflate", b"\x00\x01 not deflate"),
    ("br", "br", b"\x8b\x03\x80not really brotli"),
    ("x-unknown", "x-unknown", _REQUEST),
)


async def _log_quiet(context: Context, *, quiet: float = 0.3, bound: float = 3.0) -> None:
    """Until the target's log has not grown for ``quiet`` seconds (at most ``bound``)."""
    deadline = time.monotonic() + bound
    size = -1
    while time.monotonic() < deadline:
        now = context.cluster.log_path(TARGET).stat().st_size
        if now == size:
            return
        size = now
        await asyncio.sleep(quiet)


async def content_encoding(context: Context) -> None:
    """Requests with Content-Encoding gzip (valid and not), deflate, br and an unknown one."""
    repeats = context.scale.count(1, 10)
    url = context.cluster.url(TARGET)
    results: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(OUTSIDER, 0))) as session:
        async with context.window(targets=[TARGET]):
            for name, encoding, body in ENCODINGS:
                marks = context.log_mark([TARGET])
                statuses: Counter[int] = Counter()
                answer = ""
                for _ in range(repeats):
                    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
                    try:
                        async with session.post(url, data=body, headers=headers, compress=None) as response:
                            statuses[response.status] += 1
                            answer = (await response.text(errors="replace"))[:90]
                    except aiohttp.ClientError as error:
                        statuses[0] += 1
                        answer = f"{type(error).__name__}: {error}"[:90]
                await _log_quiet(context)
                logged = context.log_since(marks)[TARGET]
                results[name] = {
                    "status": dict(statuses),
                    "lines_per_request": round(logged.lines / repeats, 1),
                    "tracebacks_per_request": round(logged.tracebacks / repeats, 2),
                    "answer": answer,
                }
    context.figures["by_encoding"] = results
    context.figures["statuses"] = {
        name: "/".join(str(code) for code in result["status"]) for name, result in results.items()
    }
    context.figures["worst_lines_per_request"] = max(result["lines_per_request"] for result in results.values())
