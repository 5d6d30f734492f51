"""Who may start a handshake with this node right now.

An incoming connection holds a *slot* from its websocket upgrade until its
handshake ends. Slots are capped three ways, so that strangers holding idle
websockets cannot keep the validators out:

- in total (``total``);
- per source address (``per_source``), for sources that are not known peers;
- ``reserved`` of the total are kept for known peers: sources that are a
  configured peer's address, that this node reached a peer at, or that
  authenticated as an admitted key before.

Known peers' sources are not capped per source: several validators may share
a host, and a restarted one must get back in at once. (Someone on the same
host as a validator therefore shares its allowance; that is outside what an
address-based rule can tell apart.)
"""

from __future__ import annotations

import ipaddress
from collections import Counter, deque
from collections.abc import Iterable


class Slot:
    """One pending handshake's hold on a slot; ``release()`` is idempotent."""

    def __init__(self, slots: HandshakeSlots, source: str, known: bool) -> None:
        self._slots = slots
        self.source = source
        self.known = known
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots._release(self)


class HandshakeSlots:
    """The slot policy described in the module docstring."""

    def __init__(self, *, total: int, per_source: int, reserved: int, known_sources: Iterable[str] = ()) -> None:
        if not 0 <= reserved < total or per_source < 1:
            raise ValueError("handshake slots need 0 <= reserved < total and per_source >= 1")
        self._total = total
        self._per_source = per_source
        self._reserved = reserved
        self._configured = {normalize_address(source) for source in known_sources}
        self._learned: dict[bytes, deque[str]] = {}
        self._by_source: Counter[str] = Counter()
        self._pending = 0
        self._pending_unknown = 0

    @property
    def pending(self) -> int:
        """Slots held now."""
        return self._pending

    def take(self, source: str) -> Slot | None:
        """A slot for a connection from ``source``, or None when it must be turned away."""
        source = normalize_address(source)
        known = self.is_known(source)
        if self._pending >= self._total:
            return None
        if not known and (
            self._pending_unknown >= self._total - self._reserved or self._by_source[source] >= self._per_source
        ):
            return None
        self._pending += 1
        self._pending_unknown += not known
        self._by_source[source] += 1
        return Slot(self, source, known)

    def is_known(self, source: str) -> bool:
        """True for a configured peer's address, or one a peer was reached at or authenticated from."""
        source = normalize_address(source)
        return source in self._configured or any(source in sources for sources in self._learned.values())

    def learn(self, peer: bytes, source: str, *, keep: int = 4) -> None:
        """``peer`` was reached at, or authenticated from, ``source``; the last ``keep`` such
        addresses per peer count as known."""
        source = normalize_address(source)
        sources = self._learned.setdefault(peer, deque(maxlen=keep))
        if source not in sources:
            sources.append(source)

    def _release(self, slot: Slot) -> None:
        self._pending -= 1
        self._pending_unknown -= not slot.known
        self._by_source[slot.source] -= 1
        if not self._by_source[slot.source]:
            del self._by_source[slot.source]


def normalize_address(address: str) -> str:
    """One spelling per IP address (an IPv4 address mapped into IPv6 becomes plain IPv4);
    a host name is kept as given."""
    try:
        parsed = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address.lower()
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed)
