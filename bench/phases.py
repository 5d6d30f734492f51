"""The measurements made on one running network, each a method of ``NetworkBench``.

Every phase signs its transactions first (outside what it measures), hands them
to a separate load process, waits until the watcher has seen every accepted
transaction final, and only then computes its figures. A transaction accepted
but never final stops the run with ``LostTransactions``; refusals are counted.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mura.bench.queries import percentile
from mura.bench.rpc import Rpc
from mura.bench.validators import NetworkFailure, ValidatorProcesses
from mura.bench.watcher import FinalityWatcher, LostTransactions, SeenBlock
from mura.bench.workload import FAN_OUT, MIXED_ASSETS, SignedTransaction, Workload, write_addresses, write_batch_file
from mura.chain.address import encode_address
from mura.genesis.testnet import DEFAULT_BANK_AMOUNT, DEFAULT_TREASURY_AMOUNT

#: By default a phase fails when none of its missing transactions becomes final for this long.
STALL_SECONDS = 60.0
#: Fewest blocks a max-load window may span.
MIN_WINDOW_BLOCKS = 3
#: The largest JSON-RPC batch the nodes accept by default.
MAX_BATCH = 100


@dataclass(frozen=True, slots=True)
class LoadOutcome:
    """A load process's run: per-line timings, and which transfers were accepted."""

    #: Per batch-file line: ``[node, scheduled, start, end, accepted]`` (monotonic seconds).
    batches: list[list[Any]]
    #: For each line, the indices of the transfers it carried.
    members: list[list[int]]
    #: Hashes of the transfers the nodes accepted.
    accepted: list[str]
    #: Indices of refused transfers, with the rule or reason.
    refused: dict[int, str]
    #: CPU seconds the load process used.
    load_cpu_seconds: float
    #: CPU seconds all validators used from the load's launch until every accepted transfer was final.
    validator_cpu_seconds: float

    @property
    def started(self) -> float:
        return min(float(batch[2]) for batch in self.batches)

    @property
    def finished(self) -> float:
        return max(float(batch[3]) for batch in self.batches)


