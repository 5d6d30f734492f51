"""The campaign's printed report: one line per fault, a table per kind, the targets, the verdict."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mura.tests.chaos.faults import KINDS
from mura.tests.chaos.figures import FaultFigures, percentile

#: Slack on top of the timers for one round of votes and the observer's polling.
ROUND_SLACK_SECONDS = 1.5


@dataclass(frozen=True, slots=True)
class Targets:
    """What the network should manage once its known liveness faults are fixed."""

    #: Longest stall for a fault that leaves the primary linked to a quorum (no stall at all).
    no_stall: float
    #: Longest stall when the fault touches the primary: one view change.
    one_view_change: float
    #: Longest wait from a heal until every node has a block made after it.
    recovery: float

    @classmethod
    def for_base_timeout(cls, base_timeout_ms: int) -> Targets:
        view_change = base_timeout_ms / 1000 + ROUND_SLACK_SECONDS
        return cls(no_stall=ROUND_SLACK_SECONDS, one_view_change=view_change, recovery=view_change)

    def misses(self, figures: FaultFigures) -> list[str]:
        """How ``figures`` fall short of the targets (empty: met)."""
        fault = figures.window.fault
        misses = []
        if fault.healthy:
            bound = self.one_view_change if fault.touches_primary else self.no_stall
            if figures.chain_stall > bound:
                misses.append(f"stall {figures.chain_stall:.1f} s > {bound:.1f} s")
        if figures.recovery is None or figures.recovery > self.recovery:
            shown = "none" if figures.recovery is None else f"{figures.recovery:.1f} s"
            misses.append(f"recovery {shown} > {self.recovery:.1f} s")
        return misses


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def fault_line(number: int, figures: FaultFigures) -> str:
    fault = figures.window.fault
    latencies = figures.latencies
    return (
        f"#{number:<2} {fault.kind:<16} {fault.description} | primary {fault.primary} | held {figures.held:.1f} s | "
        f"stall {figures.chain_stall:.1f} (worst node {figures.worst_node_stall:.1f}) | "
        f"first block {seconds(figures.first_block)} | "
        f"recovery {seconds(figures.recovery)} | blocks/s {figures.rate_before:.2f} -> {figures.rate_during:.2f} | "
        f"p50/p99 {seconds(percentile(latencies, 0.5))}/{seconds(percentile(latencies, 0.99))} s | "
        f"view changes {figures.view_changes} | load {figures.window.load_average:.2f}"
    )


TABLE_HEADER = (
    f"{'kind':<17}{'n':>3} {'stall max':>9} {'stall med':>9} {'worst node':>10} {'1st block':>9} {'recovery':>8} "
    f"{'blk/s before':>12} {'during':>7} {'lat p50':>8} {'p90':>6} {'p99':>6} {'max':>6} {'VCs':>5}"
)


def table(all_figures: Sequence[FaultFigures]) -> list[str]:
    """One row per fault kind: worst and median over its occurrences, latencies pooled."""
    lines = [TABLE_HEADER]
    for kind in KINDS:
        rows = [figures for figures in all_figures if figures.window.fault.kind == kind]
        if not rows:
            continue
        stalls = [row.chain_stall for row in rows]
        latencies = sorted(latency for row in rows for latency in row.latencies)

        def worst(values: Sequence[float | None]) -> str:
            known = [value for value in values if value is not None]
            return "never" if len(known) < len(values) else seconds(max(known))

        lines.append(
            f"{kind:<17}{len(rows):>3} {max(stalls):>9.1f} {statistics.median(stalls):>9.1f} "
            f"{max(row.worst_node_stall for row in rows):>10.1f} {worst([row.first_block for row in rows]):>9} "
            f"{worst([row.recovery for row in rows]):>8} "
            f"{statistics.mean(row.rate_before for row in rows):>12.2f} "
            f"{statistics.mean(row.rate_during for row in rows):>7.2f} "
            f"{seconds(percentile(latencies, 0.5)):>8} {seconds(percentile(latencies, 0.9)):>6} "
            f"{seconds(percentile(latencies, 0.99)):>6} {seconds(latencies[-1] if latencies else None):>6} "
            f"{statistics.mean(row.view_changes for row in rows):>5.1f}"
        )
    return lines


def print_lines(lines: Sequence[str], out: Callable[[str], None]) -> None:
    for line in lines:
        out(line)
