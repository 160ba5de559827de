"""The endpoints, driven through a real aiohttp test client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from adapter.config import Config
from adapter.server import LIFECYCLE, make_app
from adapter.state import Run, StateStore
from probes import Result
from tests import sample_probes

Client = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]

CONFIG = """
service: orders-api
checks:
  - {name: api, interval: 100ms, plugin: {class: "tests.sample_probes:Switch", key: api}}
  - {name: heartbeat, groups: [live, ready], interval: 100ms,
     plugin: {class: "tests.sample_probes:Switch", key: heartbeat}}
  - {name: cache, critical: false, interval: 100ms,
     plugin: {class: "tests.sample_probes:Switch", key: cache}}
"""


async def settle(client: TestClient[Any, Any], path: str, status: int) -> Any:
    """Poll until `path` answers `status` (runs happen in the background)."""
    for _ in range(200):
        response = await client.get(path)
        if response.status == status:
            return response
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} never answered {status}")


@pytest.fixture
async def client(aiohttp_client: Client, make_config: Callable[[str], Config]
                 ) -> TestClient[Any, Any]:
    return await aiohttp_client(make_app(make_config(CONFIG)))


async def test_health_passes_with_health_json(client: TestClient[Any, Any]) -> None:
    response = await settle(client, "/health", 200)
    assert response.content_type == "application/health+json"
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json(content_type=None)
    assert body["status"] == "pass" and body["serviceId"] == "orders-api"
    assert set(body["checks"]) == {"api", "heartbeat", "cache"}
    (api,) = body["checks"]["api"]
    assert api["status"] == "pass" and api["output"] == "switch says pass"
    assert api["time"].endswith("Z") and api["componentType"] == "plugin"


async def test_a_failing_critical_check_fails_health(client: TestClient[Any, Any]) -> None:
    await settle(client, "/health", 200)
    sample_probes.SWITCHES["api"] = "fail"
    response = await settle(client, "/health", 503)
    body = await response.json(content_type=None)
    assert body["status"] == "fail"
    assert body["checks"]["api"][0]["reason"] == "failed"
    # /livez does not include api.
    assert (await client.get("/livez")).status == 200
    assert (await client.get("/readyz")).status == 503


async def test_non_critical_failure_warns_but_answers_200(client: TestClient[Any, Any]) -> None:
    await settle(client, "/health", 200)
    sample_probes.SWITCHES["cache"] = "fail"
    for _ in range(200):
        body = await (await client.get("/health")).json(content_type=None)
        if body["status"] == "warn":
            break
        await asyncio.sleep(0.02)
    response = await client.get("/health")
    assert response.status == 200
    body = await response.json(content_type=None)
    assert body["status"] == "warn"
    assert body["checks"]["cache"][0] == body["checks"]["cache"][0] | {
        "status": "fail", "critical": False}
    # The check's own endpoint reports its own status.
    assert (await client.get("/health/cache")).status == 503


async def test_warn_answers_200(client: TestClient[Any, Any]) -> None:
    sample_probes.SWITCHES["api"] = "warn"
    response = await settle(client, "/health", 200)
    for _ in range(200):
        body = await response.json(content_type=None)
        if body["status"] == "warn":
            break
        await asyncio.sleep(0.02)
        response = await client.get("/health")
    assert response.status == 200 and body["status"] == "warn"


async def test_one_check(client: TestClient[Any, Any]) -> None:
    response = await settle(client, "/health/heartbeat", 200)
    body = await response.json(content_type=None)
    assert body["status"] == "pass" and list(body["checks"]) == ["heartbeat"]
    missing = await client.get("/health/nope")
    assert missing.status == 404
    assert "no check named 'nope'" in await missing.text()


async def test_groups_and_verbose_text(client: TestClient[Any, Any]) -> None:
    await settle(client, "/health", 200)
    sample_probes.SWITCHES["api"] = "fail"
    response = await settle(client, "/readyz?verbose", 503)
    assert response.content_type == "text/plain"
    text = await response.text()
    assert text.splitlines() == [
        "[-]api failed: switch says fail",
        "[+]heartbeat ok",
        "[+]cache ok",
        "readyz check failed",
    ]
    live = await client.get("/livez?verbose")
    assert live.status == 200
    assert await live.text() == "[+]heartbeat ok\nlivez check passed\n"


async def test_head_answers_status_without_body(client: TestClient[Any, Any]) -> None:
    await settle(client, "/health", 200)
    response = await client.head("/health")
    assert response.status == 200
    assert await response.read() == b""
    sample_probes.SWITCHES["api"] = "fail"
    await settle(client, "/health", 503)
    assert (await client.head("/health")).status == 503
    assert (await client.head("/readyz")).status == 503


async def test_only_get_and_head(client: TestClient[Any, Any]) -> None:
    for method in ("POST", "PUT", "DELETE"):
        assert (await client.request(method, "/health")).status == 405


async def test_before_any_result_everything_fails_as_not_ready(
    aiohttp_client: Client, make_config: Callable[[str], Config]
) -> None:
    config = make_config(CONFIG)
    client = await aiohttp_client(make_app(config, run_checks=False))
    response = await client.get("/health")
    assert response.status == 503
    body = await response.json(content_type=None)
    assert body["checks"]["api"][0] == {"status": "fail", "componentType": "plugin",
                                        "output": "no result yet", "reason": "no_result"}


async def test_stale_results_fail(aiohttp_client: Client,
                                  make_config: Callable[[str], Config]) -> None:
    config = make_config("checks: [{name: a, interval: 1s, timeout: 1s, "
                         "plugin: {class: 'tests.sample_probes:Ok'}}]")
    now = [1000.0]
    store = StateStore(["a"])
    store.record("a", Run(Result("pass"), started=time.time(), duration=0.01, finished=1000.0))
    client = await aiohttp_client(make_app(config, run_checks=False, store=store,
                                           clock=lambda: now[0]))
    assert (await client.get("/health")).status == 200
    now[0] += 3.9
    assert (await client.get("/health")).status == 200
    now[0] += 0.2
    response = await client.get("/health")
    assert response.status == 503
    entry = (await response.json(content_type=None))["checks"]["a"][0]
    assert entry["reason"] == "stale" and entry["output"].startswith("stale:")


async def test_requests_never_run_probes(aiohttp_client: Client,
                                         make_config: Callable[[str], Config]) -> None:
    config = make_config("checks: [{name: a, interval: 1h, "
                         "plugin: {class: 'tests.sample_probes:Counting', key: polled}}]")
    client = await aiohttp_client(make_app(config))
    await settle(client, "/health", 200)
    for path in ["/health", "/health/a", "/readyz", "/livez", "/readyz?verbose"] * 20:
        await client.get(path)
    assert sample_probes.COUNTS["polled"] == 1


async def test_health_stays_fast_while_a_sync_probe_sleeps_past_its_timeout(
    aiohttp_client: Client, make_config: Callable[[str], Config]
) -> None:
    config = make_config("""
