"""FinalityWatch: calls waiting for a transaction wake when its block is committed or the
mempool drops it, time out, and are all woken when the node stops. (The RPC server bounds
how many wait.)"""

from __future__ import annotations

import asyncio

import pytest

from mura.chain.block import Block, Header
from mura.chain.drops import Dropped
from mura.chain.keys import SigningKey
from mura.chain.transaction import Transaction, Transfer, sign_transaction
from mura.rpc.finality import FinalityWatch, FinalLocation, WatchClosed

from .support import DEADLINE, wait_until

KEY = SigningKey.from_private_bytes(bytes(32))


def transfer(nonce: int) -> Transaction:
    return sign_transaction(KEY, chain_id="test", nonce=nonce, body=Transfer("NAC", bytes(32), 1))


def block(height: int, *transactions: Transaction) -> Block:
    header = Header("test", height, bytes(32), 0, bytes(32), bytes(32), bytes(32), bytes(32))
    return Block(header, transactions)


async def test_waiters_wake_with_the_location_of_their_transaction() -> None:
    watch = FinalityWatch()
    first, second = transfer(0), transfer(1)
    waits = [asyncio.create_task(watch.wait(first.hash, DEADLINE)) for _ in range(2)]
    other = asyncio.create_task(watch.wait(second.hash, DEADLINE))
    await wait_until(lambda: watch.waiting == 3, "three waits")
    committed = block(5, transfer(9), first)
    watch.block_committed(committed)
    assert await asyncio.gather(*waits) == [FinalLocation(5, 1, committed.hash)] * 2
    assert not other.done() and watch.waiting == 1
    watch.block_committed(block(6, second))
    assert await other == FinalLocation(6, 0, block(6, second).hash) and watch.waiting == 0


async def test_waiters_wake_with_why_their_transaction_was_dropped() -> None:
    watch = FinalityWatch()
    dropped, kept = transfer(0), transfer(1)
    waits = [asyncio.create_task(watch.wait(dropped.hash, DEADLINE)) for _ in range(2)]
    other = asyncio.create_task(watch.wait(kept.hash, DEADLINE))
    await wait_until(lambda: watch.waiting == 3, "three waits")
    reason = Dropped(dropped.hash, KEY.public_key, 0, "expired", "pending for 600 s without being included")
    watch.transactions_dropped([reason, Dropped(transfer(2).hash, KEY.public_key, 2, "expired", "")])
    assert await asyncio.gather(*waits) == [reason] * 2
    assert not other.done() and watch.waiting == 1
    watch.block_committed(block(1, kept))
    assert await other == FinalLocation(1, 0, block(1, kept).hash)


async def test_a_wait_that_times_out_returns_none_and_is_forgotten() -> None:
    watch = FinalityWatch()
    assert await watch.wait(transfer(0).hash, 0.01) is None
    assert watch.waiting == 0
    watch.block_committed(block(1, transfer(0)))


async def test_close_wakes_every_wait_and_refuses_new_ones() -> None:
    watch = FinalityWatch()
    held = asyncio.create_task(watch.wait(transfer(0).hash, DEADLINE))
    await wait_until(lambda: watch.waiting == 1, "the wait")
    watch.close()
    with pytest.raises(WatchClosed):
        await held
    with pytest.raises(WatchClosed):
        await watch.wait(transfer(0).hash, DEADLINE)
    watch.close()
    assert watch.waiting == 0
