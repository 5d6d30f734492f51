"""What an operator reads about progress (``progress_log.py``), driven by a test clock:
which blocks get a line, the empty-block summary, catching up, stalls and their end,
and the bound on view-change lines."""

from __future__ import annotations

import json
import logging
import re

import pytest

from mura.logs import JsonFormatter
from mura.progress_log import ConsensusFacts, ProgressLog

NAMES = ("bob", "carol", "dave")
#: A four-validator network's settings as the node passes them: an idle block a minute,
#: 2 s view timeouts.
IDLE_S, BASE_S = 60.0, 2.0


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The captured records are ``lines.records``."""
    caplog.set_level(logging.DEBUG, logger="mura.node")
    return caplog


def progress(now: float = 0.0, **options: float) -> ProgressLog:
    return ProgressLog(quorum=3, stall_after=IDLE_S + 2 * BASE_S, view_change_limit=2 * BASE_S, now=now,
                       **options)  # type: ignore[arg-type]


def facts(
    height: int = 10, *, linked: tuple[str, ...] = NAMES, changing_view: bool = False, **more: object
) -> ConsensusFacts:
    missing = tuple(name for name in NAMES if name not in linked)
    return ConsensusFacts(height=height, view=0, primary="alice", changing_view=changing_view, linked=linked,
                          missing=missing, **more)  # type: ignore[arg-type]


def info(records: list[logging.LogRecord]) -> list[str]:
    return [record.getMessage() for record in records if record.levelno >= logging.INFO]


def test_a_block_with_transactions_gets_one_line_and_empty_blocks_none(lines: pytest.LogCaptureFixture) -> None:
    log = progress()
    for height in range(1, 50):
        log.final_block(float(height), height=height, transactions=0, view=0, latency_ms=40, target=height)
    log.final_block(50.0, height=50, transactions=7, view=2, latency_ms=85, target=50)
    log.final_block(51.0, height=51, transactions=3, view=2, latency_ms=None, target=51)
    assert info(lines.records) == [
        "final block 50: 7 transactions, view 2, 85 ms after its proposal",
        "final block 51: 3 transactions, view 2, fetched from a peer",
    ]


def test_empty_blocks_are_summed_up_every_ten_minutes(lines: pytest.LogCaptureFixture) -> None:
    log = progress()
    # An idle chain: a block a minute, checked every second, for twenty minutes.
    height = 0
    for second in range(1, 20 * 60 + 1):
        if second % 60 == 0:
            height += 1
            log.final_block(float(second), height=height, transactions=0, view=0, latency_ms=30, target=height)
        log.check(float(second), facts(height + 1))
    assert info(lines.records) == ["10 empty blocks final in the last 10 min, height 10",
                           "10 empty blocks final in the last 10 min, height 20"]
    assert not log.stalled(20 * 60.0), "an idle chain making its block a minute is not stalled"


def test_catching_up_writes_progress_every_five_seconds_and_no_line_per_block(lines: pytest.LogCaptureFixture) -> None:
    log = progress()
    # 1,000 blocks behind, fetched at 40 blocks a second; some with transactions.
    for step in range(1, 1_000):
        log.final_block(step / 40, height=step, transactions=step % 3, view=0, latency_ms=None, target=1_000)
    written = info(lines.records)
    assert written[0] == "catching up from height 0 to ~1000 (1000 blocks behind)"
    progress_lines = written[1:-1]
    assert len(progress_lines) == 4  # at 5, 10, 15 and 20 s of 25
    assert progress_lines[-1].startswith("catching up: height 802 of ~1000")  # floating-point seconds
    assert progress_lines[0] == ("catching up: height 201 of ~1000 (201 done, 799 remaining, 40 blocks/s, "
                                 "about 20 s left)")
    assert written[-1] == "caught up at height 999: 999 blocks in 25 s (40 blocks/s)"
    assert not any(line.startswith("final block") for line in written)
    # Back at the tip: blocks with transactions are logged again.
    log.final_block(30.0, height=1_001, transactions=2, view=0, latency_ms=50, target=1_001)
    assert info(lines.records)[-1] == "final block 1001: 2 transactions, view 0, 50 ms after its proposal"


def test_a_node_a_few_blocks_behind_is_not_catching_up(lines: pytest.LogCaptureFixture) -> None:
    log = progress()
    log.final_block(1.0, height=1, transactions=1, view=0, latency_ms=None, target=3)
    assert not log.catching_up
    assert info(lines.records) == ["final block 1: 1 transactions, view 0, fetched from a peer"]


def test_no_quorum_is_said_once_again_when_it_changes_and_then_progress_resumes(
    lines: pytest.LogCaptureFixture,
) -> None:
    log = progress()
    log.final_block(100.0, height=9, transactions=0, view=0, latency_ms=30, target=9)
    # A view change that waits for a quorum: stalled once it has waited two view timeouts.
    for second in range(101, 104):
        log.check(float(second), facts(linked=("bob",), changing_view=True))
    assert not log.stalled(103.0) and info(lines.records) == []
    for second in range(104, 140):
        log.check(float(second), facts(linked=("bob",), changing_view=True))
    warnings = [record for record in lines.records if record.levelno == logging.WARNING]
    assert [record.getMessage() for record in warnings] == [
        "no quorum: linked to 1 of 3 other validators, a block needs 3 of 4; waiting for 1 more "
        "(not linked: carol, dave); no final block for 6 s at height 10"
    ]
    assert warnings[0].__dict__["missing"] == ["carol", "dave"]
    # Another validator goes away: said again.
    log.check(140.0, facts(linked=(), changing_view=True))
    assert "waiting for 2 more (not linked: bob, carol, dave)" in info(lines.records)[-1]
    # Unchanged for a while: repeated every five minutes, not every second.
    for second in range(141, 141 + 600):
        log.check(float(second), facts(linked=(), changing_view=True))
    assert len([line for line in info(lines.records) if line.startswith("no quorum")]) == 2 + 2
    log.final_block(800.0, height=10, transactions=0, view=1, latency_ms=30, target=10)
    assert info(lines.records)[-1] == "progress resumed at height 10 after 700 s without a final block"
    log.check(801.0, facts(11))
    assert log.stall is None and info(lines.records)[-1].startswith("progress resumed")


def test_no_block_for_longer_than_the_idle_interval_and_two_timeouts_is_a_stall(
    lines: pytest.LogCaptureFixture,
) -> None:
    log = progress()
    log.check(IDLE_S + 2 * BASE_S, facts(1))
    assert info(lines.records) == []
    log.check(IDLE_S + 2 * BASE_S + 1, facts(1, voting=("bob", "carol"), later_views=(("bob", 3), ("carol", 3))))
    assert info(lines.records) == [
        "no agreement: no final block for 65 s at height 1, though linked to 3 of 3 other validators (a block "
        "needs 3 of 4); in view 0, primary alice (this node); votes at this height from: bob, carol; asking for "
        "later views: bob 3, carol 3"
    ]


def test_view_change_lines_are_bounded_when_views_keep_failing(lines: pytest.LogCaptureFixture) -> None:
    log = progress()
    for view in range(1, 31):
        log.view_changed(float(view), height=5, before=view - 1, after=view, reason="its timer ran out",
                         primary=NAMES[view % 3])
    logged = [record for record in lines.records if record.getMessage().startswith("view change")]
    assert [record.levelno for record in logged] == [logging.INFO] * 20 + [logging.DEBUG] * 10
    assert logged[0].getMessage() == "view change at height 5: view 0 -> 1 (its timer ran out), primary now carol"
    log.check(601.0, facts(5))
    assert "10 more view changes in the last 10 min, at DEBUG only (view 0 at height 5 now)" in info(lines.records)
    log.view_changed(602.0, height=5, before=30, after=31, reason="its timer ran out", primary="bob")
    assert lines.records[-1].levelno == logging.INFO


def test_the_json_format_carries_the_fields(lines: pytest.LogCaptureFixture) -> None:
    log = progress()
    log.final_block(1.0, height=3, transactions=2, view=1, latency_ms=120, target=3)
    entry = json.loads(JsonFormatter().format(lines.records[-1]))
    assert entry["message"] == "final block 3: 2 transactions, view 1, 120 ms after its proposal"
    assert (entry["event"], entry["height"], entry["transactions"], entry["view"], entry["latency_ms"]) == (
        "final_block", 3, 2, 1, 120)
    assert entry["level"] == "info" and re.fullmatch(r"[\d.]+", str(entry["time"]))


def test_a_busy_chain_writes_at_most_thirty_block_lines_a_minute_and_counts_the_rest(
    lines: pytest.LogCaptureFixture,
) -> None:
    log = progress()
    # Four blocks a second, each with transactions, for two minutes.
    for step in range(1, 481):
        log.final_block(step / 4, height=step, transactions=10, view=0, latency_ms=60, target=step)
        if step % 4 == 0:
            log.check(step / 4, facts(step + 1))
    written = info(lines.records)
    # Windows of a minute: 30 lines each, then the count of the rest as the next begins.
    assert len([line for line in written if line.startswith("final block")]) == 30 + 30 + 1
    assert [line for line in written if not line.startswith("final block")] == [
        "209 more blocks with 2090 transactions final in the last 60 s, heights 31 to 239 (not logged one by one)",
        "210 more blocks with 2100 transactions final in the last 60 s, heights 270 to 479 (not logged one by one)",
    ]


def test_a_validator_flapping_its_link_during_a_stall_writes_at_most_four_lines_a_minute(
    lines: pytest.LogCaptureFixture,
) -> None:
    """Each flap changes what the stall line would say (no quorum / no agreement, who is missing):
    one dishonest validator could otherwise make every node write a WARNING a second."""
    log = progress()
    for second in range(1, 65 + 600):
        log.check(float(second), facts(linked=("bob", "carol") if second % 2 else ("bob",)))
    warnings = [record for record in lines.records if record.levelno == logging.WARNING]
    assert 10 <= len(warnings) <= 4 * 11
