"""Structured, one-line logs: logfmt for people, JSON lines for collectors.

Callers pass their fields as `extra={"fields": {...}}`; the message is the
event name (`check_transition`, `started`, …).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

from adapter.formats.printable import json_escaped, printable

FORMATS = ("text", "json")


def _timestamp(created: float) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{whole}.{int(created % 1 * 1000):03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "time": _timestamp(record.created),
        "level": record.levelname.lower(),
        "event": record.getMessage(),
    }
    extra = getattr(record, "fields", None) or {}
    fields.update((key, value) for key, value in extra.items() if value is not None)
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        fields["error"] = f"{type(exc).__name__}: {exc}"
    return fields


class LogfmtFormatter(logging.Formatter):
    """`key=value` lines (logfmt); an internal error keeps its traceback, indented below."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one logfmt line (and its traceback, for an error)."""
        line = " ".join(f"{key}={_logfmt_value(value)}" for key, value in _fields(record).items())
        if record.exc_info and record.levelno >= logging.ERROR:
            # Unexpected internal errors keep their traceback, indented under the line.
            trace = self.formatException(record.exc_info).replace("\n", "\n  ")
            line = f"{line}\n  {trace}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line; an internal error's traceback goes in `traceback`."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON object; what is not printable is escaped."""
        fields = _fields(record)
        if record.exc_info and record.levelno >= logging.ERROR:
            fields["traceback"] = self.formatException(record.exc_info)
        # Non-ASCII text stays readable; what is not printable (U+202E, U+2028) is escaped.
        return json_escaped(json.dumps(fields, default=str, ensure_ascii=False))


def _logfmt_value(value: Any) -> str:
    if value is None:
        return '""'
    text = value if isinstance(value, str) else str(value)
    if text and not any(c in text for c in ' ="\\') and text.isprintable():
        return text
    # Every character that is not printable escaped (adapter.formats.printable, the
    # rule of every answer too): a value (a URL, a probe's output) must never start
    # a line of its own or rewrite the terminal's line.
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{printable(quoted)}"'


def configure(fmt: str = "text", level: str | int = "INFO", stream: TextIO | None = None) -> None:
    """Send the adapter's logs to `stream` (stderr) in `fmt`, one line per event."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger("health_adapter")
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    root.propagate = False
    # aiohttp's own loggers write through the same handler, at warning and above.
    for name in ("aiohttp.server", "aiohttp.web", "aiohttp.internal"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.WARNING)
        logger.propagate = False


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log the event `name` with `fields` (`check=api old=pass new=fail`), as
    both formatters write them; `level` defaults to INFO.
    """
    logger.log(level, name, extra={"fields": fields})
