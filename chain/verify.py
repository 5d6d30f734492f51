"""Transaction signatures verified on every core, once per node.

Ed25519 verification is the node's hard ceiling: every validator checks every
transaction once. The cryptography library releases the GIL while it
verifies, so a thread per core multiplies the rate; ``SignatureVerifier``
splits a batch across a thread pool and records each success in the
``SignatureCache``, so the state transition never verifies it again.
Transactions handed to ``verify_async`` one at a time (each RPC request of a
batch, each gossip frame) in the same turn of the event loop are verified as
one batch, so single submissions also use every core.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mura.chain.keys import SignatureCache, verify_signature
from mura.chain.transaction import Transaction

#: Below this many, a batch is verified on the calling thread: handing work to the
#: pool costs more than it saves.
_SMALL_BATCH = 16


def _verify_chunk(transactions: Sequence[Transaction]) -> list[bool]:
    return [verify_signature(tx.sender, tx.signature, tx.signing_payload()) for tx in transactions]


@dataclass(slots=True)
class _Batch:
    """Transactions gathered during one turn of the event loop, and their verdict."""

    future: asyncio.Future[set[bytes]]
    transactions: list[Transaction] = field(default_factory=list)


class VerifierStopped(Exception):
    """The verifier was stopped; nothing more is verified off the event loop."""


class SignatureVerifier:
    """Verifies batches of transactions on a thread pool.

    It owns the tasks that hand batches to the pool: ``await stop()`` (in an event loop)
    cancels them, wakes their callers with ``VerifierStopped`` and lets the threads finish
    off the loop; ``close()`` is the same for code without a loop. Both are idempotent.
    """

    def __init__(self, cache: SignatureCache, *, threads: int | None = None) -> None:
        self.cache = cache
        self.threads = threads or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="verify")
        self._open_batch: _Batch | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False

    async def stop(self) -> None:
        """Cancel the batches in flight (their callers get ``VerifierStopped``), then stop
        the pool's threads without blocking the event loop."""
        if self._stopped:
            return
        self._stopped = True
        self._abandon_open_batch()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)

    def close(self) -> None:
        """Stop the pool's threads, for code without an event loop; idempotent."""
        self._stopped = True
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _abandon_open_batch(self) -> None:
        batch, self._open_batch = self._open_batch, None
        if batch is not None and not batch.future.done():
            batch.future.set_exception(VerifierStopped("the verifier was stopped"))

    def _unverified(self, transactions: Sequence[Transaction]) -> list[Transaction]:
        return [tx for tx in transactions if tx.hash not in self.cache]

    def _chunks(self, transactions: list[Transaction]) -> list[list[Transaction]]:
        size = -(-len(transactions) // self.threads)
        return [transactions[start : start + size] for start in range(0, len(transactions), size)]

    def _record(self, transactions: list[Transaction], results: list[bool]) -> set[bytes]:
        bad = set()
        for transaction, valid in zip(transactions, results, strict=True):
            if valid:
                self.cache.add(transaction.hash)
            else:
                bad.add(transaction.hash)
        return bad

    def verify(self, transactions: Sequence[Transaction]) -> set[bytes]:
        """Verify what the cache does not know yet; the hashes of those that fail."""
        pending = self._unverified(transactions)
        if len(pending) < _SMALL_BATCH:
            return self._record(pending, _verify_chunk(pending))
        chunks = self._chunks(pending)
        results = [valid for chunk in self._pool.map(_verify_chunk, chunks) for valid in chunk]
        return self._record(pending, results)

    async def verify_async(self, transactions: Sequence[Transaction]) -> set[bytes]:
        """As ``verify``, off the event loop, together with whatever else is submitted
        in the same turn of the loop; the hashes of those given here that fail."""
        pending = self._unverified(transactions)
        if not pending:
            return set()
        if self._stopped:
            raise VerifierStopped("the verifier was stopped")
        batch = self._open_batch
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self._open_batch = _Batch(loop.create_future())
            # Runs after the callbacks already queued: every caller of this turn joins.
            loop.call_soon(self._close_batch, batch)
        batch.transactions.extend(pending)
        bad = await asyncio.shield(batch.future)
        return {tx.hash for tx in pending if tx.hash in bad}

    def _close_batch(self, batch: _Batch) -> None:
        if self._open_batch is not batch:
            return  # abandoned by stop()
        self._open_batch = None
        task = asyncio.get_running_loop().create_task(self._verify_batch(batch), name="verify-batch")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _verify_batch(self, batch: _Batch) -> None:
        """Verify one batch on the pool; its callers learn the verdict, or why there is none
        (the task's own outcome is theirs: nobody awaits the task)."""
        loop = asyncio.get_running_loop()
        try:
            chunks = self._chunks(batch.transactions)
            futures = [loop.run_in_executor(self._pool, _verify_chunk, chunk) for chunk in chunks]
            results = [valid for chunk in await asyncio.gather(*futures) for valid in chunk]
            batch.future.set_result(self._record(batch.transactions, results))
        except asyncio.CancelledError:
            if not batch.future.done():
                batch.future.set_exception(VerifierStopped("the verifier was stopped"))
        except Exception as error:
            if not batch.future.done():
                batch.future.set_exception(error)
