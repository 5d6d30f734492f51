"""A short chaos campaign against real validator processes: one link cut one way, the
primary isolated, a 2|2 split, each held and healed under a steady load of transfers.

It asserts safety (one chain, valid certificates, no transaction reported final moved
or lost, balances as the transfers say, nothing final across the split), that a fault
leaving a quorum connected costs the chain at most one view change, and that the network
recovers after every heal. The bounds leave room for a loaded machine; the campaign's
stricter targets (``make chaos``) are for it to report, not for this test to enforce.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mura.tests.chaos.campaign import CampaignOptions, run_campaign

pytestmark = pytest.mark.processes

#: Longest stall while a quorum stays connected: one view change (a 2 s timer, then a round)
#: with room for a loaded machine; two failed views would take 2 + 4 s before any round.
STALL_BOUND = 6.0
#: Seconds within which every heal must be followed by a block on every node (they recover
#: within about 4 s: a link redialed after the heal waits at most its 2 s backoff cap, then
#: the view it missed may run out its timer), with room for a loaded machine.
RECOVERY_BOUND = 10.0


def test_short_campaign_keeps_safety_and_recovers_after_every_heal(tmp_path: Path) -> None:
    lines: list[str] = []
    options = CampaignOptions(
        seed=7,
        kinds=("cut_one_way", "isolate_primary", "split_2_2"),
        max_faults=3,
        minutes=10.0,
        hold=(8.0, 8.0),
        settle=3.0,
        warmup=3.0,
        rate=50.0,
        recovery_bound=RECOVERY_BOUND,
        keep=tmp_path / "chaos",
    )
    result = run_campaign(options, out=lines.append)
    report = "\n".join(lines)
    kinds = sorted(figures.window.fault.kind for figures in result.figures)
    assert kinds == ["cut_one_way", "isolate_primary", "split_2_2"], report
    assert result.safety.ok, report
    assert result.safety.transactions_in_chain > 0 and result.safety.placements_checked > 0, report
    assert not result.slow_recoveries, report
    for figures in result.figures:
        if figures.window.fault.healthy:
            assert figures.chain_stall <= STALL_BOUND, report
    assert result.not_final == 0, report
    assert result.passed, report
    assert all(status == 0 for status in result.exit_statuses.values()), report
