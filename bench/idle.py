"""What an idle chain costs: ``python -m mura.bench.idle [--blocks N]``.

Four validator processes make empty blocks quickly (a small
``consensus.empty_block_interval_ms``); the growth of each validator's chain
data (its LevelDB ``data_dir``) and vote record over ``--blocks`` empty
blocks, divided by the blocks, is the cost of one empty block. It is measured
with the nodes stopped, as the files are left (``written``: the write-ahead
log and first tables, which hold every overwritten version), as keys and
values (``live``), and as a fresh copy of those in one table (``settled``:
what LevelDB's own compactions bring the files to). The vote record keeps
the last 16 heights' votes only: its size after the run is given. Then one
validator's data is wiped and it resyncs from the other three, which make no
blocks meanwhile: its catch-up speed in empty blocks per second.

From these it prints what a day idle costs at the default interval (a
minute) and at the old one (a second), and how long a wiped node takes to
resync a year of idle chain. Figures, not a test: CPU is shared with whatever
else runs, so note the load average printed and repeat before trusting one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plyvel

from mura.bench.rpc import Rpc
from mura.bench.validators import ValidatorProcesses
from mura.chain.store import Store

VALIDATORS = 4
#: The validator wiped for the catch-up phase.
WIPED = VALIDATORS - 1
DAY_S = 86_400
YEAR_S = 365 * DAY_S
#: Intervals the figures are given for: the node's default and the old one.
INTERVALS_MS = (60_000, 1_000)
#: While the wiped validator resyncs, the others make no block.
NO_BLOCKS = ("--consensus-empty-block-interval-ms", "3600000")


def directory_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (the size on disk, in 512-byte blocks as allocated)."""
    return sum(entry.stat().st_blocks * 512 for entry in path.rglob("*") if entry.is_file())


def settled(path: Path, scratch: Path) -> tuple[int, int]:
    """(live, settled) bytes of the LevelDB at ``path``: its keys and values, and the size
    of a copy holding only those, as one table (what its own compactions bring it to,
    once they have dropped overwritten and deleted entries)."""
    source = plyvel.DB(str(path))
    live = 0
    copy = plyvel.DB(str(scratch), create_if_missing=True, error_if_exists=True)
    try:
        with copy.write_batch() as batch:
            for key, value in source:
                live += len(key) + len(value)
                batch.put(key, value)
    finally:
        source.close()
        copy.close()
    # Opening it again turns the write-ahead log into a table.
    plyvel.DB(str(scratch)).close()
    size = directory_bytes(scratch)
    shutil.rmtree(scratch)
    return live, size


def chain_height(path: Path) -> int:
    store = Store(path)
    try:
        return store.height
    finally:
        store.close()


def vote_record_path(validators: ValidatorProcesses, index: int) -> Path:
    return validators.directory / "keys" / f"{validators.names[index]}.votes"


def snapshot(validators: ValidatorProcesses) -> list[dict[str, int]]:
    """Per validator, with every node stopped: height, chain data as written, live and
    settled, and the vote record's live and settled size."""
    rows = []
    scratch = validators.directory / "scratch"
    for index in range(validators.count):
        data = validators.data_dir(index)
        live, size = settled(data, scratch)
        votes_live, votes_size = settled(vote_record_path(validators, index), scratch)
        rows.append({
            "height": chain_height(data), "written": directory_bytes(data), "live": live, "settled": size,
            "votes_live": votes_live, "votes_settled": votes_size,
        })
    return rows


async def run_until(validators: ValidatorProcesses, rpc: Rpc, height: int, *, timeout_seconds: float) -> None:
    """Start every validator, wait until each reports ``height``, then stop them all."""
    for index in range(validators.count):
        validators.start(index)
    try:
        for index in range(validators.count):
            await validators.wait_until(rpc, index, lambda status: status["height"] >= height,
                                        f"reach height {height}", timeout_seconds=timeout_seconds)
    finally:
        for index in list(validators.processes):
            validators.stop(index)


async def catch_up(validators: ValidatorProcesses, rpc: Rpc, *, timeout_seconds: float) -> dict[str, float]:
    """Wipe one validator and time its resync from the others (which make no blocks)."""
    target = Store(validators.data_dir(0))
    try:
        height = target.height
    finally:
        target.close()
    validators.wipe(WIPED)
    validators.node_arguments = [*validators.node_arguments, *NO_BLOCKS]
    for index in range(validators.count):
        if index != WIPED:
            validators.start(index)
    try:
        started = time.monotonic()
        validators.start(WIPED)
        first = await validators.wait_until(rpc, WIPED, lambda status: status["height"] > 0, "start catching up",
                                            timeout_seconds=timeout_seconds, interval=0.01)
        moving = time.monotonic()
        await validators.wait_until(rpc, WIPED, lambda status: status["height"] >= height, f"reach height {height}",
                                    timeout_seconds=timeout_seconds, interval=0.01)
        done = time.monotonic()
    finally:
        for index in list(validators.processes):
            validators.stop(index)
    blocks = height - int(first["height"])
    return {
        "blocks": height,
        "seconds_from_start": round(done - started, 2),
        "blocks_per_second": round(blocks / max(done - moving, 1e-3), 1),
    }


