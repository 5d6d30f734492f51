"""Catching up: fetching final blocks from peers.

A replica learns it is behind when a validator signs something for a later
height. It then asks a validator that is ahead with a ``BlockRequest`` for the
first height it lacks; the answer is a batch of up to ``batch`` ``FinalBlock``s,
each checked with ``verify_certificate`` and the state transition before it is
committed. Requests are pipelined: while one batch is being applied, the next
is already asked for, so a replica that is far behind never waits a round trip
between batches. What is requested and not answered within ``retry_ms`` is
asked for again, from another validator that is ahead. (Serving is the
driver's business, within a budget per peer: see ``serving.py``.)

How far behind a replica is comes from the height the validators are seen
working on. One faulty validator could claim any height, so the height the
replica reports is the (f+1)-th highest: at least one honest validator is there.
For the same reason a request goes first to a validator whose claim is no higher
than that: a faulty validator that signs votes for a far-off height is not the
one asked for blocks while others can answer.

``LaterHeights`` is what a replica keeps above its height: the signed messages
and final blocks held until their height comes (``buffer.py``), and the final
blocks it asks for (``CatchUp``). The replica tells it where it stands.
"""

from __future__ import annotations

from mura.consensus.actions import Action, Send
from mura.consensus.buffer import FutureBuffer, Held
from mura.consensus.config import ReplicaConfig
from mura.consensus.messages import BlockRequest, FinalBlock


class CatchUp:
    """What this replica has asked for, and when to answer a peer again."""

    def __init__(self, *, retry_ms: int, batch: int, faulty: int) -> None:
        self.retry_ms = retry_ms
        self.batch = batch
        self.faulty = faulty
        #: The highest height each other validator was seen working on.
        self.seen: dict[int, int] = {}
        # Heights below ``_requested_until`` were asked for at ``_requested_at``, of ``_asked``.
        self._requested_until = 0
        self._requested_at: int | None = None
        self._asked: int | None = None

    def forget_peers(self, *, faulty: int) -> None:
        """The validator set changed: who was seen where, by index, no longer holds."""
        self.seen.clear()
        self.faulty = faulty
        self._asked = None

    def note_ahead(self, peer: int, height: int) -> None:
        if height > self.seen.get(peer, 0):
            self.seen[peer] = height

    @property
    def highest_seen(self) -> int:
        """A height some honest validator works on: the (f+1)-th highest seen (0 if unknown)."""
        heights = sorted(self.seen.values(), reverse=True)
        return heights[self.faulty] if len(heights) > self.faulty else 0

    def next_request(self, missing_from: int, now_ms: int) -> tuple[int, int] | None:
        """The validator to ask and the height to ask it for, or None.

        ``missing_from`` is the first height at or above the replica's with no final
        block in hand. A new batch is asked for once the
        outstanding ones are half used; the same heights again after ``retry_ms``.
        """
        expired = self._requested_at is None or now_ms - self._requested_at >= self.retry_ms
        start = missing_from if expired else max(missing_from, self._requested_until)
        if not expired and self._requested_until - missing_from > self.batch // 2:
            return None
        peer = self._peer_ahead_of(start, avoid=self._asked if expired else None)
        if peer is None:
            return None
        self._requested_until = start + self.batch
        self._requested_at = now_ms
        self._asked = peer
        return peer, start

    def _peer_ahead_of(self, start: int, *, avoid: int | None) -> int | None:
        """A validator seen working above ``start`` (so it has ``start`` final), other
        than ``avoid`` when there is a choice: one whose claim f+1 validators corroborate
        (no higher than ``highest_seen``), the highest first; a claim nobody corroborates
        only when no corroborated validator is ahead."""
        corroborated = self.highest_seen
        ahead = [peer for peer, seen in self.seen.items() if seen > start]
        trusted = [peer for peer in ahead if self.seen[peer] <= corroborated]
        candidates = sorted(trusted or ahead, key=lambda peer: (-self.seen[peer], peer))
        others = [peer for peer in candidates if peer != avoid]
        if others:
            return others[0]
        return candidates[0] if candidates else None


class LaterHeights:
    """What one replica holds for the heights above its own, and fetches for them."""

    def __init__(self, config: ReplicaConfig, *, faulty: int) -> None:
        #: Signed messages are held this far above the replica's height.
        self.height_window = config.height_window
        #: Final blocks are taken this far ahead: two answers' worth, so one can be
        #: applied while the next is on its way.
        self.final_block_window = max(config.height_window, 2 * config.catch_up_batch)
        #: Signed messages and final blocks for later heights, bounded per sender.
        self.held = FutureBuffer(per_sender=config.held_per_sender, heights=self.final_block_window)
        #: What was asked for, of whom, and how far the validators are seen to be.
        self.catch_up = CatchUp(retry_ms=config.catch_up_retry_ms, batch=config.catch_up_batch, faulty=faulty)

    def validators_changed(self, *, faulty: int) -> None:
        self.catch_up.forget_peers(faulty=faulty)

    def hold(
        self, message: Held, origin: int | None, *, height: int, index: int | None, signer: int | None
    ) -> bool:
        """Keep a signed message for a height above ``height`` (the replica's, which is
        validator ``index``) if it is near enough, and note that its signer (validator
        ``signer`` of the replica's height; None if it is none) is ahead; False when it
        is too far ahead to keep."""
        kept = message.height <= height + self.height_window
        if kept:
            self.held.hold(message, origin)
        if signer is not None and signer != index:
            self.catch_up.note_ahead(signer, message.height)
        return kept

    def request(self, *, height: int, pending: bool, index: int | None, now_ms: int) -> list[Action]:
        """Behind the validators: ask for the first final blocks not in hand. ``height`` is
        the replica's, with its block being committed when ``pending``."""
        missing_from = height + 1 if pending else height
        while self.held.has_final_block(missing_from):
            missing_from += 1
        if missing_from >= height + self.final_block_window:
            return []
        request = self.catch_up.next_request(missing_from, now_ms)
        if request is None:
            return []
        peer, start = request
        return [Send(peer, BlockRequest(start, index))]

    def wants_final_block(self, final_height: int, *, height: int) -> bool:
        """Whether a final block at ``final_height`` is for the replica's ``height`` or near
        enough ahead, and not already held."""
        if final_height < height or final_height >= height + self.final_block_window:
            return False
        return final_height == height or not self.held.has_final_block(final_height)

    def take(self, height: int) -> FinalBlock | tuple[Held, int | None] | None:
        """What is held for ``height``, its final block first, then each message with who
        delivered it; None once nothing is left."""
        final = self.held.take_final_block(height)
        if final is not None:
            return final
        return self.held.take(height)
