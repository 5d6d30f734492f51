"""Times in a bond's terms file, and the dates a bond's first period is counted in: RFC 3339
times with ``Z`` or an offset, durations from now, and calendar dates in Japan time (UTC+9).
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from mura.cli.inputs import LAST_TIME_MS
from mura.cli.session import quoted

#: Japan's time (UTC+9, no daylight saving): a bond's dates are counted in it.
JAPAN = timezone(timedelta(hours=9), "JST")
_DURATION = re.compile(r"([0-9]{1,9})([smhd])")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_MOMENT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,3}))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def describe_value(value: Any) -> str:
    """What a value of the file is, for a message: its type in the file's words, and the value when short."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (true or false)"
    if isinstance(value, int):
        return f"the number {value}"
    if isinstance(value, float):
        return f"the floating-point number {value!r}"
    if isinstance(value, str):
        return f"the text {quoted(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime):
        return "a date and time"
    if isinstance(value, (date, time)):
        return f"a {'date' if isinstance(value, date) else 'time of day'}"
    return "nothing" if value is None else type(value).__name__


def is_duration(text: str) -> bool:
    """Whether a time is written as a duration from now (``90s``, ``10m``, ``2h``, ``30d``)."""
    return _DURATION.fullmatch(text) is not None


def read_moment(value: Any, now_ms: int) -> tuple[int | None, str | None]:
    """Milliseconds since the epoch of a time in a terms file, or the problem with it: RFC 3339
    text with ``Z`` or an offset, a duration from ``now_ms`` (``90s``, ``10m``, ``2h``, ``30d``),
    or a TOML date and time with its offset."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return None, f"{value.isoformat()} has no offset: add Z (UTC) or +09:00 (Japan)"
        if value.microsecond % 1000:
            return None, f"{value.isoformat()} is more precise than milliseconds"
        try:
            return _in_range(_milliseconds(value), value.isoformat())
        except OverflowError:
            return None, f"{value.isoformat()} is out of range: from 1970 to 9999"
    if isinstance(value, (date, time)):
        return None, f"{value.isoformat()} is not a date and time with its offset, like 2027-03-20T00:00:00+09:00"
    if not isinstance(value, str):
        return None, f"expected a time, got {describe_value(value)}"
    duration = _DURATION.fullmatch(value)
    if duration is not None:
        return _in_range(now_ms + int(duration.group(1)) * _UNIT_MS[duration.group(2)], quoted(value))
    match = _MOMENT.fullmatch(value)
    if match is None:
        return None, (f"{quoted(value)} is neither an RFC 3339 time like 2027-03-20T00:00:00Z or "
                      "2027-03-20T09:00:00+09:00 nor a duration from now like 90s, 10m, 2h or 30d")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    offset = timedelta(0)
    if match.group(9):
        offset = timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
        offset = -offset if match.group(9) == "-" else offset
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset))
    except ValueError as error:
        return None, f"{quoted(value)} is not a real date and time: {error}"
    try:
        timestamp_ms = _milliseconds(moment) + int((match.group(7) or "").ljust(3, "0"))
    except OverflowError:
        return None, f"{quoted(value)} is out of range: from 1970 to 9999"
    return _in_range(timestamp_ms, quoted(value))


def _in_range(timestamp_ms: int, shown: str) -> tuple[int | None, str | None]:
    """``timestamp_ms`` if it falls from 1970 to the end of 9999, else why not."""
    if not 0 <= timestamp_ms <= LAST_TIME_MS:
        return None, f"{shown} is out of range: from 1970 to 9999"
    return timestamp_ms, None


def _milliseconds(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def format_moment(timestamp_ms: int) -> str:
    """A time as RFC 3339 UTC text (milliseconds shown when not zero)."""
    moment = _EPOCH + timedelta(milliseconds=timestamp_ms)
    fraction = f".{timestamp_ms % 1000:03d}" if timestamp_ms % 1000 else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def japan_date(timestamp_ms: int) -> date:
    """The calendar date in Japan at a moment."""
    return (_EPOCH + timedelta(milliseconds=timestamp_ms)).astimezone(JAPAN).date()


def add_months(day: date, months: int) -> date:
    """The same day ``months`` calendar months later; a day the month lacks becomes its last
    (31 August plus 6 months is 28 or 29 February)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def is_regular_first_period(issue_ms: int, first_coupon_ms: int, frequency: int) -> bool:
    """Whether the first coupon falls exactly one regular period (12 / frequency calendar
    months) after the issue date, both dates in Japan time."""
    return japan_date(first_coupon_ms) == add_months(japan_date(issue_ms), 12 // frequency)


def actual_days(issue_ms: int, first_coupon_ms: int) -> int:
    """The actual days of an odd first period, counted as Japanese bonds count them: from the day
    after the issue date to the payment day, both dates in Japan time."""
    return (japan_date(first_coupon_ms) - japan_date(issue_ms)).days
