"""The live link per peer, and the rule that keeps it to exactly one.

Only links whose both ends proved their keys in the handshake reach the
registry, so a connection can never displace a peer's link on a claim alone.
When both sides dial each other, both keep the connection dialed by the side
with the smaller public key and close the other, so the two ends agree without
talking about it. A second link dialed by the *same* side replaces the first
(a dialer only redials once its link ended, so the old one is stale; and only
the holder of that key can dial as it). Dialers
wait in ``wait_until_dialable`` while a link to their peer is live, so the side
whose link lost does not redial in a loop.

Frames still queued on a replaced link move to its replacement; frames already
in flight on it may be lost, as on any link that closes.

The INFO lines for a peer connecting and disconnecting are rate-limited per
peer and kind (``mura.p2p.logs``): a link that flaps writes its first
connect and disconnect lines at once and then one summary of each per
interval, however often it flaps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mura.p2p.accounting import Accounting, Misbehaviour
from mura.p2p.link import Link, short_key
from mura.p2p.logs import RateLimitedLog

log = logging.getLogger(__name__)


class LinkRegistry:
    """Which link carries the traffic to each peer."""

    def __init__(
        self,
        *,
        own_public_key: bytes,
        accounting: Accounting,
        misbehaviour: Misbehaviour,
        on_peer_change: Callable[[bytes, bool], None] | None,
        log_interval: float = 10.0,
    ) -> None:
        self._own_public_key = own_public_key
        self._log = RateLimitedLog(log, interval=log_interval)
        self._accounting = accounting
        self._misbehaviour = misbehaviour
        self._on_peer_change = on_peer_change
        self._links: dict[bytes, Link] = {}

    def flush_log(self) -> None:
        """Write the summaries of held-back lines now (at shutdown)."""
        self._log.flush()

    def get(self, peer: bytes) -> Link | None:
        """The peer's live link, if it has one."""
        link = self._links.get(peer)
        return None if link is None or link.closing else link

    def live(self) -> list[Link]:
        """Every live link."""
        return [link for link in self._links.values() if not link.closing]

    def registered(self) -> list[Link]:
        """Every registered link, closing ones included."""
        return list(self._links.values())

    def admit(self, link: Link) -> str | None:
        """Register ``link`` as its peer's link, or return why it is refused."""
        peer = link.peer_public_key
        remaining = self._misbehaviour.ban_remaining(peer, _now())
        if remaining:
            self._log.warning(("banned", peer), "refused banned peer %s at %s for another %.1f s", short_key(peer),
                              link.remote, remaining)
            return f"banned for another {remaining:.0f} s"
        existing = self._links.get(peer)
        if existing is not None:
            if self._preferred(existing, link) is existing:
                log.debug("closing a second link to peer %s at %s", short_key(peer), link.remote)
                return "a link to this peer already exists"
            self._links[peer] = link
            existing.hand_over(link)
            existing.close_soon("replaced by another link to the same peer")
            return None
        self._links[peer] = link
        direction = "outgoing" if link.initiator == self._own_public_key else "incoming"
        self._log.info(("connected", peer), "connected to peer %s at %s (%s)", short_key(peer), link.remote,
                       direction)
        self._notify(peer, True)
        return None

    def forget(self, link: Link) -> None:
        """``link`` has ended; the peer is disconnected unless another link replaced it."""
        peer = link.peer_public_key
        if self._links.get(peer) is not link:
            log.debug("closed a superseded link to peer %s at %s: %s", short_key(peer), link.remote,
                      link.close_reason)
            return
        del self._links[peer]
        self._accounting.add(peer, "disconnects")
        self._log.info(("disconnected", peer), "disconnected from peer %s at %s: %s", short_key(peer), link.remote,
                       link.close_reason)
        self._notify(peer, False)

    async def wait_until_dialable(self, peer: bytes) -> None:
        """Return once ``peer`` has no registered link and is not banned."""
        while True:
            link = self._links.get(peer)
            if link is not None:
                await link.wait_closed()
                continue
            remaining = self._misbehaviour.ban_remaining(peer, _now())
            if remaining:
                await asyncio.sleep(remaining)
                continue
            return

    def _preferred(self, existing: Link, new: Link) -> Link:
        """Which of two links to the same peer survives; both ends choose the same."""
        if existing.closing or existing.initiator == new.initiator:
            return new
        smaller = min(self._own_public_key, new.peer_public_key)
        return existing if existing.initiator == smaller else new

    def _notify(self, peer: bytes, connected: bool) -> None:
        if self._on_peer_change is None:
            return
        try:
            self._on_peer_change(peer, connected)
        except Exception:
            log.exception("on_peer_change failed for peer %s", short_key(peer))


def _now() -> float:
    return asyncio.get_running_loop().time()
