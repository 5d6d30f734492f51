"""Tests for p2p/registry.py: one link per peer, chosen the same way at both ends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mura.p2p.accounting import Accounting, Misbehaviour
from mura.p2p.channel import SecureChannel
from mura.p2p.link import Link
from mura.p2p.outbox import Outbox
from mura.p2p.registry import LinkRegistry

from .conftest import key_named

SMALL, LARGE = sorted([key_named("a").public_key, key_named("b").public_key])


class End:
    """One side of a pair: its registry and the peer-change events it reported."""

    def __init__(self, own: bytes, *, ban_threshold: int = 5) -> None:
        self.own = own
        self.peer = LARGE if own == SMALL else SMALL
        self.events: list[tuple[bytes, bool]] = []
        self.misbehaviour = Misbehaviour(threshold=ban_threshold, window=60, ban_seconds=60, links_per_minute=200)
        self.registry = LinkRegistry(
            own_public_key=own,
            accounting=Accounting(),
            misbehaviour=self.misbehaviour,
            on_peer_change=lambda peer, connected: self.events.append((peer, connected)),
        )

    def link(self, *, dialed_by: bytes) -> Link:
        """This end's side of a connection (never served: no I/O happens here)."""
        return Link(
            _NoWebSocket(),
            channel=SecureChannel(send_key=b"s" * 32, receive_key=b"r" * 32),
            peer_public_key=self.peer,
            initiator=dialed_by,
            remote="test",
            outbox=Outbox(max_frames=10, max_bytes=1000),
            accounting=Accounting(),
            send_timeout=1,
            close_timeout=1,
        )


class _NoWebSocket:
    async def send_bytes(self, data: bytes, compress: int | None = None) -> None:
        raise AssertionError("a registry test does no I/O")

    async def receive(self, timeout: float | None = None) -> Any:
        raise AssertionError("a registry test does no I/O")

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        raise AssertionError("a registry test does no I/O")


@pytest.mark.parametrize("small_end_order", ["winner first", "loser first"])
@pytest.mark.parametrize("large_end_order", ["winner first", "loser first"])
async def test_both_ends_keep_the_link_the_smaller_key_dialed(small_end_order: str, large_end_order: str) -> None:
    kept = []
    for end, order in ((End(SMALL), small_end_order), (End(LARGE), large_end_order)):
        winner, loser = end.link(dialed_by=SMALL), end.link(dialed_by=LARGE)
        first, second = (winner, loser) if order == "winner first" else (loser, winner)
        assert end.registry.admit(first) is None
        refusal = end.registry.admit(second)
        if second is winner:
            assert refusal is None and loser.closing, "the loser admitted first is told to close"
        else:
            assert refusal == "a link to this peer already exists", "the caller closes the refused loser"
        assert end.registry.live() == [winner]
        assert end.events == [(end.peer, True)], "a replacement is not a disconnect"
        kept.append(end.registry.get(end.peer).initiator)  # type: ignore[union-attr]
    assert kept == [SMALL, SMALL]


async def test_a_redial_by_the_same_side_replaces_the_stale_link() -> None:
    end = End(SMALL)
    stale, fresh = end.link(dialed_by=LARGE), end.link(dialed_by=LARGE)
    assert end.registry.admit(stale) is None
    stale.enqueue(b"queued before the redial", droppable=False)
    assert end.registry.admit(fresh) is None
    assert end.registry.live() == [fresh] and stale.closing
    assert fresh.queued_frames == 1, "frames still queued move to the replacement"
    end.registry.forget(stale)
    assert end.events == [(LARGE, True)]
    end.registry.forget(fresh)
    assert end.events == [(LARGE, True), (LARGE, False)] and end.registry.live() == []


async def test_invalid_link_from_a_banned_peer() -> None:
    end = End(SMALL, ban_threshold=0)
    assert end.misbehaviour.record_offence(LARGE, now=asyncio.get_running_loop().time())
    assert end.registry.admit(end.link(dialed_by=LARGE)) == "banned for another 60 s"
    assert end.events == []
