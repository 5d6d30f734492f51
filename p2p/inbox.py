"""Admission of peers' consensus messages into the node's queue for the replica.

Every message a peer sends costs the node a place in the queue until the replica
takes it. So that one validator cannot crowd out the others or fill memory:

- the queue holds at most ``max_messages`` in all, and each peer at most
  ``max_per_peer`` messages and ``max_bytes_per_peer`` bytes of them;
- the same bytes arriving again within ``repeat_seconds`` (the copies relaying
  brings from several peers) are dropped before they are decoded or queued.

What does not fit is dropped and counted; the protocol's timers, retransmissions
and catch-up recover it.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass

from mura.chain.keys import sha256


@dataclass(frozen=True, slots=True, kw_only=True)
class InboxLimits:
    """Bounds of the queue of peers' messages waiting for the replica."""

    #: Most messages queued from all peers.
    max_messages: int = 20_000
    #: Most messages queued from one peer.
    max_per_peer: int = 4_096
    #: Most bytes of messages queued from one peer (a few of the largest blocks).
    max_bytes_per_peer: int = 64 * 1024 * 1024
    #: Identical bytes within this long are taken once.
    repeat_seconds: float = 2.0
    #: Most recent message digests remembered for that.
    remembered: int = 65_536


class ConsensusInbox:
    """Counts what each peer has queued and remembers what was taken lately."""

    def __init__(self, limits: InboxLimits = InboxLimits()) -> None:
        self.limits = limits
        self._messages = 0
        self._counts: Counter[bytes] = Counter()
        self._bytes: Counter[bytes] = Counter()
        self._recent: OrderedDict[bytes, float] = OrderedDict()
        #: Messages dropped, by reason (``repeated``, ``full``).
        self.dropped: Counter[str] = Counter()

    def __len__(self) -> int:
        return self._messages

    def queued_by(self, peer: bytes) -> tuple[int, int]:
        """Messages and bytes ``peer`` has queued."""
        return self._counts[peer], self._bytes[peer]

    def repeated(self, data: bytes, now: float) -> bytes | None:
        """None when these bytes were taken within ``repeat_seconds`` (drop them); else their
        digest, for ``remember`` once they are admitted. Cheap: one hash, before decoding."""
        digest = sha256(data)
        taken = self._recent.get(digest)
        if taken is not None and now - taken < self.limits.repeat_seconds:
            self.dropped["repeated"] += 1
            return None
        return digest

    def remember(self, digest: bytes, now: float) -> None:
        """The message with this digest was admitted: copies within ``repeat_seconds`` are
        repeats. (Only admitted ones: a copy dropped because its deliverer's share was full
        must not make the next copy, from another peer, pass for a repeat.)"""
        self._recent[digest] = now
        self._recent.move_to_end(digest)
        while len(self._recent) > self.limits.remembered:
            self._recent.popitem(last=False)

    def admit(self, peer: bytes, size: int) -> bool:
        """Take a place for a message of ``size`` bytes from ``peer``; False when the queue
        or the peer's share of it is full."""
        limits = self.limits
        full = self._messages >= limits.max_messages or self._counts[peer] >= limits.max_per_peer
        if full or (self._counts[peer] and self._bytes[peer] + size > limits.max_bytes_per_peer):
            self.dropped["full"] += 1
            return False
        self._messages += 1
        self._counts[peer] += 1
        self._bytes[peer] += size
        return True

    def release(self, peer: bytes, size: int) -> None:
        """The replica took a message of ``size`` bytes from ``peer``."""
        self._messages -= 1
        self._counts[peer] -= 1
        self._bytes[peer] -= size
        if not self._counts[peer]:
            del self._counts[peer], self._bytes[peer]


class GossipBudget:
    """How many gossiped transactions each peer may have this node look at, per second.

    Looking at one costs a decode and the admission rules even when it is refused, and
    refusals that depend on the state (a sender without funds here, a nonce used) are
    not held against the peer: an honest one may send them when its state differs by a
    block. So a peer gets a bucket of ``per_second`` transactions, holding at most
    ``burst`` (room for a link-open offer and a round of stalled runs); a batch beyond it
    is dropped unread, as a full queue drops gossip, and counted.
    """

    def __init__(self, *, per_second: float = 10_000, burst: float = 20_000) -> None:
        self.per_second = per_second
        self.burst = burst
        self._tokens: dict[bytes, tuple[float, float]] = {}
        #: Transactions dropped unread because their peer was over its budget.
        self.dropped = 0

    def take(self, peer: bytes, count: int, now: float) -> bool:
        """Whether ``peer`` may have ``count`` more transactions looked at now."""
        tokens, updated = self._tokens.get(peer, (self.burst, now))
        tokens = min(self.burst, tokens + (now - updated) * self.per_second)
        if tokens < count:
            self._tokens[peer] = (tokens, now)
            self.dropped += count
            return False
        self._tokens[peer] = (tokens - count, now)
        return True
