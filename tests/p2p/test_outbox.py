"""Tests for p2p/outbox.py: the bounded per-peer queue and its drop policy."""

from __future__ import annotations

import asyncio

import pytest

from mura.p2p.outbox import Outbox, OutboxOverflow


async def drain(outbox: Outbox) -> list[bytes]:
    frames = []
    while len(outbox):
        frame = await outbox.get()
        assert frame is not None
        frames.append(frame)
    return frames


async def test_outbox_keeps_order() -> None:
    outbox = Outbox(max_frames=10, max_bytes=100)
    for data in (b"1", b"2", b"3"):
        assert outbox.put(data, droppable=False) == 0
    assert await drain(outbox) == [b"1", b"2", b"3"]


async def test_outbox_drops_the_oldest_droppable_frames_when_full() -> None:
    outbox = Outbox(max_frames=3, max_bytes=100)
    outbox.put(b"vote", droppable=False)
    outbox.put(b"tx1", droppable=True)
    outbox.put(b"tx2", droppable=True)
    assert outbox.put(b"vote2", droppable=False) == 1
    assert await drain(outbox) == [b"vote", b"tx2", b"vote2"]


async def test_outbox_byte_limit_drops_as_many_as_needed() -> None:
    outbox = Outbox(max_frames=100, max_bytes=10)
    for data in (b"aaa", b"bbb", b"ccc"):
        outbox.put(data, droppable=True)
    assert outbox.put(b"dddddd", droppable=False) == 2
    assert await drain(outbox) == [b"ccc", b"dddddd"]


async def test_outbox_discards_a_new_droppable_frame_when_nothing_else_may_go() -> None:
    outbox = Outbox(max_frames=2, max_bytes=100)
    outbox.put(b"vote1", droppable=False)
    outbox.put(b"vote2", droppable=False)
    assert outbox.put(b"tx", droppable=True) == 1
    assert await drain(outbox) == [b"vote1", b"vote2"]


async def test_invalid_outbox_overflow_of_frames_that_may_not_be_dropped() -> None:
    outbox = Outbox(max_frames=2, max_bytes=100)
    outbox.put(b"vote1", droppable=False)
    outbox.put(b"tx", droppable=True)
    outbox.put(b"vote2", droppable=False)
    with pytest.raises(OutboxOverflow):
        outbox.put(b"vote3", droppable=False)


async def test_outbox_close_wakes_the_writer_and_discards() -> None:
    outbox = Outbox(max_frames=2, max_bytes=100)
    waiting = asyncio.ensure_future(outbox.get())
    await asyncio.sleep(0)
    outbox.close()
    assert await waiting is None
    assert outbox.put(b"late", droppable=False) == 1
    assert await outbox.get() is None
