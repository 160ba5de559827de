"""Kept answers: reused between changes, and never once the truth has moved on."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from adapter import server
from adapter.answers import Answer, AnswerCache
from adapter.config import parse_config
from adapter.formats.outputs import Output, Page, output_for
from adapter.health import SHUTTING_DOWN, Verdict
from adapter.negotiation import Format
from adapter.server import DRAIN, make_app
from adapter.state import Run, StateStore
from probes import Result

Client = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]

TOKEN = "a-token-of-24-characters"
CONFIG = """
checks:
  - {name: api, interval: 1s, timeout: 1s, plugin: {class: "tests.sample_probes:Ok"}}
  - {name: disk, groups: [live, ready], interval: 10s, timeout: 1s,
     plugin: {class: "tests.sample_probes:Ok"}}
"""


def run(status: str, finished: float) -> Run:
    return Run(
        Result(status, output=f"it is {status}"),
        started=time.time(),
        duration=0.01,
        finished=finished,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> StateStore:
    store = StateStore(["api", "disk"])
    store.record("api", run("pass", clock.now))
    store.record("disk", run("pass", clock.now))
    return store


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> Counter[Format]:
    """How many times each format has rendered an answer (full or verdict only)."""
    counts: Counter[Format] = Counter()

    def counting(format_: Format) -> Output:
        output = output_for(format_)

        def render(verdict: Verdict, page: Page) -> bytes:
            counts[format_] += 1
            return output.render(verdict, page)

        return dataclasses.replace(output, render=render)

    monkeypatch.setattr(server, "output_for", counting)
    return counts


@pytest.fixture
async def client(aiohttp_client: Client, store: StateStore, clock: Clock) -> TestClient[Any, Any]:
    config = parse_config(CONFIG, environ={})
    return await aiohttp_client(make_app(config, run_checks=False, store=store, clock=clock))


async def body(client: TestClient[Any, Any], path: str, **headers: str) -> tuple[int, str]:
    response = await client.get(path, headers=headers)
    return response.status, await response.text()


async def test_same_answer_until_a_run_is_recorded(
    client: TestClient[Any, Any], store: StateStore, clock: Clock, renders: Counter[Format]
) -> None:
    first = await body(client, "/health")
    for _ in range(5):
        assert first == await body(client, "/health")
    assert renders[Format.JSON] == 1  # judged and rendered once for six requests
    store.record("api", run("fail", clock.now))
    status, text = await body(client, "/health")
    assert status == 503 and "it is fail" in text
    assert renders[Format.JSON] == 2


@pytest.mark.parametrize(
    ("path", "kept"),
    [
        ("/health", True),
        ("/readyz?format=text", True),
        ("/livez?format=nagios", True),
        ("/health/api", True),
        ("/livez/disk?format=text", True),
        ("/", False),  # the page tells how long ago things happened
        ("/metrics", False),  # with the adapter's own process figures
        ("/health?format=openmetrics", False),
    ],
    ids=[
        "health",
        "readyz-text",
        "livez-nagios",
        "one-check",
        "one-check-text",
        "page",
        "metrics",
        "openmetrics",
    ],
)
async def test_kept_formats_render_once_per_change_and_the_others_every_time(
    client: TestClient[Any, Any], renders: Counter[Format], path: str, kept: bool
) -> None:
    for _ in range(3):
        assert (await body(client, path))[0] == 200
    assert sum(renders.values()) == (1 if kept else 3)


async def test_a_check_turning_stale_is_seen_without_any_new_run(
    client: TestClient[Any, Any], clock: Clock, renders: Counter[Format]
) -> None:
    assert (await body(client, "/health"))[0] == 200
    clock.now += 3 * 1 + 1 - 0.1  # api: just inside 3 intervals + timeout
    assert (await body(client, "/health"))[0] == 200
    assert renders[Format.JSON] == 1
    clock.now += 0.2
    status, text = await body(client, "/health")
    assert status == 503 and "stale" in text
    # Stale answers tell their age, so each is rendered afresh.
    clock.now += 5
    assert "stale: the last result is 9.1s old" in (await body(client, "/health"))[1]
    assert renders[Format.JSON] == 3


async def test_one_check_answers_follow_its_runs_and_its_staleness(
    client: TestClient[Any, Any], store: StateStore, clock: Clock
) -> None:
    first = await body(client, "/health/api")
    assert first[0] == 200 and first == await body(client, "/health/api")
    assert (await body(client, "/livez/disk"))[0] == 200
    assert (await body(client, "/livez/api"))[0] == 404  # api is not in live
    store.record("api", run("fail", clock.now))
    status, text = await body(client, "/health/api")
    assert status == 503 and "it is fail" in text
    assert (await body(client, "/health/disk"))[0] == 200
    clock.now += 3 * 10 + 1 + 0.1  # disk: past 3 intervals + timeout
    status, text = await body(client, "/livez/disk")
    assert status == 503 and "stale" in text
    assert (await body(client, "/health/nope"))[0] == 404


async def test_draining_is_seen_at_once(client: TestClient[Any, Any]) -> None:
    assert (await body(client, "/readyz"))[0] == 200
    client.app[DRAIN].begin(SHUTTING_DOWN)  # type: ignore[index]
    assert (await body(client, "/readyz"))[0] == 503
    assert (await body(client, "/livez"))[0] == 200


@pytest.mark.parametrize(
    ("path", "headers", "starts"),
    [
        ("/health", {}, '{"status":"pass"'),
        ("/health", {"Accept": "text/plain"}, "[+]api ok"),
        ("/health?format=nagios", {}, "HEALTH OK"),
        ("/health?exclude=api", {}, '{"status":"pass"'),
        ("/readyz?verbose", {}, "[+]api ok"),
        ("/livez?verbose", {}, "[+]disk ok"),
    ],
    ids=["json", "accept-text", "nagios", "exclude", "readyz-verbose", "livez-verbose"],
)
async def test_each_variant_is_kept_apart(
    client: TestClient[Any, Any], path: str, headers: dict[str, str], starts: str
) -> None:
    # Fill the cache with every other variant first: none may answer for this one.
    for other in (
        "/health",
        "/health?format=nagios",
        "/readyz?verbose",
        "/livez?verbose",
        "/health?exclude=api",
    ):
        await body(client, other)
        await body(client, other, Accept="text/plain")
    status, text = await body(client, path, **headers)
    assert status == 200 and text.startswith(starts)
    if "exclude" in path:
        assert '"api"' not in text.partition('"checks"')[2]


async def test_details_tier_is_part_of_the_key(
    aiohttp_client: Client, store: StateStore, clock: Clock
) -> None:
    config = parse_config("server: {details: token, token_env: T}\n" + CONFIG, environ={"T": TOKEN})
    client = await aiohttp_client(make_app(config, run_checks=False, store=store, clock=clock))
    assert await body(client, "/health", Authorization=f"Bearer {TOKEN}") != await body(
        client, "/health"
    )
    assert await body(client, "/health") == (200, '{"status":"pass"}')
    assert "it is pass" in (await body(client, "/health", Authorization=f"Bearer {TOKEN}"))[1]


def test_cache_forgets_on_version_config_and_time() -> None:
    config, other = (parse_config(CONFIG, environ={}) for _ in range(2))
    cache = AnswerCache(max_answers=2)
    answer = Answer(200, b"x", {})
    cache.put("k", answer, version=1, config=config, valid_until=10.0)
    assert cache.get("k", 1, config, now=5.0) is answer
    assert cache.get("k", 2, config, now=5.0) is None
    assert cache.get("k", 1, other, now=5.0) is None
    assert cache.get("k", 1, config, now=10.0) is None
    cache.put("a", answer, 1, config, 10.0)
    cache.put("b", answer, 1, config, 10.0)  # over the cap: everything else goes
    assert cache.get("k", 1, config, now=5.0) is None
    assert cache.get("b", 1, config, now=5.0) is answer
