"""Tests for p2p/backoff.py: redial delays double up to a cap, with jitter."""

from __future__ import annotations

from mura.p2p.backoff import Backoff


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(initial=0.2, maximum=1.0)
    ceilings = [0.2, 0.4, 0.8, 1.0, 1.0]
    for ceiling in ceilings:
        assert ceiling / 2 <= backoff.next_delay() <= ceiling
    backoff.reset()
    assert 0.1 <= backoff.next_delay() <= 0.2


def test_backoff_jitter_spreads_delays() -> None:
    delays = {Backoff(initial=1.0, maximum=1.0).next_delay() for _ in range(20)}
    assert len(delays) > 1
