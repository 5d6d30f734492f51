"""What the nodes say while faults come and go: heights, views and peers of every
node over time, and every final block with the transactions in it.

Each node is polled for ``chain_status`` every ``interval`` seconds (by the
monotonic clock); a rise of its height, a change of view or of its peer count
is recorded with the moment the answer arrived. Each height is fetched once
(``chain_getBlock``) from the first node that reported it, which tells the
traffic when its transactions were first seen final, and every placement a
node reports (a block listing a transaction, or ``chain_getTransaction`` for a
sample of them, asked of another node) is kept, so that the end of a run can
check that no node ever reported a transaction final where it is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from mura.bench.rpc import Rpc, RpcFailure

#: Errors a poll may meet while a node is busy or going away; the poll goes on.
POLL_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError, RpcFailure)
#: One in this many final transactions is also asked of another node with ``chain_getTransaction``.
SAMPLE_EVERY = 20
#: Seconds between ``mempool_status`` polls of a node.
MEMPOOL_INTERVAL = 1.0


@dataclass(slots=True)
class NodeTimeline:
    """What polling one node saw, as ``(monotonic seconds, value)`` at each change."""

    #: The node's final height each time it rose.
    heights: list[tuple[float, int]] = field(default_factory=list)
    #: Its view each time it changed.
    views: list[tuple[float, int]] = field(default_factory=list)
    #: Its count of connected peers each time it changed.
    peers: list[tuple[float, int]] = field(default_factory=list)
    #: Transactions in its mempool, about once a second.
    mempool: list[tuple[float, int]] = field(default_factory=list)
    #: Polls that failed (no answer within the client's timeout, or an error).
    failed_polls: int = 0

    @property
    def height(self) -> int:
        return self.heights[-1][1] if self.heights else 0

    @property
    def view(self) -> int:
        return self.views[-1][1] if self.views else 0

    def height_at(self, moment: float) -> int:
        """The last height seen at or before ``moment``."""
        height = 0
        for seen, value in self.heights:
            if seen > moment:
                break
            height = value
        return height

    def view_at(self, moment: float) -> int:
        """The last view seen at or before ``moment``."""
        view = 0
        for seen, value in self.views:
            if seen > moment:
                break
            view = value
        return view

    def reached(self, height: int, *, after: float = 0.0) -> float | None:
        """When this node was first seen at ``height`` or above, if it was, no earlier than ``after``."""
        for seen, value in self.heights:
            if value >= height and seen >= after:
                return seen
        return None


@dataclass(frozen=True, slots=True)
class SeenBlock:
    """A final block as first reported."""

    height: int
    #: ``time.monotonic()`` when a node first reported the height final.
    seen: float
    #: The node that reported it first (and served it).
    node: int
    block_hash: str
    #: The proposer's clock, as the header has it.
    timestamp_ms: int
    #: ``time.time()`` in milliseconds when the block was fetched, to compare with ``timestamp_ms``.
    fetched_wall_ms: int
    proposer: str | None
    transactions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Placement:
    """A node's statement that a transaction is final at a place in the chain."""

    transaction: str
    node: int
    height: int
    block_hash: str
    index: int
    #: ``chain_getBlock`` or ``chain_getTransaction``.
    via: str


