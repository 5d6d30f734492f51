"""Tests for p2p/logs.py: rate-limited warnings with counts, and aiohttp's server
log reduced to one line per client error."""

from __future__ import annotations

import logging

import pytest
from aiohttp.http_exceptions import BadHttpMessage

from mura.p2p.logs import ClientErrorLog, RateLimitedLog

from .conftest import wait_for

LOGGER = "mura.test.logs"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER]


def test_the_first_of_a_kind_at_once_then_one_line_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = Clock()
    throttled = RateLimitedLog(logging.getLogger(LOGGER), interval=10.0, clock=clock)
    for index in range(50):
        throttled.warning("handshake", "handshake %d failed", index)
        throttled.warning("malformed", "malformed frame %d", index)
        clock.now += 0.1
    assert lines(caplog) == ["handshake 0 failed", "malformed frame 0"]
    clock.now += 10.0
    throttled.warning("handshake", "handshake %d failed", 50)
    assert lines(caplog)[-1] == "handshake 50 failed (49 more in the last 15 s)"
    throttled.flush()
    assert lines(caplog)[-1] == "malformed frame 49 (49 more in the last 15 s)"
    throttled.flush()
    assert len(lines(caplog)) == 4, "nothing held back: flush writes nothing"


async def test_the_summary_comes_when_the_interval_ends(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    throttled = RateLimitedLog(logging.getLogger(LOGGER), interval=0.2)
    for index in range(1000):
        throttled.info(("peer", b"k"), "refused frame %d", index)
    assert lines(caplog) == ["refused frame 0"]
    await wait_for(lambda: len(lines(caplog)) == 2, "the summary line")
    assert lines(caplog)[1].startswith("refused frame 999 (999 more in the last")


def test_kinds_are_bounded_and_a_forgotten_kind_reports_its_count(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    throttled = RateLimitedLog(logging.getLogger(LOGGER), interval=10.0, max_kinds=2, clock=Clock())
    throttled.info("a", "a")
    throttled.info("a", "a again")
    throttled.info("b", "b")
    throttled.info("c", "c")
    assert lines(caplog) == ["a", "b", "a again (1 more in the last 0 s)", "c"]


def test_disabled_levels_cost_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    throttled = RateLimitedLog(logging.getLogger(LOGGER), clock=Clock())
    throttled.debug("kind", "not shown")
    throttled.warning("kind", "shown")
    assert lines(caplog) == ["shown"]


def test_client_errors_become_one_debug_line_and_bugs_keep_their_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    server_log = ClientErrorLog(logging.getLogger(LOGGER))
    for error in (BadHttpMessage("Invalid header token"), ConnectionResetError("Connection lost")):
        server_log.exception("Error handling request from %s", "192.0.2.1", exc_info=error)
    try:
        raise KeyError("a bug")
    except KeyError:
        server_log.exception("Unhandled exception")
    records = [record for record in caplog.records if record.name == LOGGER]
    assert [(record.levelno, record.exc_info is None) for record in records] == [
        (logging.DEBUG, True), (logging.DEBUG, True), (logging.ERROR, False)
    ]
    assert "192.0.2.1" in records[0].getMessage() and "Invalid header token" in records[0].getMessage()
    assert "\n" not in records[0].getMessage()


def test_invalid_rate_limited_log() -> None:
    with pytest.raises(ValueError):
        RateLimitedLog(logging.getLogger(LOGGER), interval=0)
