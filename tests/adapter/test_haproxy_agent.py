"""HAProxy's agent check: the line for each verdict, and the listener that writes it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapter.haproxy_agent import MAX_COMMENT, HaproxyAgent, agent_line
from adapter.health import Verdict, judge, shutting_down
from adapter.state import CheckState
from tests.adapter.test_health import check, state_after

DB, CACHE = check("db"), check("cache", critical=False)


def ready(db: CheckState, cache: CheckState, drain: str | None = None) -> Verdict:
    verdict = judge([DB, CACHE], {"db": db, "cache": cache}, 100.0)
    return shutting_down(verdict, drain) if drain else verdict


PASS, FAIL = state_after("pass"), state_after("fail")


@pytest.mark.parametrize(
    ("verdict", "details", "line"),
    [
        (ready(PASS, PASS), True, b"up ready 100%\n"),
        (ready(PASS, FAIL), True, b"up ready 40% #degraded: cache\n"),
        (ready(PASS, FAIL), False, b"up ready 40%\n"),
        (ready(FAIL, PASS), True, b"down #db: it is fail\n"),
        (ready(FAIL, FAIL), True, b"down #db: it is fail\n"),
        (ready(FAIL, PASS), False, b"down #not ready\n"),
        (ready(PASS, PASS, "shutting down"), True, b"drain #shutting down\n"),
        (ready(PASS, FAIL, "shutting down"), True, b"drain #shutting down\n"),
        (ready(PASS, PASS, "draining: drain file /d exists"), False, b"drain #draining\n"),
        # Never up, never drain while the application's own readiness fails.
        (ready(FAIL, PASS, "shutting down"), True, b"down #db: it is fail\n"),
        (ready(CheckState(), PASS), True, b"down #db: no result yet\n"),
        (judge([], {}, 100.0), True, b"up ready 100%\n"),
    ],
    ids=[
        "pass",
        "warn-takes-the-warn-weight",
        "warn-without-details",
        "critical-failure",
        "critical-and-optional-failures-name-the-critical",
        "failure-without-details",
        "shutting-down",
        "shutting-down-while-degraded",
        "drain-file-without-details",
        "failure-wins-over-drain",
        "no-result-yet-is-not-ready",
        "no-ready-checks",
    ],
)
def test_the_line_for_each_verdict(verdict: Verdict, details: bool, line: bytes) -> None:
    assert agent_line(verdict, warn_weight=40, details=details) == line


@pytest.mark.parametrize(
    "output",
    ["line one\nup ready 100%", "\x1b[31mred\x00", "caf\u00e9 \u202e reversed", "x" * 5000],
    ids=["newline", "control-bytes", "non-ascii", "huge"],
)
def test_a_hostile_output_stays_one_bounded_ascii_line(output: str) -> None:
    failing = state_after("fail")
    last = failing.last
    assert last is not None
    hostile = CheckState(
        status=failing.status,
        last=type(last)(
            type(last.result)("fail", output=output),
            last.started,
            last.duration,
            last.finished,
        ),
    )
    line = agent_line(judge([DB], {"db": hostile}, 100.0), warn_weight=50)
    assert line.startswith(b"down #db: ") and line.endswith(b"\n")
    assert line.count(b"\n") == 1 and line.isascii()
    assert all(32 <= byte < 127 for byte in line[:-1])
    assert len(line) <= len(b"down #") + MAX_COMMENT + 1


@pytest.fixture
async def agent() -> AsyncIterator[HaproxyAgent]:
    verdicts = {"now": ready(PASS, PASS)}
    agent = HaproxyAgent(lambda: verdicts["now"], warn_weight=40, max_connections=4, linger=0.5)
    agent.verdicts = verdicts  # type: ignore[attr-defined]
    await agent.start("127.0.0.1", 0)
    yield agent
    await agent.stop()


async def ask(agent: HaproxyAgent, send: bytes = b"") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", agent.port)
    if send:
        writer.write(send)
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def test_each_connection_gets_the_verdict_of_its_moment(agent: HaproxyAgent) -> None:
    assert await ask(agent) == b"up ready 100%\n"
    agent.verdicts["now"] = ready(FAIL, PASS)  # type: ignore[attr-defined]
    assert await ask(agent) == b"down #db: it is fail\n"
    agent.verdicts["now"] = ready(PASS, PASS, "shutting down")  # type: ignore[attr-defined]
    assert await ask(agent) == b"drain #shutting down\n"


async def test_what_the_client_sends_does_not_change_the_answer(agent: HaproxyAgent) -> None:
    # HAProxy's agent-send, and anything else.
    assert await ask(agent, b"hello haproxy\n") == b"up ready 100%\n"
    assert await ask(agent, bytes(range(256)) * 100) == b"up ready 100%\n"


async def test_stop_closes_the_port(agent: HaproxyAgent) -> None:
    port = agent.port
    await agent.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