checks:
  - {name: ok, interval: 100ms, plugin: {class: "tests.sample_probes:Ok"}}
  - {name: sleepy, interval: 100ms, timeout: 200ms,
     plugin: {class: "tests.sample_probes:SleepSync", sleep: 3}}
""")
    client = await aiohttp_client(make_app(config))
    response = await settle(client, "/health", 503)
    slowest = 0.0
    for _ in range(30):
        begin = time.monotonic()
        response = await client.get("/health")
        slowest = max(slowest, time.monotonic() - begin)
        await asyncio.sleep(0.03)
    assert slowest < 0.5  # generous: it is a memory read, not a probe run
    body = await response.json(content_type=None)
    assert body["checks"]["ok"][0]["status"] == "pass"
    assert body["checks"]["sleepy"][0]["output"] in {
        "timed out after 200ms", "previous run still running (timed out after 200ms)"}


async def test_draining_flips_readyz_only(client: TestClient[Any, Any]) -> None:
    await settle(client, "/readyz", 200)
    client.app[LIFECYCLE].draining = True  # type: ignore[index]
    assert (await client.get("/readyz")).status == 503
    assert "[-]shutdown in progress" in await (await client.get("/readyz?verbose")).text()
    assert (await client.get("/livez")).status == 200


async def test_status_codes_follow_the_config(aiohttp_client: Client,
                                              make_config: Callable[[str], Config]) -> None:
    config = make_config("""
server: {status_codes: {warn: 429, fail: 500}}
checks:
  - {name: a, interval: 100ms, plugin: {class: "tests.sample_probes:Switch", key: a}}
""")
    client = await aiohttp_client(make_app(config))
    await settle(client, "/health", 200)
    sample_probes.SWITCHES["a"] = "warn"
    await settle(client, "/health", 429)
    assert (await client.get("/readyz?verbose")).status == 429
    sample_probes.SWITCHES["a"] = "fail"
    await settle(client, "/health", 500)
    assert (await client.get("/health/a")).status == 500
