"""Transaction gossip: transactions this node admitted, forwarded in batches.

The node calls ``submit`` with each transaction its mempool admitted from RPC.
A flusher task waits until something is pending, gives others ``flush_interval``
seconds to join (or less, once a batch is full), then broadcasts batches of up
to ``max_batch`` encoded transactions as one frame each. Validators form a full
mesh, so a transaction received by gossip is not gossiped again.

Pending transactions are bounded: ``submit`` refuses when ``max_pending`` are
waiting. Gossip frames are droppable under queue pressure (see
``mura.p2p.outbox``), so a primary may lack a transaction that other mempools
hold, and with it every later nonce of that sender. ``StalledRuns`` finds such
senders (their next transaction stays pending while blocks are made without
it) and the node gossips their ready run again, from every mempool that holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from mura.chain import codec
from mura.chain.mempool import Mempool
from mura.chain.state import StateReader
from mura.chain.transaction import MAX_TRANSACTION_BYTES, Transaction
from mura.p2p.network import Network

log = logging.getLogger(__name__)

#: The frame kind of gossip; ``NetworkLimits.droppable_kinds`` names it by default.
DEFAULT_KIND = "transactions"
DEFAULT_MAX_BATCH = 500


def decode_transaction_batch(
    payload: Any, *, max_batch: int = DEFAULT_MAX_BATCH, max_transaction_bytes: int = MAX_TRANSACTION_BYTES
) -> list[bytes]:
    """The encoded transactions of a gossip frame's payload; a ``DecodeError`` otherwise.

    For the receiving handler, which then decodes and verifies each one. Only
    malformed input should escape the handler as ``Invalid`` (it counts towards
    a ban); a well-formed transaction the mempool refuses (a duplicate, a nonce
    already used, a full mempool) is normal in gossip and must be swallowed, or
    honest peers get banned.
    """
    items = codec.read_list(payload, "transactions", max_length=max_batch)
    return [
        codec.read_bytes(item, f"transactions[{index}]", max_length=max_transaction_bytes)
        for index, item in enumerate(items)
    ]


class StalledRuns:
    """Senders whose next pending transaction stays behind while blocks go by.

    ``due`` is called periodically with the time and the final height. A sender's
    ready run is stalled when it starts with the same transaction as ``after``
    seconds ago although at least ``min_blocks`` blocks became final meanwhile:
    most likely the primaries never got that transaction. (While no block is made,
    gossiping again would not help and would only add to the load.) A stalled run
    (up to ``max_run``) is due to be gossiped again, and again each time the same
    condition holds anew; at most ``max_transactions`` per call, longest stalled first.
    """

    def __init__(self, *, after: float, min_blocks: int = 2, max_run: int = 64, max_transactions: int = 2_000) -> None:
        self.after = after
        self.min_blocks = min_blocks
        self.max_run = max_run
        self.max_transactions = max_transactions
        # Per sender: the first transaction of its ready run, and the time and height since it is.
        self._heads: dict[bytes, tuple[bytes, float, int]] = {}
        #: Transactions handed out for gossiping again.
        self.rebroadcast = 0

    def due(self, mempool: Mempool, state: StateReader, now: float, height: int) -> list[Transaction]:
        heads: dict[bytes, tuple[bytes, float, int]] = {}
        stalled: list[tuple[float, list[Transaction]]] = []
        for run in mempool.ready_runs(state, max_run=self.max_run):
            head = run[0]
            seen = self._heads.get(head.sender)
            since, since_height = (seen[1], seen[2]) if seen is not None and seen[0] == head.hash else (now, height)
            if now - since >= self.after and height - since_height >= self.min_blocks:
                stalled.append((since, run))
            heads[head.sender] = (head.hash, since, since_height)
        stalled.sort(key=lambda item: item[0])
        chosen: list[Transaction] = []
        for _, run in stalled:
            if len(chosen) + len(run) > self.max_transactions:
                break
            chosen += run
            heads[run[0].sender] = (run[0].hash, now, height)
        self._heads = heads
        self.rebroadcast += len(chosen)
        return chosen


class TransactionGossip:
    """Batches submitted transactions and broadcasts them to every peer."""

    def __init__(
        self,
        network: Network,
        *,
        kind: str = DEFAULT_KIND,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_batch_bytes: int = 1024 * 1024,
        flush_interval: float = 0.05,
        max_pending: int = 20_000,
    ) -> None:
        self._network = network
        self._kind = kind
        self._max_batch = max_batch
        self._max_batch_bytes = max_batch_bytes
        self._flush_interval = flush_interval
        self._max_pending = max_pending
        self._pending: deque[bytes] = deque()
        self._has_pending = asyncio.Event()
        self._batch_full = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._stopped = False

    def __len__(self) -> int:
        return len(self._pending)

    def submit(self, encoded_transaction: bytes) -> bool:
        """Queue one encoded transaction; False when the queue is full (it is then not gossiped)."""
        if self._stopped or len(self._pending) >= self._max_pending:
            return False
        self._pending.append(encoded_transaction)
        self._has_pending.set()
        if len(self._pending) >= self._max_batch:
            self._batch_full.set()
        return True

    async def start(self) -> None:
        if self._flusher is not None or self._stopped:
            raise RuntimeError("transaction gossip can be started once")
        self._flusher = asyncio.create_task(self._flush_loop(), name="p2p-gossip-flusher")

    async def stop(self) -> None:
        """Cancel the flusher; what is still pending is dropped. Idempotent."""
        self._stopped = True
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        self._pending.clear()

    async def _flush_loop(self) -> None:
        while True:
            await self._has_pending.wait()
            if len(self._pending) < self._max_batch:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._flush_interval):
                        await self._batch_full.wait()
            while self._pending:
                await self._send(self._take_batch())
            self._has_pending.clear()
            self._batch_full.clear()

    def _take_batch(self) -> list[bytes]:
        batch: list[bytes] = []
        size = 0
        while self._pending and len(batch) < self._max_batch:
            if batch and size + len(self._pending[0]) > self._max_batch_bytes:
                break
            transaction = self._pending.popleft()
            batch.append(transaction)
            size += len(transaction)
        return batch

    async def _send(self, batch: list[bytes]) -> None:
        try:
            self._network.broadcast(self._kind, batch)
        except Exception:
            log.exception("gossiping a batch of %d transactions failed", len(batch))
