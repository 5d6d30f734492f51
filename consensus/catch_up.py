"""Catching up: fetching final blocks from peers, and serving them.

A replica learns it is behind when a validator signs something for a later
height (or a view change whose last final height is at least its own). It
then asks that validator with a ``BlockRequest`` for its next height; the
answer is a batch of ``FinalBlock``s, each checked with ``verify_certificate``
and the state transition before it is committed. Requests and answers are rate
limited per height and per peer, so a lying or repeating peer costs little.
"""

from __future__ import annotations


class CatchUpLimits:
    """When to ask for a height again, and when to answer a peer again."""

    def __init__(self, *, retry_ms: int) -> None:
        self.retry_ms = retry_ms
        self._last_request: tuple[int, int] | None = None
        self._last_served: dict[int, tuple[int, int]] = {}
        #: The highest height a validator was seen working on.
        self.highest_seen = 0
        #: The validator that was seen at ``highest_seen``.
        self.ahead_peer: int | None = None

    def note_ahead(self, peer: int, height: int) -> None:
        if height > self.highest_seen:
            self.highest_seen = height
            self.ahead_peer = peer

    def may_request(self, height: int, now_ms: int) -> bool:
        """One request per height per retry interval."""
        last = self._last_request
        if last is not None and last[0] == height and now_ms - last[1] < self.retry_ms:
            return False
        self._last_request = (height, now_ms)
        return True

    def may_serve(self, peer: int, height: int, now_ms: int) -> bool:
        """One answer per peer and height per retry interval."""
        last = self._last_served.get(peer)
        if last is not None and last[0] == height and now_ms - last[1] < self.retry_ms:
            return False
        self._last_served[peer] = (height, now_ms)
        return True
