"""Finality seen from the outside: one node polled for new final blocks.

Every ``poll_interval`` seconds (by the monotonic clock) the watcher asks one
node for ``chain_status`` and notes, for each new height, the moment that
answer arrived. It then fetches the new blocks (``chain_getBlock`` with
transaction hashes, in JSON-RPC batches) and gives each block, and each
tracked transaction in it, the moment its height was first reported. A
transaction is therefore seen final at most one poll interval plus one round
trip after the node committed it: that is the latency resolution.

While a load runs, fetching can be held back (``hold_fetching``): decoding
whole blocks for the RPC costs the watched validator a noticeable share of its
CPU, and deferring it changes no recorded moment, only when they are read.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass

import aiohttp

from mura.bench.rpc import Rpc, RpcFailure

#: Blocks fetched per JSON-RPC batch (the node's default ``rpc.max_batch`` is 100).
FETCH_BATCH = 100
#: The watcher gives up when the node has not answered for this long.
UNREACHABLE_SECONDS = 30.0


class LostTransactions(Exception):
    """Accepted transactions that never became final."""


class WatcherFailed(Exception):
    """The watched node stopped answering."""


@dataclass(frozen=True, slots=True)
class SeenBlock:
    """A final block as the watcher first saw it."""

    height: int
    #: ``time.monotonic()`` when the watcher learned the block is final.
    seen: float
    #: Transactions in the block.
    transactions: int


class FinalityWatcher:
    """Records when blocks and tracked transactions are first seen final on one node."""

    def __init__(self, rpc: Rpc, url: str, *, poll_interval: float = 0.02) -> None:
        self.rpc = rpc
        self.url = url
        self.poll_interval = poll_interval
        #: The highest block fetched and recorded.
        self.height = 0
        #: The highest height the node has reported.
        self.reported_height = 0
        self.blocks: list[SeenBlock] = []
        #: When each reported height not yet fetched was first reported.
        self._reported_at: dict[int, float] = {}
        self._fetching = True
        #: Tracked transaction hash -> when first seen final.
        self.seen_at: dict[str, float] = {}
        self.total_transactions = 0
        self._tracked: set[str] = set()
        self._progress = asyncio.Event()
        self._failure: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Record every block already final (as seen now), then poll in the background."""
        status = await self.rpc.call(self.url, "chain_status")
        self._report(status["height"], time.monotonic())
        await self._fetch()
        self._task = asyncio.create_task(self._poll(), name="finality-watcher")

    async def stop(self) -> None:
        """Stop polling; idempotent."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def track(self, hashes: Iterable[str]) -> None:
        """Record the moment each of these transactions is seen final, from now on."""
        self._tracked.update(hashes)

    def hold_fetching(self, held: bool) -> None:
        """Only note new heights (``True``), or fetch and record their blocks again (``False``)."""
        self._fetching = not held

    def forget(self) -> None:
        """Stop tracking and drop the recorded moments, to keep memory flat over long runs."""
        self._tracked.clear()
        self.seen_at.clear()

    def height_transactions(self, height: int) -> int:
        """Transactions in all final blocks up to and including ``height`` that the watcher saw."""
        return sum(block.transactions for block in self.blocks if block.height <= height)

    async def _poll(self) -> None:
        next_poll = time.monotonic()
        last_answer = next_poll
        while True:
            next_poll += self.poll_interval
            try:
                status = await self.rpc.call(self.url, "chain_status")
                last_answer = time.monotonic()
                self._report(status["height"], last_answer)
                if self._fetching and self.height < self.reported_height:
                    await self._fetch()
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError, RpcFailure) as error:
                if time.monotonic() - last_answer > UNREACHABLE_SECONDS:
                    self._failure = WatcherFailed(f"{self.url} unanswered for {UNREACHABLE_SECONDS:.0f} s: {error}")
                    self._progress.set()
                    return
            delay = next_poll - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_poll = time.monotonic()  # behind: poll at once, and do not try to catch up

    def _report(self, height: int, seen: float) -> None:
        """Note the moment heights up to ``height`` were first reported final."""
        for new_height in range(self.reported_height + 1, height + 1):
            self._reported_at[new_height] = seen
        self.reported_height = max(self.reported_height, height)

    async def _fetch(self) -> None:
        """Fetch and record every reported block not yet recorded."""
        while self.height < self.reported_height:
            heights = range(self.height + 1, min(self.reported_height, self.height + FETCH_BATCH) + 1)
            answers = await self.rpc.batch(self.url, [("chain_getBlock", [h, False]) for h in heights])
            for answer in answers:
                if "error" in answer:
                    raise RpcFailure("chain_getBlock", answer["error"])
                self._record(answer["result"], self._reported_at.pop(self.height + 1))

    def _record(self, block: dict[str, object], seen: float) -> None:
        hashes = block["transactions"]
        assert isinstance(hashes, list) and isinstance(block["height"], int)
        assert block["height"] == self.height + 1, "the watcher records blocks in order"
        self.height = block["height"]
        self.blocks.append(SeenBlock(self.height, seen, len(hashes)))
        self.total_transactions += len(hashes)
        if self._tracked:
            for transaction_hash in hashes:
                if transaction_hash in self._tracked and transaction_hash not in self.seen_at:
                    self.seen_at[transaction_hash] = seen
        self._progress.set()

    async def wait_final(self, accepted: Collection[str], *, stall_seconds: float) -> None:
        """Return once every hash in ``accepted`` (all tracked) is seen final.

        Raises ``LostTransactions`` when none of the missing ones becomes final for ``stall_seconds``.
        """
        missing = [transaction_hash for transaction_hash in accepted if transaction_hash not in self.seen_at]
        last_progress = time.monotonic()
        while missing:
            if self._failure is not None:
                raise self._failure
            self._progress.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._progress.wait(), timeout=1.0)
            still = [transaction_hash for transaction_hash in missing if transaction_hash not in self.seen_at]
            if len(still) < len(missing):
                last_progress = time.monotonic()
            missing = still
            if missing and time.monotonic() - last_progress > stall_seconds:
                raise LostTransactions(
                    f"{len(missing)} of {len(accepted)} accepted transactions not final after "
                    f"{stall_seconds:.0f} s without progress, e.g. {', '.join(missing[:3])}"
                )
