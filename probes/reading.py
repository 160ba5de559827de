"""The one rule for reading a peer's bytes until they prove a point.

Every probe that reads an answer to look for something in it (http's
`body_contains` / `body_regex`, tcp's `expect`) reads with `read_until`: it
stops as soon as what has arrived matches, and otherwise only at the end of
the data, at the byte cap, or when the runner's deadline cancels the run.
So a server that sends its status words at once and keeps the answer open
(server-sent events, a long poll, a chunked answer that never ends) is judged
on what it sent, not on when it hangs up.

The whole buffer read so far (never more than the cap) is tested after each
chunk, so a pattern split across two chunks still matches. The file probe's
`read_head` reads a bounded prefix of a regular file the same way but in one
go: a file has an end, and the wait for it is never open-ended.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import re
from collections.abc import Awaitable, Callable

__all__ = ["Ended", "Matcher", "Reading", "Source", "read_until", "text_matcher"]

#: Returns the next chunk of at most the given number of bytes; b"" at the end.
Source = Callable[[int], Awaitable[bytes]]
#: Tells whether the bytes read so far hold what is looked for.
Matcher = Callable[[bytes], bool]


class Ended(enum.Enum):
    """Why a reading stopped."""

    MATCH = "match"  # what has arrived matches
    END = "end"  # the peer sent everything it had (EOF, the end of the body)
    CAP = "cap"  # the byte cap is reached with more to come
    TIME = "time"  # the time allowed for a reading that looks for nothing is up


@dataclasses.dataclass(frozen=True, slots=True)
class Reading:
    """What was read (at most the cap) and why the reading stopped."""

    data: bytes
    ended: Ended


async def read_until(
    source: Source,
    limit: int,
    matches: Matcher | None = None,
    *,
    within: float | None = None,
) -> Reading:
    """Read from `source` until `matches` holds, the end, or `limit` bytes.

    `matches` is tried on everything read so far after each chunk. `within`
    (seconds) bounds a reading that looks for nothing; with a matcher it is
    ignored, since only the runner's deadline may end a wait for evidence.
    Errors of `source` propagate.
    """
    loop = asyncio.get_running_loop()
    deadline = None if matches is not None or within is None else loop.time() + within
    buffer = bytearray()
    while len(buffer) < limit:
        wait = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            chunk = await asyncio.wait_for(source(limit - len(buffer)), wait)
        except TimeoutError:
            return Reading(bytes(buffer), Ended.TIME)
        if not chunk:
            return Reading(bytes(buffer), Ended.END)
        buffer += chunk[: limit - len(buffer)]
        if matches is not None and matches(bytes(buffer)):
            return Reading(bytes(buffer), Ended.MATCH)
    return Reading(bytes(buffer), Ended.CAP)


def text_matcher(contains: str | None = None, pattern: re.Pattern[str] | None = None) -> Matcher:
    """A matcher for bytes read as UTF-8 (invalid bytes read as U+FFFD):
    true when the text holds `contains` and `pattern` finds a match (each if given)."""

    def matches(data: bytes) -> bool:
        text = data.decode("utf-8", errors="replace")
        if contains is not None and contains not in text:
            return False
        return pattern is None or pattern.search(text) is not None

    return matches
