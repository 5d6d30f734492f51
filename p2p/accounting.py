"""Traffic counters and misbehaviour accounting.

Counters are kept per peer public key (only authenticated peers get one, so
the table is bounded by the admitted set) and in total; ``NetworkStats`` is a
frozen snapshot for RPC metrics and tests.

An *offence* is a frame that opened under the peer's link key and was then
refused: malformed (undecodable, of an unknown kind, refused by its handler)
or penalized by the node (``Network.penalize``). A peer with more than
``threshold`` offences within ``window`` seconds is banned for
``ban_seconds``: disconnected, refused after its next handshakes and not
dialed until the ban ends. Nothing that did not open under the peer's key
counts, so no one can get an honest key banned by sending garbage in its name.

A peer that opens links to this node faster than an honest dialer's backoff
allows (more than ``links_per_minute`` within a minute) is banned the same
way: each link costs a handshake and makes the node offer the peer what it
missed, and only the holder of the key can complete a handshake as it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class TrafficStats:
    """Counters for one peer or for the whole node."""

    #: Websocket messages received after the handshake.
    frames_in: int = 0
    #: Frames written to the peer.
    frames_out: int = 0
    #: Bytes of the frames received.
    bytes_in: int = 0
    #: Bytes of the frames written.
    bytes_out: int = 0
    #: Frames dropped as malformed: undecodable, of an unknown kind, or refused by their handler.
    malformed: int = 0
    #: Frames the node refused for cause after handling them (``Network.penalize``).
    refused: int = 0
    #: Messages that did not open under the link key (tampering on the path); each
    #: ended its link and none counts towards a ban.
    not_authentic: int = 0
    #: Outgoing frames discarded by the queue policy (see ``mura.p2p.outbox``).
    dropped: int = 0
    #: Times the peer's live link ended.
    disconnects: int = 0
    #: Links the peer opened to this node (authenticated incoming connections).
    links_opened: int = 0
    #: Times the peer was banned for malformed or refused frames.
    bans: int = 0


@dataclass(frozen=True, slots=True)
class NetworkStats:
    """A snapshot of the node's network counters."""

    #: Sums over all peers.
    total: TrafficStats
    #: Counters per peer public key, for every peer that ever completed a handshake.
    peers: Mapping[bytes, TrafficStats]
    #: Peers with a live link now.
    connected: int
    #: Connections being opened or authenticated now, in either direction.
    connecting: int
    #: Connections, in either direction, refused during the handshake.
    handshake_failures: int
    #: Dial attempts that did not reach the point of a handshake.
    dial_failures: int
    #: Incoming connections turned away before their handshake because their
    #: source, or the node, had too many handshakes under way.
    handshakes_turned_away: int
    #: Pending handshakes ended to make room for a known peer's (see ``mura.p2p.slots``).
    handshakes_evicted: int = 0
    #: Connections closed as soon as they were accepted: their source had
    #: ``max_connections_per_source`` open already.
    connections_turned_away: int = 0


class Counters:
    """The mutable twin of ``TrafficStats``."""

    __slots__ = tuple(field.name for field in fields(TrafficStats))

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def snapshot(self) -> TrafficStats:
        return TrafficStats(**{name: getattr(self, name) for name in self.__slots__})


class Accounting:
    """Counters for every peer and their total."""

    def __init__(self) -> None:
        self._total = Counters()
        self._peers: dict[bytes, Counters] = {}
        self.handshake_failures = 0
        self.dial_failures = 0
        self.handshakes_turned_away = 0
        self.handshakes_evicted = 0

    def add(self, peer: bytes, counter: str, amount: int = 1) -> None:
        """Add ``amount`` to ``counter`` of ``peer`` and of the total."""
        peer_counters = self._peers.get(peer)
        if peer_counters is None:
            peer_counters = self._peers[peer] = Counters()
        setattr(peer_counters, counter, getattr(peer_counters, counter) + amount)
        setattr(self._total, counter, getattr(self._total, counter) + amount)

    def snapshot(self, *, connected: int, connecting: int, connections_turned_away: int = 0) -> NetworkStats:
        return NetworkStats(
            total=self._total.snapshot(),
            peers={peer: counters.snapshot() for peer, counters in self._peers.items()},
            connected=connected,
            connecting=connecting,
            handshake_failures=self.handshake_failures,
            dial_failures=self.dial_failures,
            handshakes_turned_away=self.handshakes_turned_away,
            handshakes_evicted=self.handshakes_evicted,
            connections_turned_away=connections_turned_away,
        )


class Misbehaviour:
    """Offence windows and the bans they lead to, per peer."""

    def __init__(self, *, threshold: int, window: float, ban_seconds: float, links_per_minute: int) -> None:
        self._ban_seconds = ban_seconds
        self._offences = _Window(threshold=threshold, seconds=window)
        self._links = _Window(threshold=links_per_minute, seconds=60.0)
        self._banned_until: dict[bytes, float] = {}

    def record_offence(self, peer: bytes, now: float) -> bool:
        """Note one offence; True when it takes the peer over the threshold, in which
        case the peer is now banned."""
        return self._ban_if(self._offences.over(peer, now), peer, now)

    def record_link(self, peer: bytes, now: float) -> bool:
        """Note a link the peer opened; True when it is one more than ``links_per_minute``
        within a minute, in which case the peer is now banned."""
        return self._ban_if(self._links.over(peer, now), peer, now)

    def _ban_if(self, over: bool, peer: bytes, now: float) -> bool:
        if over:
            self._offences.forget(peer)
            self._links.forget(peer)
            self._banned_until[peer] = now + self._ban_seconds
        return over

    def ban_remaining(self, peer: bytes, now: float) -> float:
        """Seconds until ``peer``'s ban ends; 0 when it is not banned."""
        until = self._banned_until.get(peer)
        if until is None:
            return 0.0
        if until <= now:
            del self._banned_until[peer]
            return 0.0
        return until - now


class _Window:
    """Events per peer within the last ``seconds``; ``over`` once there are more than ``threshold``."""

    def __init__(self, *, threshold: int, seconds: float) -> None:
        self._threshold = threshold
        self._seconds = seconds
        self._recent: dict[bytes, deque[float]] = {}

    def over(self, peer: bytes, now: float) -> bool:
        """Note one event of ``peer`` at ``now``; True when that takes it over the threshold."""
        recent = self._recent.setdefault(peer, deque())
        recent.append(now)
        while recent and recent[0] <= now - self._seconds:
            recent.popleft()
        return len(recent) > self._threshold

    def forget(self, peer: bytes) -> None:
        self._recent.pop(peer, None)
