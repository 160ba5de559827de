"""What the HTTP server writes about its clients: malformed requests at a bounded
rate and without tracebacks, and an optional, sampled access log.

Anyone who can reach the port can send garbage; each such request must not
cost a traceback in the log, nor let a flood of them fill the disk.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

#: Malformed-request lines allowed per minute; the rest are counted, not written.
BAD_REQUESTS_PER_MINUTE = 10
#: How much of a parser error message is kept (it may quote the client's bytes).
MAX_ERROR_TEXT = 120


class BadRequestFilter(logging.Filter):
    """Rate-limits the server's error lines and turns a malformed request into one line.

    Installed on the logger aiohttp's request handlers write to. A malformed
    request (a parser error) becomes a `bad_request` warning naming the client
    and the error; an unexpected error in a handler keeps its traceback, which
    is a bug worth seeing. Both share the budget; lines over it are counted and
    the next line written says how many were suppressed.
    """

    def __init__(
        self,
        per_minute: int = BAD_REQUESTS_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.tokens = self.capacity
        self.updated = clock()
        self.suppressed = 0

    def _allow(self) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.suppressed += 1
        return False

    def filter(self, record: logging.LogRecord) -> bool:
        """Let records below WARNING through; turn aiohttp's bad-request errors into one
        `bad_request` line without traceback, at most the bucket's rate, counting those left out.
        """
        if record.levelno < logging.WARNING:
            return True
        if not self._allow():
            return False
        suppressed, self.suppressed = self.suppressed, 0
        exc = record.exc_info[1] if record.exc_info else None
        client = record.args[0] if isinstance(record.args, tuple) and record.args else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = "bad_request", ()
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
            record.fields = {
                "client": client,
                "error": describe_bad_request(exc),
                "suppressed": suppressed or None,
            }
        else:
            record.msg, record.args = "request_error", ()
            record.fields = {"client": client, "suppressed": suppressed or None}
        return True


def describe_bad_request(exc: HttpProcessingError) -> str:
    """The parser's complaint, on one line and short: it may quote the client's bytes."""
    message = str(exc.message).strip().splitlines()
    text = message[0].strip() if message else ""
    if len(text) > MAX_ERROR_TEXT:
        text = text[: MAX_ERROR_TEXT - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def sampled_access_logger(
    share: float, rng: Callable[[], float] = random.random
) -> type[AbstractAccessLogger]:
    """An access logger that writes `share` of the requests (0 none, 1 all), one line each."""

    class SampledAccessLogger(AbstractAccessLogger):
        def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
            if share < 1 and rng() >= share:
                return
            path = request.path
            if len(path) > 200:
                path = path[:199] + "…"
            self.logger.info(
                "request",
                extra={
                    "fields": {
                        "method": request.method,
                        "path": path,
                        "status": response.status,
                        "ms": round(time * 1000, 1),
                        "client": request.remote,
                        "agent": (request.headers.get("User-Agent") or "")[:100] or None,
                    }
                },
            )

    return SampledAccessLogger
