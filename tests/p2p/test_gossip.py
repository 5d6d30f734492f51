"""Tests for p2p/gossip.py: transactions submitted on one node reach its peers in batches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mura.chain.errors import DecodeError
from mura.p2p.gossip import TransactionGossip, decode_transaction_batch

from .conftest import Cluster, Node, wait_for


@pytest.fixture
async def pair(cluster: Cluster) -> tuple[Node, Node]:
    sender = await cluster.start("a", kinds=["transactions"])
    receiver = await cluster.start("b", peers="a", kinds=["transactions"])
    await wait_for(lambda: sender.network.connected_peers() == [receiver.public_key], "the link")
    return sender, receiver


@pytest.fixture
async def gossip(pair: tuple[Node, Node]) -> AsyncIterator[TransactionGossip]:
    gossip = TransactionGossip(pair[0].network, max_batch=500, flush_interval=0.05)
    await gossip.start()
    yield gossip
    await gossip.stop()


async def test_many_submissions_arrive_as_few_frames(pair: tuple[Node, Node], gossip: TransactionGossip) -> None:
    _, receiver = pair
    transactions = [b"tx-%d" % index for index in range(1200)]
    for transaction in transactions:
        assert gossip.submit(transaction)
    await wait_for(lambda: sum(map(len, receiver.payloads("transactions"))) == 1200, "every transaction")
    batches = receiver.payloads("transactions")
    assert [len(batch) for batch in batches] == [500, 500, 200]
    assert [transaction for batch in batches for transaction in batch] == transactions


async def test_a_trickle_is_held_and_sent_as_one_frame_once_the_batch_is_full(pair: tuple[Node, Node]) -> None:
    _, receiver = pair
    # A flush interval no run reaches, however slow the machine: only the full batch sends.
    gossip = TransactionGossip(pair[0].network, max_batch=10, flush_interval=3600)
    await gossip.start()
    try:
        for index in range(9):
            assert gossip.submit(b"tx-%d" % index)
            await asyncio.sleep(0)  # let the flusher run between submissions
        assert len(gossip) == 9, "a trickle must wait to be batched, not go out one by one"
        assert gossip.submit(b"tx-9")
        await wait_for(lambda: receiver.payloads("transactions") != [], "the batch")
        assert receiver.payloads("transactions") == [[b"tx-%d" % index for index in range(10)]]
        assert len(gossip) == 0
    finally:
        await gossip.stop()


async def test_a_partial_batch_goes_out_after_the_flush_interval_in_order(
    pair: tuple[Node, Node], gossip: TransactionGossip
) -> None:
    _, receiver = pair
    transactions = [b"tx-%d" % index for index in range(10)]
    for transaction in transactions:
        assert gossip.submit(transaction)
        await asyncio.sleep(0)
    # Ten never fill a batch of 500: only the flush interval sends them. How many frames
    # depends on how it falls between submissions; what arrives, and its order, does not.
    await wait_for(lambda: sum(map(len, receiver.payloads("transactions"))) >= 10, "every transaction")
    assert [transaction for batch in receiver.payloads("transactions") for transaction in batch] == transactions


async def test_batches_respect_the_byte_limit(pair: tuple[Node, Node]) -> None:
    _, receiver = pair
    gossip = TransactionGossip(pair[0].network, max_batch=500, max_batch_bytes=250)
    for index in range(5):
        gossip.submit(bytes([index]) * 100)
    await gossip.start()
    try:
        await wait_for(lambda: sum(map(len, receiver.payloads("transactions"))) == 5, "every transaction")
    finally:
        await gossip.stop()
    assert [len(batch) for batch in receiver.payloads("transactions")] == [2, 2, 1]


async def test_invalid_submission_when_the_queue_is_full(pair: tuple[Node, Node]) -> None:
    gossip = TransactionGossip(pair[0].network, max_pending=3)
    assert [gossip.submit(b"tx") for _ in range(4)] == [True, True, True, False]
    assert len(gossip) == 3


async def test_gossip_stop_is_idempotent_and_leaves_no_tasks(pair: tuple[Node, Node]) -> None:
    before = asyncio.all_tasks()
    gossip = TransactionGossip(pair[0].network)
    await gossip.start()
    gossip.submit(b"tx")
    await gossip.stop()
    await gossip.stop()
    assert asyncio.all_tasks() == before
    assert gossip.submit(b"late") is False
    with pytest.raises(RuntimeError):
        await gossip.start()


def test_decode_transaction_batch() -> None:
    assert decode_transaction_batch([b"a", b"bc"], max_batch=2, max_transaction_bytes=2) == [b"a", b"bc"]


@pytest.mark.parametrize("payload", [b"not a list", [b"a", b"b", b"c"], [b"a", "text"], [b"too long"]])
def test_invalid_transaction_batch(payload: Any) -> None:
    with pytest.raises(DecodeError):
        decode_transaction_batch(payload, max_batch=2, max_transaction_bytes=4)
