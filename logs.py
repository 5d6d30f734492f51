"""How the node writes its log: one human-readable line per event, or one JSON
object per line for a log collector (``log.format``)."""

from __future__ import annotations

import json
import logging
import sys


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra`` fields."""

    _standard = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry |= {key: value for key, value in vars(record).items() if key not in self._standard}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(*, level: str, json_format: bool, name: str = "") -> None:
    handler = logging.StreamHandler(sys.stderr)
    prefix = f"{name} " if name else ""
    text_format = f"%(asctime)s {prefix}%(levelname)-7s %(name)s: %(message)s"
    handler.setFormatter(JsonFormatter() if json_format else logging.Formatter(text_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
