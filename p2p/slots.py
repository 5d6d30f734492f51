"""Who may start a handshake with this node right now.

An incoming connection holds a *slot* from its websocket upgrade until its
handshake ends. Slots are capped so that neither strangers nor one dishonest
peer holding idle websockets can keep the other validators out:

- in total (``total``);
- ``reserved`` of the total are kept for *known* sources: the address of a
  configured peer, or one that an admitted key was reached at or authenticated
  from (observers included). Strangers share the rest;
- per source: a stranger may hold ``per_source``; a known source
  ``per_source`` plus one for each admitted key expected there (configured at
  that address, or seen there), so that validators sharing a host (a loopback
  testnet, a NAT) each have room, while a dishonest one holds no more than a
  small share of the total, even from its own configured address;
- when every slot is taken, a known source below its own cap takes the slot of
  the oldest pending handshake of the *largest holder*: a stranger, or a source
  holding at least two more slots than the newcomer. Holding slots with
  handshakes that never finish therefore cannot keep a known peer out: it gets
  in at its first attempt, unless every other source holds no more than it does.

A *source* is an IPv4 address, or the /64 an IPv6 address lies in (one IPv6
host can usually choose among all the addresses of its /64). Validators on one
host are one source; anyone else on that host shares their allowance, and
among connections from one address no rule based on addresses can tell an
honest dialer from a dishonest one.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections import deque
from collections.abc import Callable, Iterable


class Slot:
    """One pending handshake's hold on a slot; ``release()`` is idempotent."""

    def __init__(self, slots: HandshakeSlots, source: str, known: bool, order: int,
                 on_evict: Callable[[], None]) -> None:
        self._slots = slots
        #: The source (see ``source_of``) the connection came from.
        self.source = source
        #: Whether the source was known when the slot was taken.
        self.known = known
        #: When the slot was taken, as a running count: lower is older.
        self.order = order
        #: True once the slot was taken away to make room for a known peer.
        self.evicted = False
        self._on_evict = on_evict
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots._release(self)

    def _evict(self) -> None:
        """Give the slot up for a known peer and end the handshake that held it."""
        self.evicted = True
        self.release()
        self._on_evict()


class HandshakeSlots:
    """The slot policy described in the module docstring."""

    def __init__(self, *, total: int, per_source: int, reserved: int,
                 known_peers: Iterable[tuple[bytes, str]] = ()) -> None:
        if not 0 <= reserved < total or per_source < 1:
            raise ValueError("handshake slots need 0 <= reserved < total and per_source >= 1")
        self._total = total
        self._per_source = per_source
        self._reserved = reserved
        self._configured: dict[str, set[bytes]] = {}
        for key, address in known_peers:
            self._configured.setdefault(source_of(address), set()).add(key)
        self._learned: dict[bytes, deque[str]] = {}
        self._seen: dict[str, set[bytes]] = {}
        self._held: dict[str, dict[Slot, None]] = {}
        self._pending = 0
        self._pending_strangers = 0
        self._order = itertools.count()

    @property
    def pending(self) -> int:
        """Slots held now."""
        return self._pending

    def take(self, address: str, *, on_evict: Callable[[], None] = lambda: None) -> Slot | None:
        """A slot for a connection from ``address``, or None when it must be turned away.

        ``on_evict`` is called if the slot is later taken away for a known peer: it
        must end the connection's handshake (the slot is already free by then).
        """
        source = source_of(address)
        known = self._is_known_source(source)
        held = len(self._held.get(source, ()))
        if held >= self.cap(address):
            return None
        if not known:
            if self._pending >= self._total or self._pending_strangers >= self._total - self._reserved:
                return None
        elif self._pending >= self._total:
            victim = self._victim_for(source, held)
            if victim is None:
                return None
            victim._evict()
        return self._grant(source, known, on_evict)

    def cap(self, address: str) -> int:
        """Most slots ``address``'s source may hold at once."""
        source = source_of(address)
        return self._per_source + len(self._configured.get(source, set()) | self._seen.get(source, set()))

    def is_known(self, address: str) -> bool:
        """True for a configured peer's address, or one a peer was reached at or authenticated from."""
        return self._is_known_source(source_of(address))

    def learn(self, peer: bytes, address: str, *, keep: int = 4) -> None:
        """``peer`` was reached at, or authenticated from, ``address``; the last ``keep`` such
        sources per peer count as known, and as one key expected there."""
        source = source_of(address)
        sources = self._learned.setdefault(peer, deque())
        if source in sources:
            return
        sources.append(source)
        self._seen.setdefault(source, set()).add(peer)
        while len(sources) > keep:
            self._forget(peer, sources.popleft())

    def _forget(self, peer: bytes, source: str) -> None:
        keys = self._seen[source]
        keys.discard(peer)
        if not keys:
            del self._seen[source]

    def _is_known_source(self, source: str) -> bool:
        return source in self._configured or source in self._seen

    def _victim_for(self, source: str, held: int) -> Slot | None:
        """The oldest slot of the largest holder a known ``source`` holding ``held`` may displace."""
        candidates = [
            slots for other, slots in self._held.items()
            if other != source and (not self._is_known_source(other) or len(slots) >= held + 2)
        ]
        if not candidates:
            return None
        largest = max(candidates, key=lambda slots: (len(slots), -next(iter(slots)).order))
        return next(iter(largest))

    def _grant(self, source: str, known: bool, on_evict: Callable[[], None]) -> Slot:
        slot = Slot(self, source, known, next(self._order), on_evict)
        self._held.setdefault(source, {})[slot] = None
        self._pending += 1
        self._pending_strangers += not known
        return slot

    def _release(self, slot: Slot) -> None:
        self._pending -= 1
        self._pending_strangers -= not slot.known
        held = self._held[slot.source]
        del held[slot]
        if not held:
            del self._held[slot.source]


def source_of(address: str) -> str:
    """The source an address counts as: the IPv4 address itself (also when mapped into
    IPv6), the /64 of an IPv6 address, or a host name in lower case."""
    normalized = normalize_address(address)
    try:
        parsed = ipaddress.ip_address(normalized)
    except ValueError:
        return normalized
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return normalized


def normalize_address(address: str) -> str:
    """One spelling per IP address (an IPv4 address mapped into IPv6 becomes plain IPv4);
    a host name is kept as given, in lower case."""
    try:
        parsed = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address.lower()
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed)