def figures(before: list[dict[str, int]], after: list[dict[str, int]], speed: float) -> dict[str, Any]:
    per_block: dict[str, float] = {}
    for field in ("written", "live", "settled"):
        growth = [
            (a[field] - b[field]) / max(a["height"] - b["height"], 1) for b, a in zip(before, after, strict=False)
        ]
        per_block[field] = round(sum(growth) / len(growth))
    costs = {}
    for interval in INTERVALS_MS:
        blocks_a_day = DAY_S * 1000 // interval
        blocks_a_year = YEAR_S * 1000 // interval
        costs[f"{interval}_ms"] = {
            "blocks_a_day": blocks_a_day,
            "chain_bytes_a_day_settled": per_block["settled"] * blocks_a_day,
            "chain_bytes_a_day_written": per_block["written"] * blocks_a_day,
            "chain_bytes_a_year_settled": per_block["settled"] * blocks_a_year,
            "resync_a_year_seconds": round(blocks_a_year / speed),
        }
    return {"bytes_per_empty_block": per_block, "by_interval": costs}


def describe(result: dict[str, Any]) -> list[str]:
    per_block = result["bytes_per_empty_block"]
    speed = result["catch_up"]["blocks_per_second"]
    lines = [
        f"load average at start {result['load_average_at_start']}, at end {result['load_average_at_end']}",
        f"empty blocks measured: {result['blocks']} (interval {result['interval_ms']} ms)",
        f"chain data per empty block: {per_block['settled']} bytes settled ({per_block['live']} of keys and "
        f"values), {per_block['written']} as first written",
        f"vote record after the run (votes are pruned 16 heights below): {result['votes_settled']} bytes settled "
        f"({result['votes_live']} of keys and values)",
        f"catch-up of a wiped validator: {speed} empty blocks/s "
        f"({result['catch_up']['blocks']} blocks in {result['catch_up']['seconds_from_start']} s from its start)",
    ]
    for interval, cost in result["by_interval"].items():
        lines.append(
            f"idle at {interval}: {cost['blocks_a_day']} blocks a day, "
            f"{cost['chain_bytes_a_day_settled'] / 1e6:.2f} MB a day settled "
            f"({cost['chain_bytes_a_day_written'] / 1e6:.2f} MB as first written), "
            f"{cost['chain_bytes_a_year_settled'] / 1e9:.3f} GB a year; "
            f"resyncing a year takes {cost['resync_a_year_seconds'] / 3600:.2f} h"
        )
    return lines


async def measure(options: argparse.Namespace, directory: Path) -> dict[str, Any]:
    fast = ["--consensus-empty-block-interval-ms", str(options.interval_ms), "--log-level", "warning"]
    validators = ValidatorProcesses(directory / "testnet", count=VALIDATORS, node_arguments=fast)
    load_at_start = os.getloadavg()
    try:
        async with Rpc() as rpc:
            await run_until(validators, rpc, 5, timeout_seconds=options.timeout)
            before = snapshot(validators)
            await run_until(validators, rpc, max(row["height"] for row in before) + options.blocks,
                            timeout_seconds=options.timeout)
            after = snapshot(validators)
            speed = await catch_up(validators, rpc, timeout_seconds=options.timeout)
    finally:
        validators.close()
    result: dict[str, Any] = {
        "load_average_at_start": [round(value, 2) for value in load_at_start],
        "blocks": min(a["height"] - b["height"] for b, a in zip(before, after, strict=False)),
        "interval_ms": options.interval_ms,
        "catch_up": speed,
        "votes_live": max(row["votes_live"] for row in after),
        "votes_settled": max(row["votes_settled"] for row in after),
        "before": before,
        "after": after,
    }
    result |= figures(before, after, speed["blocks_per_second"])
    result["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
    return result


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mura.bench.idle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=1_000, help="empty blocks to measure (default 1000)")
    parser.add_argument("--interval-ms", type=int, default=20, help="idle interval while measuring (default 20)")
    parser.add_argument("--timeout", type=float, default=300.0, help="longest wait for any phase, s (default 300)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the testnet directory and print where")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(sys.argv[1:] if argv is None else argv)
    directory = Path(tempfile.mkdtemp(prefix="mura-idle-"))
    try:
        result = asyncio.run(measure(options, directory))
    finally:
        if options.keep:
            print(f"kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    for line in describe(result):
        print(line)
    if options.json is not None:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
