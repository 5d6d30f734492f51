"""How long a dialer waits before trying a peer again."""

from __future__ import annotations

import random


class Backoff:
    """Redial delays: doubling from ``initial`` up to ``maximum``.

    Each delay is drawn from [d/2, d], so nodes that lost each other at the same
    moment (a restart, a network blip) do not redial in lockstep.
    """

    def __init__(self, *, initial: float, maximum: float) -> None:
        self._initial = initial
        self._maximum = maximum
        self._next = initial
        self._random = random.Random()

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self._maximum)
        return delay * self._random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self._next = self._initial