async def run_process(arguments: Sequence[str], *, timeout_seconds: float) -> None:
    """Run ``python -m <arguments>`` in its own session; kill it if this task ends first."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", *arguments, start_new_session=True)
    try:
        code = await asyncio.wait_for(process.wait(), timeout=timeout_seconds)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if code != 0:
        raise RuntimeError(f"{arguments[0]} exited with status {code}")


@dataclass(frozen=True, slots=True)
class Window:
    """The stretch of blocks a sustained rate is measured over."""

    #: Transactions in the blocks after the opening block, up to and including the closing one.
    transactions: int
    #: From the opening block's sighting to the closing block's.
    seconds: float
    #: Blocks counted.
    blocks: int

    @property
    def rate(self) -> float:
        return self.transactions / self.seconds if self.seconds > 0 else 0.0


def sustained_window(
    blocks: Sequence[SeenBlock], *, warmup: int, min_window: int, load_finished: float
) -> Window | None:
    """The window of a max-load phase's non-empty blocks, or None if too short.

    It opens at the block that completes the warm-up and closes at the last
    block seen while the load process was still submitting. Blocks after that
    are left out: they carry transactions admitted (and verified) earlier, so
    the drain would flatter the rate, even past the verification ceiling.
    A window of fewer than ``min_window`` transactions or ``MIN_WINDOW_BLOCKS``
    blocks is None: a rate between the sightings of one or two large blocks says
    more about where they fell than about the network.
    """
    cumulative = 0
    opening = len(blocks)
    for index, block in enumerate(blocks):
        cumulative += block.transactions
        if cumulative >= warmup:
            opening = index
            break
    closing = max((index for index, block in enumerate(blocks) if block.seen <= load_finished), default=-1)
    if closing <= opening:
        return None
    transactions = sum(block.transactions for block in blocks[opening + 1 : closing + 1])
    if transactions < min_window or closing - opening < MIN_WINDOW_BLOCKS:
        return None
    return Window(transactions, blocks[closing].seen - blocks[opening].seen, closing - opening)


class NetworkBench:
    """A running network of validators, its watcher and its funded accounts."""

    def __init__(
        self,
        validators: ValidatorProcesses,
        rpc: Rpc,
        workdir: Path,
        *,
        accounts: int,
        poll_interval: float,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        self.validators = validators
        self.stall_seconds = stall_seconds
        self.rpc = rpc
        self.workdir = workdir
        self.workload = Workload(chain_id=validators.chain_id, accounts=accounts, nodes=validators.count)
        self.watcher = FinalityWatcher(rpc, validators.urls[0], poll_interval=poll_interval)
        self.refused: Counter[str] = Counter()
        self._loads = 0
        #: Transactions that readied the mixed workload (0 until ``mixed_load`` first runs).
        self.mixed_setup_transactions = 0

    async def start(self) -> None:
        """Start the validators and the watcher, and fund the accounts."""
        await self.validators.start_all(self.rpc)
        await self.watcher.start()
        amount_each = DEFAULT_TREASURY_AMOUNT * 9 // 10 // len(self.workload.keys)
        for round_transfers in self.workload.funding_rounds(self.validators.treasury, amount_each=amount_each):
            await self.submit_and_finalize(round_transfers, rate=None, batch_size=MAX_BATCH, connections=1)
        self.watcher.forget()

    async def stop(self) -> None:
        await self.watcher.stop()
        self.validators.close()

    async def view(self) -> int:
        status = await self.rpc.call(self.validators.urls[0], "chain_status")
        return int(status["view"])

    # --- the load --------------------------------------------------------------------

    async def submit_and_finalize(
        self, transfers: Sequence[SignedTransaction], *, rate: float | None, batch_size: int, connections: int
    ) -> LoadOutcome:
        """Submit through a load process, then wait until every accepted transfer is seen final.

        The watcher only notes heights while the load runs, and fetches the blocks afterwards.
        """
        self._loads += 1
        batch_path = self.workdir / f"load-{self._loads}.tsv"
        output = self.workdir / f"load-{self._loads}.json"
        batch_file = write_batch_file(batch_path, transfers, nodes=self.validators.count, batch_size=batch_size)
        self.watcher.track(transfer.hash for transfer in transfers)
        arguments = ["mura.bench.load", "--input", str(batch_path), "--output", str(output)]
        arguments += [f"--url={url}" for url in self.validators.urls] + ["--connections", str(connections)]
        if rate is not None:
            arguments += ["--rate", str(rate)]
        cpu_before = self.validators.cpu_seconds()
        self.watcher.hold_fetching(True)
        try:
            await run_process(arguments, timeout_seconds=3600)
        finally:
            self.watcher.hold_fetching(False)
        record = json.loads(output.read_text())
        batch_path.unlink()
        output.unlink()
        refused = {int(index): str(reason) for index, _code, reason in record["refused"]}
        self.refused.update(refused.values())
        accepted = [transfer.hash for index, transfer in enumerate(transfers) if index not in refused]
        try:
            await self.watcher.wait_final(accepted, stall_seconds=self.stall_seconds)
        except LostTransactions as lost:
            if not refused:
                raise
            rules = Counter(refused.values()).most_common()
            raise LostTransactions(
                f"{lost}; {len(refused)} of {len(transfers)} were refused ({rules}), and a refused nonce "
                "leaves its sender's later ones waiting for ever"
            ) from None
        validator_cpu = self.validators.cpu_seconds() - cpu_before
        return LoadOutcome(
            record["batches"], batch_file.members, accepted, refused, record["cpu_seconds"], validator_cpu
        )

    def phase_blocks(self, outcome: LoadOutcome) -> list[SeenBlock]:
        """The blocks seen from the load's start until its last transaction was seen final."""
        last = max(self.watcher.seen_at[transaction_hash] for transaction_hash in outcome.accepted)
        return [block for block in self.watcher.blocks if outcome.started <= block.seen <= last]

    # --- the phases ------------------------------------------------------------------

    async def max_load(
        self, count: int, *, warmup: int, min_window: int, batch_size: int, connections: int
    ) -> dict[str, Any]:
        """Sustained final tx/s of transfers of the testnet's coin while a closed-loop load
        keeps the nodes busy (see ``measure_max_load``)."""
        return await self.measure_max_load(
            self.workload.sign_transfers(count), warmup=warmup, min_window=min_window, batch_size=batch_size,
            connections=connections,
        )

    async def mixed_load(
        self, count: int, *, warmup: int, min_window: int, batch_size: int, connections: int
    ) -> dict[str, Any]:
        """Like ``max_load``, with transfers in three assets in turn: the coin, the bank's
        yen token and a restricted asset whose holders are all approved (see
        ``Workload.mixed_setup``; readied first, outside the measurement)."""
        if not self.mixed_setup_transactions:
            yen_each = DEFAULT_BANK_AMOUNT * 9 // 10 // len(self.workload.keys)
            rounds = self.workload.mixed_setup(self.validators.treasury, self.validators.bank, yen_each=yen_each)
            for round_transactions in rounds:
                await self.submit_and_finalize(round_transactions, rate=None, batch_size=FAN_OUT, connections=1)
                self.mixed_setup_transactions += len(round_transactions)
            self.watcher.forget()
        transfers = self.workload.sign_transfers(count, assets=MIXED_ASSETS)
        figures = await self.measure_max_load(
            transfers, warmup=warmup, min_window=min_window, batch_size=batch_size, connections=connections
        )
        return {"assets": list(MIXED_ASSETS), "setup_transactions": self.mixed_setup_transactions, **figures}

    async def measure_max_load(
        self, transfers: Sequence[SignedTransaction], *, warmup: int, min_window: int, batch_size: int,
        connections: int,
    ) -> dict[str, Any]:
        """Sustained final tx/s while a closed-loop load of ``transfers`` keeps the nodes busy
        (see ``sustained_window``).

        When the window under load is too short, the figure is the whole phase's:
        every accepted transaction over the time from the first submission to the last final.
        """
        count = len(transfers)
        view_before = await self.view()
        outcome = await self.submit_and_finalize(transfers, rate=None, batch_size=batch_size, connections=connections)
        blocks = [block for block in self.phase_blocks(outcome) if block.transactions]
        last_final = blocks[-1].seen if blocks else outcome.finished
        all_final_rate = len(outcome.accepted) / max(1e-9, last_final - outcome.started)
        window = sustained_window(blocks, warmup=warmup, min_window=min_window, load_finished=outcome.finished)
        kind = "under load"
        if window is None:  # too few blocks under load: the whole phase, first submission to last final
            window, kind = Window(len(outcome.accepted), last_final - outcome.started, len(blocks)), "whole phase"
        self.watcher.forget()
        return {
            "transactions": count,
            "accepted": len(outcome.accepted),
            "refused": len(outcome.refused),
            "final_tx_per_second": window.rate,
            "window_kind": kind,
            "window_transactions": window.transactions,
            "window_seconds": window.seconds,
            "window_blocks": window.blocks,
            "warmup_transactions": warmup,
            "offered_tx_per_second": len(outcome.accepted) / max(1e-9, outcome.finished - outcome.started),
            "submit_seconds": outcome.finished - outcome.started,
            "all_final_tx_per_second": all_final_rate,
            "blocks": len(blocks),
            "largest_block": max((block.transactions for block in blocks), default=0),
            "view_changes": await self.view() - view_before,
            "validator_cpu_ms_per_transaction": outcome.validator_cpu_seconds * 1000 / self.validators.count / count,
            "load_process_cpu_seconds": outcome.load_cpu_seconds,
            "machine_busy_share": (outcome.validator_cpu_seconds + outcome.load_cpu_seconds)
            / (os.cpu_count() or 1) / max(1e-9, last_final - outcome.started),
        }

    async def latency(self, *, rate: float, seconds: float, batch_size: int, connections: int) -> dict[str, Any]:
        """Finality latency at a fixed offered rate: submit call start to first seen final."""
        transfers = self.workload.sign_transfers(int(rate * seconds))
        view_before = await self.view()
        outcome = await self.submit_and_finalize(transfers, rate=rate, batch_size=batch_size, connections=connections)
        latencies = []
        for batch, members in zip(outcome.batches, outcome.members, strict=False):
            latencies += [
                self.watcher.seen_at[transfers[index].hash] - batch[2]
                for index in members
                if index not in outcome.refused
            ]
        latencies.sort()
        starts = sorted(batch[2] for batch in outcome.batches)
        offered_seconds = starts[-1] - starts[0] if len(starts) > 1 else 0.0
        last_count = len(outcome.members[-1]) if outcome.members else 0
        self.watcher.forget()
        return {
            "offered_tx_per_second_asked": rate,
            "offered_tx_per_second": (len(transfers) - last_count) / offered_seconds if offered_seconds else 0.0,
            "transactions": len(transfers),
            "refused": len(outcome.refused),
            "batch_size": batch_size,
            "p50_seconds": percentile(latencies, 0.50),
            "p95_seconds": percentile(latencies, 0.95),
            "p99_seconds": percentile(latencies, 0.99),
            "max_seconds": latencies[-1] if latencies else 0.0,
            "mean_seconds": sum(latencies) / len(latencies) if latencies else 0.0,
            "largest_pacing_lag_seconds": max(batch[2] - batch[1] for batch in outcome.batches),
            "polling_interval_seconds": self.watcher.poll_interval,
            "view_changes": await self.view() - view_before,
        }

    async def catch_up(self) -> dict[str, Any]:
        """Stop the last validator, wipe its data, restart it, and time its replay to the others' height."""
        index = self.validators.count - 1
        name = self.validators.names[index]
        self.validators.stop(index)
        self.validators.wipe(index)
        target = int((await self.rpc.call(self.validators.urls[0], "chain_status"))["height"])
        restarted = time.monotonic()
        self.validators.start(index)
        answering = await self.validators.wait_until(
            self.rpc, index, lambda status: True, "answer after a restart", timeout_seconds=60
        )
        ready = time.monotonic()
        await self.validators.wait_until(
            self.rpc, index, lambda status: status["height"] >= target, f"reach height {target}",
            timeout_seconds=1800, interval=0.02,
        )
        done = time.monotonic()
        while self.watcher.height < target:
            await asyncio.sleep(self.watcher.poll_interval)
        replayed = self.watcher.height_transactions(target)
        await self.validators.wait_until(
            self.rpc, index, lambda status: status["peers"] == self.validators.count - 1, "reconnect",
            timeout_seconds=60,
        )
        return {
            "validator": name,
            "height": target,
            "height_when_answering": int(answering["height"]),
            "transactions": replayed,
            "tx_per_second": replayed / (done - ready) if done > ready else 0.0,
            "seconds": done - ready,
            "startup_seconds": ready - restarted,
            "tx_per_second_including_startup": replayed / (done - restarted),
        }

    async def balance_queries(self, *, seconds: float, clients: int) -> dict[str, Any]:
        """``account_getBalance`` queries per second against validator 0, from a separate process."""
        addresses_path = self.workdir / "addresses.json"
        output = self.workdir / "queries.json"
        prefix = self.validators.address_prefix
        write_addresses(addresses_path, [encode_address(key.public_key, prefix) for key in self.workload.keys])
        arguments = ["mura.bench.queries", "--url", self.validators.urls[0], "--addresses", str(addresses_path)]
        arguments += ["--seconds", str(seconds), "--clients", str(clients), "--output", str(output)]
        await run_process(arguments, timeout_seconds=seconds + 60)
        figures: dict[str, Any] = json.loads(output.read_text())
        return figures

    async def soak(
        self, *, target: int, chunk: int, deadline: float, batch_size: int, connections: int
    ) -> dict[str, Any]:
        """Maximum load in chunks until ``target`` transactions are final or the next chunk would pass ``deadline``."""
        started = time.monotonic()
        rate = 0.0
        trajectory: list[dict[str, float]] = []
        while self.watcher.total_transactions < target:
            size = min(chunk, target - self.watcher.total_transactions)
            if rate and time.monotonic() + size / rate + 5 > deadline:
                break
            if not rate and time.monotonic() > deadline:
                break
            chunk_start = time.monotonic()
            await self.submit_and_finalize(
                self.workload.sign_transfers(size), rate=None, batch_size=batch_size, connections=connections
            )
            rate = size / (time.monotonic() - chunk_start)
            self.watcher.forget()
            largest = max(memory.rss_mb for memory in self.validators.memory().values())
            trajectory.append({"transactions_final": self.watcher.total_transactions, "largest_rss_mb": largest})
        final = self.watcher.total_transactions
        return {
            "target_transactions": target,
            "transactions_final": final,
            "reached_target": final >= target,
            "seconds": time.monotonic() - started,
            "memory": self.memory(),
            "rss_trajectory": trajectory,
        }

    def memory(self) -> dict[str, dict[str, float]]:
        """Each validator's peak and current resident memory in MB, by name."""
        try:
            return {
                name: {"peak_rss_mb": m.peak_rss_mb, "rss_mb": m.rss_mb} for name, m in self.validators.memory().items()
            }
        except (OSError, KeyError) as error:
            raise NetworkFailure(f"cannot read validator memory: {error}") from None
