"""The network benchmark: ``python -m mura.bench.network [--quick | --full] [options]``.

1. Measures Ed25519 verifications per second on this machine: the ceiling is
   cores x one thread's rate / validators, since every validator verifies
   every transaction once.
2. On a fresh 7-validator network (unless ``--skip-7``): sustained final tx/s
   at maximum load.
3. On a fresh 4-validator network (``--validators``): sustained final tx/s at
   maximum load, with transfers of the testnet's coin and then (unless
   ``--skip-mixed``) with transfers in three assets in turn, one of them
   restricted; finality latency at a fixed offered rate; catch-up of a wiped
   validator; ``account_getBalance`` queries per second; peak and current RSS
   per validator, and (full mode, as the time budget allows) RSS after a
   million final transactions.

Prints a table and writes every figure, the machine, the date and the options
to a JSON file. A lost transaction (accepted, never final) fails the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from mura.bench.ledger import verifications_per_second
from mura.bench.phases import MAX_BATCH, NetworkBench
from mura.bench.report import format_table
from mura.bench.rpc import Rpc
from mura.bench.validators import PortTaken, ValidatorProcesses
from mura.bench.watcher import LostTransactions

#: Settings each validator gets unless ``--node-args`` says otherwise: room for the whole backlog.
DEFAULT_NODE_ARGS = "--mempool-max-transactions 200000 --mempool-max-bytes 134217728"
#: Sizes per mode; any option given on the command line wins.
MODES: dict[str, dict[str, Any]] = {
    "quick": {
        "transactions": 40_000, "mixed_transactions": 40_000, "compare_transactions": 25_000, "warmup": 4_000,
        "min_window": 0,
        "accounts": 1_000, "latency_seconds": 5.0, "query_seconds": 3.0, "soak_transactions": 0,
        "budget_seconds": 120.0, "verify_seconds": 1.0,
    },
    "full": {
        "transactions": 100_000, "mixed_transactions": 100_000, "compare_transactions": 100_000, "warmup": 10_000,
        "min_window": 10_000,
        "accounts": 2_000, "latency_seconds": 20.0, "query_seconds": 5.0, "soak_transactions": 1_000_000,
        "budget_seconds": 840.0, "verify_seconds": 2.0,
    },
}
#: Time kept back from the budget for stopping the network and writing the report.
RESERVE_SECONDS = 20.0
#: Testnets tried when a validator finds its port taken.
START_ATTEMPTS = 3
#: Transactions signed and submitted per chunk of the memory soak.
SOAK_CHUNK = 50_000


def parse_options(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mura.bench.network", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", dest="mode", action="store_const", const="quick", help="small sizes, under 2 minutes (default)"
    )
    mode.add_argument("--full", dest="mode", action="store_const", const="full", help="the full run, under 15 minutes")
    parser.add_argument("--validators", type=int, default=4, help="validators of the main network (default 4)")
    parser.add_argument(
        "--compare-validators", type=int, default=7, help="validators of the max-load comparison (default 7)"
    )
    parser.add_argument("--skip-7", action="store_true", help="skip the comparison network")
    parser.add_argument(
        "--transactions", type=int, help="max-load transfers on the main network (quick 40,000, full 100,000)"
    )
    parser.add_argument(
        "--mixed-transactions", type=int,
        help="max-load transfers in three assets on the main network (quick 40,000, full 100,000)",
    )
    parser.add_argument("--skip-mixed", action="store_true", help="skip the max load in three assets")
    parser.add_argument("--compare-transactions", type=int, help="max-load transfers on the comparison network")
    parser.add_argument("--warmup", type=int, help="final transactions before the max-load window opens")
    parser.add_argument(
        "--min-window", type=int, help="smallest max-load window under load; below it, the whole phase is measured"
    )
    parser.add_argument("--accounts", type=int, help="funded sender accounts (at most 3,600)")
    parser.add_argument("--rate", type=float, default=1000.0, help="offered tx/s of the latency phase (default 1,000)")
    parser.add_argument("--latency-seconds", type=float, help="length of the latency phase")
    parser.add_argument(
        "--batch-size", type=int, default=MAX_BATCH, help="tx_submit per batch at max load (default 100)"
    )
    parser.add_argument(
        "--rate-batch-size", type=int, default=10, help="tx_submit per batch at a fixed rate (default 10)"
    )
    parser.add_argument("--connections", type=int, default=2, help="load connections per node at max load (default 2)")
    parser.add_argument("--query-seconds", type=float, help="length of the balance-query phase")
    parser.add_argument("--query-clients", type=int, default=4, help="concurrent keep-alive query clients (default 4)")
    parser.add_argument(
        "--soak-transactions", type=int, help="final transactions to reach for the RSS figure (full 1,000,000)"
    )
    parser.add_argument("--budget-seconds", type=float, help="the memory soak stops before this much run time")
    parser.add_argument("--verify-seconds", type=float, help="length of each Ed25519 measurement (quick 1, full 2)")
    parser.add_argument(
        "--stall-seconds", type=float, default=60.0, help="fail when accepted transactions make no progress this long"
    )
    parser.add_argument("--skip-catch-up", action="store_true", help="skip the wipe-and-resync phase")
    parser.add_argument(
        "--poll-ms", type=float, default=20.0, help="the finality watcher's polling interval (default 20)"
    )
    parser.add_argument(
        "--node-args", default=DEFAULT_NODE_ARGS, help=f"extra validator flags (default: {DEFAULT_NODE_ARGS!r})"
    )
    parser.add_argument(
        "--json", type=Path, default=Path("bench-results/network.json"), help="where to write the figures"
    )
    parser.add_argument("--keep", action="store_true", help="keep the networks' directories and logs, and print where")
    options = parser.parse_args(argv)
    options.mode = options.mode or "quick"
    for name, value in MODES[options.mode].items():
        if getattr(options, name, None) is None:
            setattr(options, name, value)
    return options


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {
        "cores": os.cpu_count() or 1,
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }


def measure_verification(seconds: float) -> dict[str, float]:
    """Ed25519 verifications per second on one thread and on every core, now, on this machine."""
    cores = os.cpu_count() or 1
    return {
        "cores": cores,
        "ed25519_per_second_one_thread": verifications_per_second(seconds=seconds, threads=1),
        "ed25519_per_second_all_cores": verifications_per_second(seconds=seconds, threads=cores),
    }


@contextlib.asynccontextmanager
async def running_network(
    count: int, options: argparse.Namespace, directory: Path, rpc: Rpc
) -> AsyncIterator[NetworkBench]:
    """A started, funded network of ``count`` validators; stopped on the way out, whatever happens.

    A validator whose port was taken between the search and its bind makes a
    new testnet on other ports, up to ``START_ATTEMPTS`` times.
    """
    directory.mkdir(parents=True)  # noqa: ASYNC240 - once, before anything runs
    for attempt in range(1, START_ATTEMPTS + 1):
        validators = ValidatorProcesses(
            directory / f"testnet-{attempt}", count=count, node_arguments=shlex.split(options.node_args)
        )
        bench = NetworkBench(
            validators, rpc, directory, accounts=options.accounts, poll_interval=options.poll_ms / 1000,
            stall_seconds=options.stall_seconds,
        )
        try:
            await bench.start()
        except PortTaken:
            await bench.stop()
            if attempt == START_ATTEMPTS:
                raise
            continue
        except BaseException:
            await bench.stop()
            raise
        break
    try:
        yield bench
    finally:
        await bench.stop()


async def bench_comparison(
    options: argparse.Namespace, directory: Path, rpc: Rpc, ceiling: float, result: dict[str, Any]
) -> None:
    """Max load on the comparison network, into ``result``."""
    count = options.compare_validators
    async with running_network(count, options, directory, rpc) as bench:
        result |= {"validators": count, "ceiling_tx_per_second": ceiling / count}
        try:
            result["max_load"] = await bench.max_load(
                options.compare_transactions, warmup=options.warmup, min_window=options.min_window,
                batch_size=options.batch_size, connections=options.connections,
            )
            result["max_load"]["achieved_over_ceiling"] = result["max_load"]["final_tx_per_second"] / (ceiling / count)
            result["memory_after_run"] = bench.memory()
        finally:
            result["refused"] = dict(bench.refused)


async def bench_main(
    options: argparse.Namespace, directory: Path, rpc: Rpc, ceiling: float, deadline: float, result: dict[str, Any]
) -> None:
    """Every phase on the main network, filling ``result`` as it goes (so a failure keeps what was measured)."""
    count = options.validators
    async with running_network(count, options, directory, rpc) as bench:
        result |= {"validators": count, "ceiling_tx_per_second": ceiling / count}
        try:
            await main_phases(bench, options, ceiling / count, deadline, result)
        finally:
            result["refused"] = dict(bench.refused)


async def main_phases(
    bench: NetworkBench, options: argparse.Namespace, ceiling: float, deadline: float, result: dict[str, Any]
) -> None:
    """Max load (plain, then mixed), latency, catch-up, queries and the memory soak, in that order."""
    result["max_load"] = await bench.max_load(
        options.transactions, warmup=options.warmup, min_window=options.min_window,
        batch_size=options.batch_size, connections=options.connections,
    )
    result["max_load"]["achieved_over_ceiling"] = result["max_load"]["final_tx_per_second"] / ceiling
    if not options.skip_mixed:
        result["mixed_load"] = await bench.mixed_load(
            options.mixed_transactions, warmup=options.warmup, min_window=options.min_window,
            batch_size=options.batch_size, connections=options.connections,
        )
        result["mixed_load"]["achieved_over_ceiling"] = result["mixed_load"]["final_tx_per_second"] / ceiling
    result["latency"] = await bench.latency(
        rate=options.rate, seconds=options.latency_seconds, batch_size=options.rate_batch_size,
        connections=max(8, options.connections),
    )
    result["memory_before_catch_up"] = bench.memory()
    if not options.skip_catch_up:
        result["catch_up"] = await bench.catch_up()
    result["balance_queries"] = await bench.balance_queries(
        seconds=options.query_seconds, clients=options.query_clients
    )
    if options.soak_transactions:
        result["soak"] = await bench.soak(
            target=options.soak_transactions,
            chunk=SOAK_CHUNK,
            deadline=deadline,
            batch_size=options.batch_size,
            connections=options.connections,
        )
    result["final_transactions"] = bench.watcher.total_transactions
    result["memory_after_run"] = bench.memory()
    result["view_changes_in_logs"] = bench.validators.count_in_logs("view change at height")


async def run(options: argparse.Namespace, results: dict[str, Any], scratch: Path) -> None:
    """Every measurement, in order; ``results`` holds whatever was measured if one fails."""
    started = time.monotonic()
    deadline = started + options.budget_seconds - RESERVE_SECONDS
    results["verification"] = verification = measure_verification(options.verify_seconds)
    ceiling = verification["cores"] * verification["ed25519_per_second_one_thread"]
    results["networks"] = networks = []
    async with Rpc(timeout_seconds=30) as rpc:
        main_result: dict[str, Any] = {}
        networks.append(main_result)
        if not options.skip_7:
            compared: dict[str, Any] = {}
            networks.append(compared)
            await bench_comparison(options, scratch / f"net-{options.compare_validators}", rpc, ceiling, compared)
        await bench_main(options, scratch / f"net-{options.validators}", rpc, ceiling, deadline, main_result)
    results["elapsed_seconds"] = time.monotonic() - started


async def run_cancellable(options: argparse.Namespace, results: dict[str, Any], scratch: Path) -> None:
    """``run``, cancelled cleanly (every process stopped) on SIGTERM as on Ctrl-C."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    await run(options, results, scratch)


def write_results(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    results: dict[str, Any] = {
        "benchmark": "mura network",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "mode": options.mode,
        "machine": machine(),
        "options": {key: str(value) if isinstance(value, Path) else value for key, value in vars(options).items()},
    }
    scratch = Path(tempfile.mkdtemp(prefix="mura-bench-network-"))
    status = 0
    try:
        asyncio.run(run_cancellable(options, results, scratch))
    except (KeyboardInterrupt, asyncio.CancelledError):
        results["error"] = "interrupted"
        status = 130
    except LostTransactions as error:
        results["error"] = f"transactions lost: {error}"
        status = 1
    except Exception as error:  # the report says what failed, the JSON keeps what was measured
        results["error"] = f"{type(error).__name__}: {error}"
        status = 1
    finally:
        if options.keep:
            print(f"kept the networks' directories and logs under {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    write_results(options.json, results)
    print(format_table(results))
    print(f"\nwrote {options.json}")
    if "error" in results:
        print(f"\nFAILED: {results['error']}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
