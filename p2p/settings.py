"""The plain values a ``Network`` is configured with."""

from __future__ import annotations

from dataclasses import dataclass, field

from mura.p2p.frames import DEFAULT_MAX_FRAME_SIZE


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """A peer this node dials and keeps a link to."""

    #: The key the peer must prove in the handshake.
    public_key: bytes
    #: Host name or IP address of its peer endpoint.
    host: str
    #: TCP port of its peer endpoint.
    port: int


@dataclass(frozen=True, slots=True)
class PeerLink:
    """A live link, as reported by ``Network.peer_links``."""

    #: The peer's public key.
    public_key: bytes
    #: ``host:port`` of the other end.
    remote: str
    #: True when this node dialed the peer.
    outgoing: bool


@dataclass(frozen=True, slots=True)
class NetworkLimits:
    """Sizes, timeouts and misbehaviour thresholds; the defaults suit production."""

    #: Largest frame sent or received once a link is authenticated, in bytes
    #: (before sealing; the websocket message is ``SEAL_OVERHEAD`` bytes longer).
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    #: Seconds an incoming connection may take to send its HELLO after the websocket upgrade.
    hello_timeout: float = 2.0
    #: Seconds a handshake may take from the websocket opening to READY.
    handshake_timeout: float = 5.0
    #: Seconds a connection to the peer port may take to send a complete HTTP request head.
    header_timeout: float = 10.0
    #: Seconds a dial may take to open the websocket: room for one lost SYN (resent after
    #: 1 s), short enough that an attempt stuck in a partition is soon given up and retried.
    connect_timeout: float = 3.0
    #: Seconds between websocket pings; a link with no pong within half of it is dead.
    heartbeat: float = 10.0
    #: Seconds a peer may take to accept one frame before the link is cut.
    send_timeout: float = 10.0
    #: Seconds the websocket close handshake may take before the connection is dropped.
    close_timeout: float = 2.0
    #: First delay before redialing a peer; it doubles per failed attempt.
    backoff_initial: float = 0.2
    #: Cap of the redial delay: how long a peer may wait to be redialed once reachable again.
    backoff_max: float = 2.0
    #: Seconds an authenticated link must have lived for its end to reset the redial
    #: delay; a peer that accepts and drops at once is not redialed in a tight loop.
    stable_link_seconds: float = 0.5
    #: Frames that may wait for one peer.
    outbox_frames: int = 4096
    #: Bytes that may wait for one peer; at least ``max_frame_size``.
    outbox_bytes: int = 64 * 1024 * 1024
    #: Frame kinds the outbox may discard under pressure (see ``mura.p2p.outbox``).
    droppable_kinds: frozenset[str] = field(default_factory=lambda: frozenset({"transactions"}))
    #: Malformed or refused frames a peer may send within ``malformed_window`` before it is banned.
    malformed_threshold: int = 20
    #: Seconds over which malformed and refused frames are counted.
    malformed_window: float = 60.0
    #: Seconds a banned peer is disconnected and refused.
    ban_seconds: float = 60.0
    #: Incoming connections that may be in their handshake at once (see ``mura.p2p.slots``);
    #: each may buffer at most ``PRE_AUTHENTICATION_BYTES`` before it is authenticated.
    max_pending_handshakes: int = 16
    #: Handshakes one source address that is not a known peer may have under way.
    max_handshakes_per_source: int = 4
    #: Of ``max_pending_handshakes``, how many only known peers' addresses may take.
    reserved_peer_handshakes: int = 8
    #: Connections one source address may have open to the peer port at once, counted from
    #: the moment they are accepted (see ``mura.p2p.connections``); one past it is closed at
    #: once. A peer needs one for its link and a few for handshakes.
    max_connections_per_source: int = 64
    #: Links one peer may open to this node within a minute; one more and it is banned for
    #: ``ban_seconds``, as for malformed frames. An honest dialer opens at most one per
    #: ``stable_link_seconds`` plus half of ``backoff_initial`` (about 100 a minute with the
    #: defaults), however often its links drop.
    max_links_per_minute: int = 200
    #: Seconds over which repeated warnings of one kind are folded into one line.
    log_interval: float = 10.0
    #: Seconds a peer may stay unreachable (a peer starting) before a WARNING says so.
    unreachable_warning_after: float = 30.0
    #: Seconds between repeats of that WARNING while the peer stays unreachable.
    unreachable_warning_every: float = 300.0

    def __post_init__(self) -> None:
        for name in ("max_frame_size", "outbox_frames", "outbox_bytes", "max_pending_handshakes",
                     "max_handshakes_per_source", "max_connections_per_source", "max_links_per_minute"):
            if getattr(self, name) < 1:
                raise ValueError(f"limits.{name} must be at least 1")
        for name in ("hello_timeout", "handshake_timeout", "header_timeout", "connect_timeout", "heartbeat",
                     "send_timeout", "close_timeout", "backoff_initial", "backoff_max", "malformed_window",
                     "log_interval", "unreachable_warning_after", "unreachable_warning_every"):
            if not getattr(self, name) > 0:
                raise ValueError(f"limits.{name} must be positive")
        if self.outbox_bytes < self.max_frame_size:
            raise ValueError("limits.outbox_bytes must hold at least one frame of max_frame_size")
        if self.backoff_max < self.backoff_initial:
            raise ValueError("limits.backoff_max must not be below limits.backoff_initial")
        if self.malformed_threshold < 0 or self.ban_seconds < 0 or self.stable_link_seconds < 0:
            raise ValueError("limits.malformed_threshold, ban_seconds and stable_link_seconds must not be negative")
        if not 0 <= self.reserved_peer_handshakes < self.max_pending_handshakes:
            raise ValueError("limits.reserved_peer_handshakes must be below limits.max_pending_handshakes")
        honest = self.honest_links_per_minute()
        if self.max_links_per_minute <= honest:
            raise ValueError(f"limits.max_links_per_minute must be above the {honest:.0f} links a minute an honest "
                             "dialer with these limits may open (60 / (stable_link_seconds + backoff_initial / 2))")

    def honest_links_per_minute(self) -> float:
        """Most links a minute an honest dialer with these limits opens to one peer: after a
        link that lived ``stable_link_seconds`` it waits at least half of ``backoff_initial``."""
        return 60.0 / (self.stable_link_seconds + self.backoff_initial / 2)
