"""Waiting for transactions to become final, without polling.

The node tells a ``FinalityWatch`` of every block it commits and of every
transaction its mempool drops; ``tx_wait`` parks one future per call on the
transaction's hash and is woken by either notice, or by its timeout. The
caller checks the store and the mempool's drops first and registers without
awaiting in between, and the node saves a block (or drops a transaction) and
notifies without awaiting in between, so on one event loop no commit or drop
can slip through unseen.

``close`` wakes every parked wait when the node stops, so shutting down
never waits on a wallet's timeout. How many calls may wait at once is the
RPC server's limit (``RpcLimits.max_waiting``), not the watch's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from mura.chain.block import Block
from mura.chain.drops import Dropped


@dataclass(frozen=True, slots=True)
class FinalLocation:
    """Where a final transaction sits in the chain."""

    #: Height of the block that holds it.
    height: int
    #: Its position in that block.
    index: int
    #: Hash of that block.
    block_hash: bytes


class WatchClosed(Exception):
    """The node is stopping; no transaction will become final here any more."""


#: What a wait ends with: where the transaction became final, or why it was dropped.
Outcome = FinalLocation | Dropped


class FinalityWatch:
    """Futures waiting for transaction hashes, resolved when a block holding them is
    committed or when the mempool drops them."""

    def __init__(self) -> None:
        self._waiters: dict[bytes, list[asyncio.Future[Outcome]]] = {}
        self._waiting = 0
        self._closed = False

    @property
    def waiting(self) -> int:
        """Calls waiting now."""
        return self._waiting

    def block_committed(self, block: Block) -> None:
        """Wake every call waiting for one of ``block``'s transactions."""
        if not self._waiters:
            return
        for index, transaction in enumerate(block.transactions):
            for future in self._waiters.pop(transaction.hash, ()):
                if not future.done():
                    future.set_result(FinalLocation(block.height, index, block.hash))

    def transactions_dropped(self, drops: Iterable[Dropped]) -> None:
        """Wake every call waiting for one of the dropped transactions, with why it was dropped."""
        if not self._waiters:
            return
        for dropped in drops:
            for future in self._waiters.pop(dropped.transaction_hash, ()):
                if not future.done():
                    future.set_result(dropped)

    async def wait(self, transaction_hash: bytes, timeout_seconds: float) -> Outcome | None:
        """Where the transaction became final, why this node dropped it, or None if
        ``timeout_seconds`` passed first.

        Call it only after checking that the transaction is neither final nor dropped,
        with no await in between. Raises ``WatchClosed`` once the node is stopping.
        """
        if self._closed:
            raise WatchClosed("the node is stopping")
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(transaction_hash, []).append(future)
        self._waiting += 1
        try:
            return await asyncio.wait_for(future, timeout_seconds)
        except TimeoutError:
            return None
        finally:
            self._waiting -= 1
            self._forget(transaction_hash, future)

    def _forget(self, transaction_hash: bytes, future: asyncio.Future[Outcome]) -> None:
        futures = self._waiters.get(transaction_hash)
        if futures is not None and future in futures:
            futures.remove(future)
            if not futures:
                del self._waiters[transaction_hash]

    def close(self) -> None:
        """Wake every waiting call with ``WatchClosed`` and refuse new ones; closing twice is harmless."""
        self._closed = True
        waiters, self._waiters = self._waiters, {}
        for futures in waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(WatchClosed("the node is stopping"))
