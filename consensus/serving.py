"""Serving final blocks to validators that are behind, within a budget per peer.

A validator that is behind asks for final blocks from a height on
(``BlockRequest``), or shows it is behind by a VIEW-CHANGE for a height this
replica has already finalized (``ServeBlocks``). Answers are the stored bytes of
each block and its certificate, never decoded again, sent by the driver outside
the replica's path; this module decides how much each peer may have:

- an answer covers at most ``batch`` blocks and ``answer_bytes`` (at least one
  block, however large);
- the same request (peer and start height) is answered once per ``repeat_ms``:
  an honest replica asks again only after its retry interval;
- each peer has a token bucket of ``bytes_per_second``, holding at most
  ``burst_bytes``, from which every block read for it is paid (sent or not):
  once it is empty nothing more is read for that peer, and it asks again later.
  An honest replica catching up needs far less than the bucket allows; a faulty
  one asking for a new start height many times a second cannot make this node
  read and send more than that.

Refusals are counted, never penalized: an honest replica far behind may ask
faster than its share for a while.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingLimits:
    """How much of this node's effort one peer that is behind may have."""

    #: Most blocks in one answer.
    batch: int = 16
    #: Most block bytes in one answer (at least one block is always sent).
    answer_bytes: int = 16 * 1024 * 1024
    #: The same request is answered again only after this long.
    repeat_ms: int = 1_000
    #: Bytes per second each peer's bucket refills with.
    bytes_per_second: int = 8 * 1024 * 1024
    #: Most bytes a peer's bucket holds (two full answers).
    burst_bytes: int = 32 * 1024 * 1024

    def __post_init__(self) -> None:
        if min(self.batch, self.answer_bytes, self.repeat_ms, self.bytes_per_second, self.burst_bytes) < 1:
            raise ValueError("serving limits must be positive")


class _Bucket:
    """A token bucket of bytes."""

    __slots__ = ("tokens", "updated_ms")

    def __init__(self, tokens: float, updated_ms: int) -> None:
        self.tokens = tokens
        self.updated_ms = updated_ms


class BlockServer:
    """Which final blocks each peer that asks may have now."""

    def __init__(self, limits: ServingLimits = ServingLimits()) -> None:
        self.limits = limits
        self._buckets: dict[Hashable, _Bucket] = {}
        self._last_request: dict[Hashable, tuple[int, int]] = {}
        #: Requests and blocks refused, by reason (``repeated``, ``over_budget``, ``nothing_to_send``).
        self.refused: Counter[str] = Counter()
        #: Blocks and bytes sent.
        self.served_blocks = 0
        self.served_bytes = 0

    def heights(self, peer: Hashable, start: int, final_height: int, now_ms: int) -> range:
        """The heights to offer ``peer``, which asks from ``start`` on; empty when the
        request repeats one answered lately or there is nothing final to send."""
        if not 1 <= start <= final_height:
            self.refused["nothing_to_send"] += 1
            return range(0)
        last = self._last_request.get(peer)
        if last is not None and last[0] == start and now_ms - last[1] < self.limits.repeat_ms:
            self.refused["repeated"] += 1
            return range(0)
        self._last_request[peer] = (start, now_ms)
        return range(start, min(final_height, start + self.limits.batch - 1) + 1)

    def answer(
        self, peer: Hashable, start: int, final_height: int, now_ms: int, read: Callable[[int], bytes | None]
    ) -> Iterator[tuple[int, bytes]]:
        """The final blocks for ``peer``, which asks from ``start`` on, as (height, bytes):
        ``read(height)`` gives a stored block's message bytes (None: not stored), and is
        called only while the peer has budget; every block read is charged. The answer
        ends at the batch, the answer's size, the budget or the first block not stored."""
        sent = 0
        for height in self.heights(peer, start, final_height, now_ms):
            if not self.has_budget(peer, now_ms):
                return
            data = read(height)
            if data is None or not self.take(peer, len(data), sent_in_answer=sent, now_ms=now_ms):
                return
            sent += len(data)
            yield height, data

    def has_budget(self, peer: Hashable, now_ms: int) -> bool:
        """Whether ``peer`` may have anything now: checked before a block is even read, so
        that a peer over its budget costs no reading either."""
        if self._refill(peer, now_ms).tokens > 0:
            return True
        self.refused["over_budget"] += 1
        return False

    def take(self, peer: Hashable, size: int, *, sent_in_answer: int, now_ms: int) -> bool:
        """Whether a block of ``size`` bytes, read for ``peer``, may go as the next of an
        answer that already holds ``sent_in_answer`` bytes. Reading it spent the peer's
        budget whatever the answer (the budget may go below zero by one block, and the peer
        then waits for it to refill)."""
        bucket = self._refill(peer, now_ms)
        bucket.tokens -= size
        if sent_in_answer and sent_in_answer + size > self.limits.answer_bytes:
            return False
        self.served_blocks += 1
        self.served_bytes += size
        return True

    def _refill(self, peer: Hashable, now_ms: int) -> _Bucket:
        limits = self.limits
        bucket = self._buckets.get(peer)
        if bucket is None:
            bucket = self._buckets[peer] = _Bucket(float(limits.burst_bytes), now_ms)
        elapsed_ms = max(0, now_ms - bucket.updated_ms)
        bucket.tokens = min(float(limits.burst_bytes), bucket.tokens + elapsed_ms * limits.bytes_per_second / 1000)
        bucket.updated_ms = now_ms
        return bucket
