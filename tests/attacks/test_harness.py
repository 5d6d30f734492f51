"""The campaign's arithmetic on made-up observations: stalls, slow calls, log digests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mura.tests.attacks.harness import Scale, longest_stall, read_log, slowest_call


def calls(*samples: tuple[float, float | None, int | None]) -> list[list[Any]]:
    return [[sent, answered, height, None] for sent, answered, height in samples]


def test_the_longest_stall_is_the_widest_gap_between_new_heights_seen_on_any_node() -> None:
    observed = {
        "a": calls((0.0, 0.1, 5), (1.0, 1.1, 6), (2.0, 2.1, 6), (6.0, 6.1, 7)),
        # Another node reports height 7 earlier: the chain moved then.
        "b": calls((0.5, 0.6, 5), (4.0, 4.2, 7)),
    }
    gap, began = longest_stall(observed, start=0.5, end=5.0)
    assert round(gap, 6) == 3.1  # from height 6 at 1.1 to height 7 at 4.2
    assert round(began, 6) == 0.6


def test_a_chain_that_never_moves_stalls_for_the_whole_window() -> None:
    observed = {"a": calls((0.0, 0.1, 5), (1.0, 1.1, 5), (2.0, 2.1, 5))}
    assert longest_stall(observed, start=0.5, end=3.0) == (2.5, 0.0)


def test_an_unanswered_call_counts_with_the_time_it_waited() -> None:
    observed: dict[str, list[list[Any]]] = {"a": calls((1.0, 1.2, 5), (2.0, None, None)),
                                            "b": [[1.5, 1.6, None, "ClientError"]]}
    slowest, failures = slowest_call(observed, start=0.0, end=3.0, stopped=9.0)
    assert (slowest, failures) == (7.0, 1)


def test_scale_one_is_quick_and_ten_is_full_strength() -> None:
    assert Scale(1).count(2, 15) == 2
    assert Scale(10).count(2, 15) == 15
    assert Scale(5.5).grow(0, 9) == 4.5


def test_the_log_reader_counts_lines_tracebacks_bans_and_disconnects(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    log.write_text(
        "2024-05-01 10:00:00,001 INFO    mura.node: final block 3: 0 transactions, view 0, 12 ms after its proposal\n"
        "2024-05-01 10:00:00,002 WARNING mura.p2p.network: banning peer 0a1b2c3d at 127.0.0.2:5555 for 60 s: more\n"
        "2024-05-01 10:00:00,003 INFO    mura.p2p.registry: disconnected from peer 0a1b2c3d at 127.0.0.2:5555: banned\n"
        "2024-05-01 10:00:00,004 ERROR   aiohttp.server: Error handling request\n"
        "2024-05-01 10:00:00,005 WARNING mura.p2p.network: peer 0a1b2c3d at 127.0.0.2:5555 cannot keep up, "
        "disconnecting: 476 frames (67049139 bytes) are waiting and none may be dropped\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "ValueError: boom\n"
    )
    skipped = len(log.read_text().splitlines()[0]) + 1
    stats, end = read_log(log, skipped)
    assert end == log.stat().st_size
    assert (stats.lines, stats.tracebacks) == (7, 1)
    assert stats.levels == {"WARNING": 2, "INFO": 1, "ERROR": 1}
    assert stats.overflows == [("0a1b2c3d", 476, 67049139)]
    assert stats.bans == [("0a1b2c3d", "127.0.0.2:5555")]
    assert stats.disconnects == [("0a1b2c3d", "banned")]
    assert stats.count("banning peer") == 1
