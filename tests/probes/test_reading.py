"""The one read-until rule: a match as soon as it has arrived, else the end, the cap
or, when nothing is looked for, a time limit. The sources here hand out scripted chunks: the rule is about
where chunk boundaries fall, which a real socket does not let a test choose."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable

import pytest

from probes.reading import Ended, Reading, read_until, text_matcher

# Generous: this only tells a hung reading from a working one.
WAIT = 5.0


def scripted(*chunks: bytes, then_wait: bool = False) -> Callable[[int], Awaitable[bytes]]:
    """A source that hands out `chunks` (cut to what is asked), then its end or,
    with `then_wait`, nothing ever again, like a stream that stays open."""
    pending = list(chunks)

    async def read(most: int) -> bytes:
        if pending:
            chunk = pending.pop(0)
            if len(chunk) > most:
                pending.insert(0, chunk[most:])
            return chunk[:most]
        if then_wait:
            await asyncio.Event().wait()
        return b""

    return read


@pytest.mark.parametrize(
    ("chunks", "limit", "matcher", "expected"),
    [
        pytest.param(
            [b"data: status ok\n", b"more"],
            100,
            text_matcher("status ok"),
            Reading(b"data: status ok\n", Ended.MATCH),
            id="stops-at-the-first-match",
        ),
        pytest.param(
            [b'{"status"', b': "ok"}'],
            100,
            text_matcher(pattern=re.compile(r'"status": "ok"')),
            Reading(b'{"status": "ok"}', Ended.MATCH),
            id="pattern-across-two-chunks",
        ),
        pytest.param(
            [b"sta", b"tus", b" ok"],
            100,
            text_matcher("status ok"),
            Reading(b"status ok", Ended.MATCH),
            id="text-across-three-chunks",
        ),
        pytest.param(
            [b"ready", b"\n"],
            100,
            text_matcher("ready", re.compile("^ready$", re.MULTILINE)),
            Reading(b"ready", Ended.MATCH),
            id="both-must-hold",
        ),
        pytest.param(
            [b"busy", b"..."],
            100,
            text_matcher("ok"),
            Reading(b"busy...", Ended.END),
            id="no-match-until-the-end",
        ),
        pytest.param(
            [b"x" * 60, b"x" * 60, b"ok"],
            100,
            text_matcher("ok"),
            Reading(b"x" * 100, Ended.CAP),
            id="text-after-the-cap-is-never-read",
        ),
        pytest.param(
            [b"x" * 99, b"ok"],
            100,
            text_matcher("ok"),
            Reading(b"x" * 99 + b"o", Ended.CAP),
            id="text-cut-by-the-cap",
        ),
        pytest.param(
            [b"caf\xc3", b"\xa9"],
            100,
            text_matcher("café"),
            Reading(b"caf\xc3\xa9", Ended.MATCH),
            id="utf8-character-across-chunks",
        ),
        pytest.param(
            [b"abc", b"def"], 100, None, Reading(b"abcdef", Ended.END), id="nothing-looked-for"
        ),
    ],
)
async def test_read_until(
    chunks: list[bytes],
    limit: int,
    matcher: Callable[[bytes], bool] | None,
    expected: Reading,
) -> None:
    assert await asyncio.wait_for(read_until(scripted(*chunks), limit, matcher), WAIT) == expected


async def test_a_match_in_a_stream_that_stays_open_needs_no_end() -> None:
    source = scripted(b"event: ping\n", b"data: status ok\n\n", then_wait=True)
    reading = await asyncio.wait_for(read_until(source, 100, text_matcher("status ok")), WAIT)
    assert reading.ended is Ended.MATCH


async def test_nothing_looked_for_stops_when_its_time_is_up() -> None:
    source = scripted(b"data: 1\n\n", then_wait=True)
    reading = await asyncio.wait_for(read_until(source, 100, within=0.05), WAIT)
    assert reading == Reading(b"data: 1\n\n", Ended.TIME)


async def test_a_time_limit_never_ends_a_wait_for_evidence() -> None:
    # Only the runner's deadline ends a wait for a match.
    source = scripted(b"data: 1\n\n", then_wait=True)
    task = asyncio.create_task(read_until(source, 100, text_matcher("ok"), within=0.01))
    done, _ = await asyncio.wait({task}, timeout=0.2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert not done