class Observer:
    """Polls every node; ``start()`` it, ``stop()`` it once done."""

    def __init__(
        self,
        rpc: Rpc,
        urls: Sequence[str],
        *,
        interval: float = 0.05,
        on_final: Callable[[str, float, int], None] | None = None,
        seed: int = 0,
    ) -> None:
        self.rpc = rpc
        self.urls = list(urls)
        self.interval = interval
        self.timelines = [NodeTimeline() for _ in urls]
        self.blocks: dict[int, SeenBlock] = {}
        self.placements: list[Placement] = []
        self._on_final = on_final
        self._random = random.Random(seed)
        self._reported: dict[int, tuple[int, float]] = {}
        self._fetch_wanted = asyncio.Event()
        self._progress = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._samples: set[asyncio.Task[None]] = set()
        self._final_count = 0

    async def start(self) -> None:
        if self._tasks:
            return
        count = len(self.urls)
        self._tasks = [asyncio.create_task(self._poll(index), name=f"poll-{index}") for index in range(count)]
        self._tasks += [
            asyncio.create_task(self._poll_mempool(index), name=f"mempool-{index}") for index in range(count)
        ]
        self._tasks.append(asyncio.create_task(self._fetch_blocks(), name="fetch-blocks"))

    async def stop(self) -> None:
        """Stop polling and fetching; idempotent."""
        tasks, self._tasks = self._tasks + list(self._samples), []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- what the campaign asks ----------------------------------------------------------

    def heights(self) -> list[int]:
        self._raise_failure()
        return [timeline.height for timeline in self.timelines]

    def _raise_failure(self) -> None:
        """A polling or fetching task that died of a bug must not leave the figures silently empty."""
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"the observer's {task.get_name()} failed") from task.exception()

    def primary(self) -> int:
        """The primary of the view most nodes are in (ties: the highest such view)."""
        views = [timeline.view for timeline in self.timelines]
        view = max(views, key=lambda candidate: (views.count(candidate), candidate))
        return view % len(self.urls)

    async def wait_until(self, condition: Callable[[], bool], *, timeout: float) -> bool:
        """True once ``condition()`` holds after some poll, False at the deadline."""
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 1.0)):
                    await self._progress.wait()
        return True

    # --- polling -------------------------------------------------------------------------

    async def _poll(self, index: int) -> None:
        timeline = self.timelines[index]
        next_poll = time.monotonic()
        while True:
            try:
                status = await self.rpc.call(self.urls[index], "chain_status")
            except POLL_ERRORS:
                timeline.failed_polls += 1
            else:
                self._record(index, timeline, status, time.monotonic())
            next_poll += self.interval
            delay = next_poll - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_poll = time.monotonic()

    async def _poll_mempool(self, index: int) -> None:
        while True:
            with contextlib.suppress(*POLL_ERRORS):
                status = await self.rpc.call(self.urls[index], "mempool_status")
                self.timelines[index].mempool.append((time.monotonic(), int(status["transactions"])))
            await asyncio.sleep(MEMPOOL_INTERVAL)

    def dump(self, path: Path) -> None:
        """Every node's series with wall-clock times (``time.time()``), one JSON object per node."""
        offset = time.time() - time.monotonic()
        with open(path, "w") as file:
            for index, timeline in enumerate(self.timelines):
                series = {
                    name: [[round(moment + offset, 3), value] for moment, value in getattr(timeline, name)]
                    for name in ("heights", "views", "peers", "mempool")
                }
                file.write(json.dumps({"node": index, **series}) + "\n")

    def _record(self, index: int, timeline: NodeTimeline, status: dict[str, object], moment: float) -> None:
        height, view, peers = status["height"], status["view"], status["peers"]
        assert isinstance(height, int) and isinstance(view, int) and isinstance(peers, int)
        if height > timeline.height:
            timeline.heights.append((moment, height))
            for new_height in range(max(self._reported, default=0) + 1, height + 1):
                self._reported[new_height] = (index, moment)
            self._fetch_wanted.set()
        for series, value in ((timeline.views, view), (timeline.peers, peers)):
            if not series or series[-1][1] != value:
                series.append((moment, value))
        self._progress.set()

    # --- blocks --------------------------------------------------------------------------

    async def _fetch_blocks(self) -> None:
        """Fetch every reported height once, in order, from the node that reported it first."""
        next_height = 1
        while True:
            if next_height not in self._reported:
                self._fetch_wanted.clear()
                await self._fetch_wanted.wait()
                continue
            node, seen = self._reported[next_height]
            try:
                block = await self.rpc.call(self.urls[node], "chain_getBlock", next_height, False)
            except POLL_ERRORS:
                await asyncio.sleep(self.interval)
                continue
            self._record_block(node, seen, block)
            next_height += 1

    def _record_block(self, node: int, seen: float, block: dict[str, object]) -> None:
        hashes = block["transactions"]
        assert isinstance(hashes, list)
        seen_block = SeenBlock(
            height=int(block["height"]),  # type: ignore[call-overload]
            seen=seen,
            node=node,
            block_hash=str(block["hash"]),
            timestamp_ms=int(block["timestamp_ms"]),  # type: ignore[call-overload]
            fetched_wall_ms=time.time_ns() // 1_000_000,
            proposer=block["proposer"] if isinstance(block["proposer"], str) else None,
            transactions=tuple(hashes),
        )
        self.blocks[seen_block.height] = seen_block
        for position, transaction in enumerate(hashes):
            self.placements.append(
                Placement(transaction, node, seen_block.height, seen_block.block_hash, position, "chain_getBlock")
            )
            if self._on_final is not None:
                self._on_final(transaction, seen, seen_block.height)
            self._final_count += 1
            if self._final_count % SAMPLE_EVERY == 0:
                sample = asyncio.create_task(self._ask_elsewhere(transaction, seen_block.height, node))
                self._samples.add(sample)
                sample.add_done_callback(self._samples.discard)

    async def _ask_elsewhere(self, transaction: str, height: int, reporter: int) -> None:
        """Ask another node that has the height where it puts the transaction."""
        others = [
            index for index, timeline in enumerate(self.timelines) if index != reporter and timeline.height >= height
        ]
        if not others:
            return
        node = self._random.choice(others)
        try:
            found = await self.rpc.call(self.urls[node], "chain_getTransaction", transaction)
        except POLL_ERRORS:
            return
        self.placements.append(
            Placement(
                transaction, node, found["block_height"], found["block_hash"], found["index"], "chain_getTransaction"
            )
        )
