"""Figures of a fault: stalls, recovery, block rate and latency, from what the observer saw.

Definitions (all times by the campaign's monotonic clock, at the observer's
polling resolution):

- *chain stall*: the longest stretch within the fault during which no healthy
  node saw a new final height (a height first reached by any healthy node);
  a stretch that began before the fault counts from the fault's start, one
  that outlasts it ends at the heal.
- *worst node stall*: the same for each healthy node on its own; the largest.
  It shows a node that is linked but left behind.
- *first block*: from the heal until every node has seen its height rise.
- *recovery*: from the heal until every node holds a block that was not final
  anywhere at the heal.
- *blocks/s*: new heights per second in the window before the fault (of the
  same length as the settle period) and during it.
- *latency*: from a transfer's acceptance to its first report as final, for
  transfers accepted during the fault.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mura.tests.chaos.faults import Fault
from mura.tests.chaos.observer import NodeTimeline


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """When a fault was applied and healed, and the heights around it."""

    fault: Fault
    applied: float
    healed: float
    #: Highest height any node had just after the rules were in place, and at the heal.
    height_at_apply: int
    height_at_heal: int
    #: ``time.time()`` at apply and heal, to find the moments in node logs.
    applied_wall: float
    healed_wall: float
    #: Seconds the campaign waited for recovery before giving up (None: it recovered).
    gave_up_after: float | None = None
    #: Load average (1 minute) when the fault was applied.
    load_average: float = 0.0


@dataclass(frozen=True, slots=True)
class FaultFigures:
    """The figures of one fault (seconds unless said otherwise)."""

    window: FaultWindow
    chain_stall: float
    worst_node_stall: float
    first_block: float | None
    recovery: float | None
    rate_before: float
    rate_during: float
    latencies: tuple[float, ...]
    #: Views the furthest-moving node went through from the fault's start until recovery.
    view_changes: int
    #: Heights finalized after the rules were in place, by any node, before the heal.
    blocks_during: int

    @property
    def held(self) -> float:
        return self.window.healed - self.window.applied


def longest_gap(moments: Iterable[float], start: float, end: float) -> float:
    """The longest stretch of [start, end] without one of ``moments``."""
    inside = sorted(moment for moment in moments if start < moment < end)
    edges = [start, *inside, end]
    return max(later - earlier for earlier, later in itertools.pairwise(edges))


def new_height_moments(timelines: Sequence[NodeTimeline], nodes: Iterable[int]) -> list[float]:
    """When each height was first reached by one of ``nodes``."""
    first: dict[int, float] = {}
    for index in nodes:
        previous = 0
        for seen, height in timelines[index].heights:
            for reached in range(previous + 1, height + 1):
                if reached not in first or seen < first[reached]:
                    first[reached] = seen
            previous = height
    return sorted(first.values())


def figures_of(
    window: FaultWindow, timelines: Sequence[NodeTimeline], latencies: Sequence[float], *, settle: float
) -> FaultFigures:
    fault, start, end = window.fault, window.applied, window.healed
    everyone = range(len(timelines))
    healthy = sorted(fault.healthy)
    chain = new_height_moments(timelines, healthy)
    chain_stall = longest_gap(chain, start, end) if healthy else end - start
    worst = max(
        (longest_gap(new_height_moments(timelines, [index]), start, end) for index in healthy), default=end - start
    )
    all_moments = new_height_moments(timelines, everyone)
    before = sum(1 for moment in all_moments if start - settle <= moment < start) / settle
    during = sum(1 for moment in all_moments if start <= moment < end) / max(end - start, 1e-9)
    return FaultFigures(
        window=window,
        chain_stall=chain_stall,
        worst_node_stall=worst,
        first_block=_first_block(timelines, end),
        recovery=_recovery(timelines, window),
        rate_before=before,
        rate_during=during,
        latencies=tuple(latencies),
        view_changes=_view_changes(timelines, start, end + (_recovery(timelines, window) or 0.0)),
        blocks_during=max(0, max(timeline.height_at(end) for timeline in timelines) - window.height_at_apply),
    )


def _first_block(timelines: Sequence[NodeTimeline], healed: float) -> float | None:
    waits = []
    for timeline in timelines:
        at_heal = timeline.height_at(healed)
        seen = timeline.reached(at_heal + 1, after=healed)
        if seen is None:
            return None
        waits.append(seen - healed)
    return max(waits)


def _recovery(timelines: Sequence[NodeTimeline], window: FaultWindow) -> float | None:
    waits = []
    for timeline in timelines:
        seen = timeline.reached(window.height_at_heal + 1, after=window.healed)
        if seen is None:
            return None
        waits.append(seen - window.healed)
    return max(waits)


def _view_changes(timelines: Sequence[NodeTimeline], start: float, end: float) -> int:
    return max(timeline.view_at(end) - timeline.view_at(start) for timeline in timelines)


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of sorted ``values``."""
    if not values:
        return None
    rank = max(1, math.ceil(fraction * len(values)))
    return values[rank - 1]
