"""A peer's bounded queue of encoded frames waiting to be written.

Queueing never waits, so one slow peer cannot stall a broadcast to the others,
and the queue is capped in frames and in bytes, so it cannot grow without
bound. When a frame does not fit:

1. the oldest queued *droppable* frames (e.g. transaction gossip, which the
   mempool and the next proposal make good for) are discarded to make room;
2. if that is not enough and the new frame is droppable, it is discarded;
3. otherwise the peer cannot keep up with frames that must not be lost
   (consensus messages): ``put`` raises ``OutboxOverflow`` and the caller
   disconnects the peer, which resynchronises when it comes back.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass


class OutboxOverflow(Exception):
    """The queue is full of frames that may not be dropped."""


@dataclass(frozen=True, slots=True)
class QueuedFrame:
    """An encoded frame and whether the queue may discard it under pressure."""

    #: The wire bytes.
    data: bytes
    #: True for frames whose loss the protocol tolerates.
    droppable: bool


class Outbox:
    """The frames queued for one peer, oldest first."""

    def __init__(self, *, max_frames: int, max_bytes: int) -> None:
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        self._frames: deque[QueuedFrame] = deque()
        self._bytes = 0
        self._closed = False
        self._ready = asyncio.Event()
        #: Whether the frame of the last ``put`` was queued (False: discarded, or closed).
        self.queued_last = False

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, data: bytes, *, droppable: bool) -> int:
        """Queue ``data``; returns how many frames were discarded to do so (the
        new one included). Raises ``OutboxOverflow`` as described above."""
        self.queued_last = False
        if self._closed:
            return 1
        size = len(data)
        dropped = 0
        if not self._fits(len(self._frames), self._bytes, size):
            if not self._room_after_dropping(size):
                if droppable:
                    return 1
                raise OutboxOverflow(
                    f"{len(self._frames)} frames ({self._bytes} bytes) are waiting and none may be dropped"
                )
            dropped = self._drop_oldest_droppable(size)
        self._frames.append(QueuedFrame(data, droppable))
        self._bytes += size
        self._ready.set()
        self.queued_last = True
        return dropped

    async def get(self) -> bytes | None:
        """The oldest queued frame, waiting for one; None once the outbox is closed."""
        while not self._frames and not self._closed:
            self._ready.clear()
            await self._ready.wait()
        if self._closed:
            return None
        frame = self._frames.popleft()
        self._bytes -= len(frame.data)
        return frame.data

    def take_all(self) -> list[QueuedFrame]:
        """Remove and return every queued frame, oldest first."""
        frames = list(self._frames)
        self._frames.clear()
        self._bytes = 0
        return frames

    def close(self) -> None:
        """Discard what is queued and wake the reader with None; idempotent."""
        self._closed = True
        self._frames.clear()
        self._bytes = 0
        self._ready.set()

    def _fits(self, frames: int, queued_bytes: int, size: int) -> bool:
        return frames < self._max_frames and queued_bytes + size <= self._max_bytes

    def _room_after_dropping(self, size: int) -> bool:
        """Would ``size`` more bytes fit once every droppable frame is gone?"""
        kept = [frame for frame in self._frames if not frame.droppable]
        return self._fits(len(kept), sum(len(frame.data) for frame in kept), size)

    def _drop_oldest_droppable(self, size: int) -> int:
        """Discard the oldest droppable frames until ``size`` more bytes fit."""
        kept: deque[QueuedFrame] = deque()
        count = len(self._frames)
        for frame in self._frames:
            if frame.droppable and not self._fits(count, self._bytes, size):
                count -= 1
                self._bytes -= len(frame.data)
            else:
                kept.append(frame)
        dropped = len(self._frames) - len(kept)
        self._frames = kept
        return dropped
