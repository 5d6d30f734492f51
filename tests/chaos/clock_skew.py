"""Clock skew on one node process, with libfaketime.

The node is started with libfaketime preloaded, reading its offset from a file
that can be rewritten while the node runs (libfaketime re-reads it every
second), so skew is applied and healed like the other faults: as a step of the
wall clock, the way a clock corrected by NTP moves. Only the wall clock is
faked (``time.time_ns``, which the node dates proposals and arms its timers
by); the monotonic clock is left alone, since libfaketime's faked monotonic
sleeps hang Python 3.11 (its ``time.sleep`` fails outright under libfaketime
either way, and the node never calls it).
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time
from pathlib import Path

#: Where Debian's ``faketime`` package puts the library.
LIBRARY_PATTERNS = ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1")


def library() -> Path | None:
    for pattern in LIBRARY_PATTERNS:
        found = sorted(glob.glob(pattern))
        if found:
            return Path(found[0])
    return None


class ClockSkew:
    """The offset file of one node's faked wall clock."""

    def __init__(self, directory: Path) -> None:
        found = library()
        if found is None:
            raise FileNotFoundError("libfaketime is not installed (apt-get install faketime)")
        self._library = found
        self.path = directory / "faketime-offset"
        self.offset_seconds = 0
        self.set_offset(0)

    def environment(self) -> dict[str, str]:
        """Variables to start the node process with."""
        return {
            "LD_PRELOAD": str(self._library),
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_CACHE_DURATION": "1",
        }

    def set_offset(self, seconds: int) -> None:
        """Step the faked wall clock to ``seconds`` from the real one (within a second)."""
        partial = self.path.with_suffix(".partial")
        partial.write_text(f"{seconds:+d}s\n")
        os.replace(partial, self.path)
        self.offset_seconds = seconds


def unavailable_reason(directory: Path) -> str | None:
    """None when a Python process started with ``ClockSkew.environment()`` sees its
    ``time.time_ns`` follow the offset file; otherwise why not."""
    try:
        skew = ClockSkew(directory)
    except FileNotFoundError as error:
        return str(error)
    try:
        skew.set_offset(4)
        probe = "import time; print(time.time_ns())"
        before = time.time_ns()
        result = subprocess.run(
            [sys.executable, "-c", probe], env={**os.environ, **skew.environment()},
            capture_output=True, text=True, timeout=30,
        )
        after = time.time_ns()
        if result.returncode != 0:
            return f"a process under libfaketime fails: {result.stderr.strip()[-200:]}"
        seen = int(result.stdout)
        if not before + 3_000_000_000 <= seen <= after + 5_000_000_000:
            return f"libfaketime does not move time.time_ns here (offset seen: {(seen - before) / 1e9:+.1f} s)"
        return None
    finally:
        skew.path.unlink(missing_ok=True)
