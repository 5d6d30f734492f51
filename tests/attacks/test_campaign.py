"""One cheap attack of the campaign, end to end, so that the measuring tool keeps working:
a fresh testnet, a link as the dishonest validator, the observer, and a row of figures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mura.tests.attacks.campaign import format_table, run_attack
from mura.tests.attacks.harness import Scale

pytestmark = pytest.mark.processes


def test_a_quick_attack_reports_what_it_cost_the_honest_nodes(tmp_path: Path) -> None:
    row = asyncio.run(run_attack("far_future_votes", Scale(1), tmp_path, ()))

    assert "error" not in row, row.get("traceback", row.get("error"))
    assert 0 < row["stall_s"] <= row["window_seconds"]
    assert 0 < row["rpc_max_s"] < row["window_seconds"]
    assert len(row["cpu_s"]) == 3 and all(seconds > 0 for seconds in row["cpu_s"].values())
    assert all(megabytes > 10 for megabytes in row["rss_before_mb"].values())
    before, after = row["heights"]
    assert all(after[index] > before[index] for index in before), "the observer saw no block in the window"
    # Empty blocks are no longer logged one by one: an attack the nodes shrug off may cost no
    # line at all; what the reader counted must add up.
    assert row["tracebacks"] == 0 and row["log_lines"] == sum(row["log_levels"].values())
    assert row["attacker_banned"] is not None and row["attacker_disconnected"] is not None
    assert row["figures"]["votes_sent"] > 0
    assert "far_future_votes" in format_table([row])
