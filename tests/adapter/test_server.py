"""The endpoints, driven through a real aiohttp test client."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from adapter.config import Config
from adapter.health import SHUTTING_DOWN
from adapter.lifecycle import log_empty_groups
from adapter.server import DRAIN, make_app
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


async def every_check_ran(client: TestClient[Any, Any]) -> None:
    """Poll until each check has a first result: first runs are spread over a moment,
    and a non-critical check without one only warns, so a 200 alone does not say so."""
    for _ in range(500):
        body = await (await client.get("/health")).json(content_type=None)
        if all(entry[0].get("reason") != "no_result" for entry in body["checks"].values()):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("some check never ran")


@pytest.fixture
async def client(
    aiohttp_client: Client, make_config: Callable[[str], Config]
) -> TestClient[Any, Any]:
    client = await aiohttp_client(make_app(make_config(CONFIG)))
    await every_check_ran(client)
    return client


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
        "status": "fail",
        "critical": False,
    }
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


#: Every path the adapter answers, written out: a route lost from the table fails here.
ROUTED = [
    "/",
    *(
        spelling
        for path in [
            "/health",
            "/health/api",
            "/livez",
            "/livez/heartbeat",
            "/readyz",
            "/readyz/heartbeat",
            "/startupz",
            "/startupz/api",
            "/metrics",
        ]
        for spelling in (path, path + "/")
    ),
]


@pytest.mark.parametrize("path", ROUTED)
async def test_every_route_answers_get_and_head_and_nothing_else(
    aiohttp_client: Client, make_config: Callable[[str], Config], path: str
) -> None:
    store = StateStore(["api", "heartbeat", "cache"])
    app = make_app(make_config(CONFIG), run_checks=False, store=store)
    client = await aiohttp_client(app)
    assert (await client.get(path, allow_redirects=False)).status in (200, 503)
    assert (await client.head(path, allow_redirects=False)).status in (200, 503)
    for method in ("POST", "PUT", "DELETE"):
        assert (await client.request(method, path)).status == 405


def test_no_route_is_left_out_of_the_list(make_config: Callable[[str], Config]) -> None:
    app = make_app(make_config(CONFIG), run_checks=False)
    named = {path.replace("/api", "/{name}").replace("/heartbeat", "/{name}") for path in ROUTED}
    routed = {resource.canonical for resource in app.router.resources()}
    assert routed == named | {"/{path}"}  # the last: our own 404 for every other path


async def test_before_any_result_everything_fails_as_not_ready(
    aiohttp_client: Client, make_config: Callable[[str], Config]
) -> None:
    config = make_config(CONFIG)
    client = await aiohttp_client(make_app(config, run_checks=False))
    response = await client.get("/health")
    assert response.status == 503
    body = await response.json(content_type=None)
    assert body["checks"]["api"][0] == {
        "status": "fail",
        "componentType": "plugin",
        "output": "no result yet",
        "reason": "no_result",
    }


async def test_stale_results_fail(
    aiohttp_client: Client, make_config: Callable[[str], Config]
) -> None:
    config = make_config(
        "checks: [{name: a, interval: 1s, timeout: 1s, plugin: {class: 'tests.sample_probes:Ok'}}]"
    )
    now = [1000.0]
    store = StateStore(["a"])
    store.record("a", Run(Result("pass"), started=time.time(), duration=0.01, finished=1000.0))
    client = await aiohttp_client(
        make_app(config, run_checks=False, store=store, clock=lambda: now[0])
    )
    assert (await client.get("/health")).status == 200
    now[0] += 3.9
    assert (await client.get("/health")).status == 200
    now[0] += 0.2
    response = await client.get("/health")
    assert response.status == 503
    entry = (await response.json(content_type=None))["checks"]["a"][0]
    assert entry["reason"] == "stale" and entry["output"].startswith("stale:")


async def test_requests_never_run_probes(
    aiohttp_client: Client, make_config: Callable[[str], Config]
) -> None:
    config = make_config(
        "checks: [{name: a, interval: 1h, "
        "plugin: {class: 'tests.sample_probes:Counting', key: polled}}]"
    )
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
        "timed out after 200ms",
        "previous run still running (timed out after 200ms)",
    }


async def test_draining_flips_readyz_only(client: TestClient[Any, Any]) -> None:
    await settle(client, "/readyz", 200)
    client.app[DRAIN].begin(SHUTTING_DOWN)  # type: ignore[index]
    assert (await client.get("/readyz")).status == 503
    assert "[-]shutdown in progress" in await (await client.get("/readyz?verbose")).text()
    assert (await client.get("/livez")).status == 200


async def test_status_codes_follow_the_config(
    aiohttp_client: Client, make_config: Callable[[str], Config]
) -> None:
    config = make_config("""
server: {status_codes: {warn: 429, fail: 500}}
checks:
  - {name: a, interval: 100ms, plugin: {class: "tests.sample_probes:Switch", key: a}}
""")
    client = await aiohttp_client(make_app(config))
    await settle(client, "/health", 200)
    sample_probes.SWITCHES["a"] = "warn"
    await settle(client, "/health", 429)
    # kubelet's endpoints keep kubelet's meaning: warn is success, fail is 503.
    assert (await client.get("/readyz?verbose")).status == 200
    assert (await client.get("/startupz")).status == 200
    sample_probes.SWITCHES["a"] = "fail"
    await settle(client, "/health", 500)
    assert (await client.get("/health/a")).status == 500
    assert (await client.get("/readyz")).status == 503
    assert (await client.get("/readyz/a")).status == 503


async def test_the_status_page_is_the_root_and_html_at_health(client: TestClient[Any, Any]) -> None:
    await settle(client, "/health", 200)
    page = await client.get("/")
    assert page.status == 200 and page.content_type == "text/html"
    assert page.headers["Vary"] == "Accept" and page.headers["Cache-Control"] == "no-store"
    text = await page.text()
    assert "Healthy" in text and all(name in text for name in ["api", "heartbeat", "cache"])
    browser = await client.get("/health", headers={"Accept": "text/html,*/*;q=0.8"})
    assert browser.content_type == "text/html"
    sample_probes.SWITCHES["api"] = "fail"
    failing = await settle(client, "/", 503)
    assert "Failing" in await failing.text()
    as_json = await client.get("/?format=json")
    assert as_json.content_type == "application/health+json"


@pytest.mark.parametrize(
    ("path", "content_type", "starts"),
    [
        ("/health?format=nagios", "text/plain", "HEALTH OK - orders-api: 3 checks passing"),
        ("/health?format=text", "text/plain", "[+]api ok"),
        ("/readyz?format=html", "text/html", "<!DOCTYPE html>"),
        ("/livez?format=json", "application/health+json", '{"status":"pass"'),
        ("/health/api?format=nagios", "text/plain", "HEALTH OK - orders-api: 1 check passing"),
        ("/health?format=prometheus", "text/plain", "# HELP health_check_success"),
        (
            "/health?format=openmetrics",
            "application/openmetrics-text",
            "# HELP health_check_success",
        ),
    ],
    ids=["nagios", "text", "html", "json", "one-check-nagios", "prometheus", "openmetrics"],
)
async def test_format_picks_the_renderer(
    client: TestClient[Any, Any], path: str, content_type: str, starts: str
) -> None:
    response = await client.get(path)
    assert response.status == 200
    assert response.content_type == content_type
    assert (await response.text()).startswith(starts)


async def test_nagios_over_http_keeps_the_verdict_s_status_code(
    client: TestClient[Any, Any],
) -> None:
    await settle(client, "/health", 200)
    sample_probes.SWITCHES["api"] = "fail"
    response = await settle(client, "/health?format=nagios", 503)
    first = (await response.text()).splitlines()[0]
    assert first == "HEALTH CRITICAL - orders-api: 1 of 3 checks failing: api"


async def test_an_unknown_format_is_a_bad_request(client: TestClient[Any, Any]) -> None:
    response = await client.get("/health?format=xml")
    assert response.status == 400
    assert "unknown format 'xml'; use one of: json, text" in await response.text()


async def test_metrics_answers_200_whatever_the_verdict(client: TestClient[Any, Any]) -> None:
    await settle(client, "/health", 200)
    sample_probes.SWITCHES["api"] = "fail"
    await settle(client, "/health", 503)
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = await response.text()
    assert 'health_check_success{check="api"} 0.0' in text
    assert 'health_check_success{check="heartbeat"} 1.0' in text
    assert "health_adapter_build_info{" in text
    scrape = await client.get(
        "/metrics",
        headers={
            "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        },
    )
    assert scrape.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await scrape.text()).endswith("# EOF\n")
    assert (await client.get("/metrics?format=json")).status == 200
    assert (await client.head("/metrics")).status == 200


async def test_a_group_in_prometheus_format_has_only_its_checks(
    client: TestClient[Any, Any],
) -> None:
    await settle(client, "/health", 200)
    text = await (await client.get("/livez?format=prometheus")).text()
    assert 'health_check_success{check="heartbeat"}' in text
    assert 'check="api"' not in text


async def test_exclude_like_kube_apiserver(client: TestClient[Any, Any]) -> None:
    await settle(client, "/health", 200)
    sample_probes.SWITCHES["api"] = "fail"
    await settle(client, "/readyz", 503)
    response = await client.get("/readyz?verbose&exclude=api&exclude=nope")
    assert response.status == 200
    assert (await response.text()).splitlines() == [
        "[+]heartbeat ok",
        "[+]cache ok",
        "[+]api excluded: ok",
        'warn: some health checks cannot be excluded: no matches for "nope"',
        "readyz check passed",
    ]
    assert (await client.get("/health?exclude=api")).status == 200


async def test_one_check_of_a_group(client: TestClient[Any, Any]) -> None:
    await settle(client, "/health", 200)
    live = await client.get("/livez/heartbeat?verbose")
    assert live.status == 200
    assert await live.text() == "[+]heartbeat ok\nlivez check passed\n"
    missing = await client.get("/livez/api")
    assert missing.status == 404
    assert await missing.text() == "no check named 'api' in livez\n"
    sample_probes.SWITCHES["cache"] = "fail"
    # A non-critical check fails on its own, while the group only warns.
    await settle(client, "/readyz/cache", 503)
    assert (await client.get("/readyz")).status == 200


async def test_one_check_shows_since_and_recent_runs(client: TestClient[Any, Any]) -> None:
    await settle(client, "/health", 200)
    sample_probes.SWITCHES["api"] = "fail"
    response = await settle(client, "/health/api", 503)
    (entry,) = (await response.json(content_type=None))["checks"]["api"]
    assert entry["since"].endswith("Z")
    assert entry["history"][0]["status"] == "fail"
    assert entry["history"][-1]["status"] == "pass"
    assert entry["runs"]["pass"] >= 1 and entry["runs"]["fail"] >= 1
    assert entry["failures"] == {"failed": entry["runs"]["fail"]}
    page = await (await client.get("/health/api?format=html")).text()
    assert "Recent runs of api" in page


async def test_startupz_passes_once_every_check_has_passed(
    aiohttp_client: Client, make_config: Callable[[str], Config]
) -> None:
    sample_probes.SWITCHES["api"] = "fail"
    client = await aiohttp_client(make_app(make_config(CONFIG)))
    await settle(client, "/health/heartbeat", 200)
    for _ in range(200):  # until api has run and failed, not "no result yet"
        if "switch says fail" in await (await client.get("/health/api")).text():
            break
        await asyncio.sleep(0.02)
    response = await settle(client, "/startupz?verbose", 503)
    assert (await response.text()).splitlines()[
        0
    ] == "[-]api failed: not started yet: switch says fail"
    assert (await client.get("/startupz?exclude=api")).status == 200
    assert (await client.get("/startupz/heartbeat")).status == 200
    assert (await client.get("/startupz/api")).status == 503
    sample_probes.SWITCHES["api"] = "pass"
    await settle(client, "/startupz", 200)
    # Once started, always started: later failures are for /livez and /readyz.
    sample_probes.SWITCHES["api"] = "fail"
    await settle(client, "/readyz", 503)
    assert (await client.get("/startupz")).status == 200


async def test_draining_shows_in_every_format(client: TestClient[Any, Any]) -> None:
    await settle(client, "/readyz", 200)
    client.app[DRAIN].begin(SHUTTING_DOWN)  # type: ignore[index]
    nagios = await client.get("/readyz?format=nagios")
    assert nagios.status == 503
    assert (await nagios.text()).startswith("HEALTH CRITICAL - orders-api: shutting down;")
    body = await (await client.get("/readyz")).json(content_type=None)
    assert body["status"] == "fail" and body["notes"] == ["shutting down"]
    assert "Shutting down" in await (await client.get("/readyz?format=html")).text()


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/health", None),
        ("/", None),
        ("/readyz?verbose", None),
        ("/health?format=nagios", None),
        ("/metrics", 200),
        ("/health/api?format=html", None),
        ("/health/nope", 404),
        ("/nowhere", 404),
        ("/health?format=nope", 400),
    ],
    ids=[
        "json",
        "page",
        "verbose",
        "nagios",
        "metrics",
        "one-check",
        "no-check",
        "no-route",
        "bad",
    ],
)
async def test_no_answer_is_ever_sniffed_into_another_type(
    client: TestClient[Any, Any], path: str, status: int | None
) -> None:
    response = await client.get(path)
    if status is not None:  # the others answer 200 or 503 as the checks go
        assert response.status == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("POST", "/health", 405), ("HEAD", "/readyz", 200), ("DELETE", "/nowhere", 404)],
    ids=["method-not-allowed", "head", "unknown-route-other-method"],
)
async def test_answers_aiohttp_makes_itself_are_not_sniffed_either(
    client: TestClient[Any, Any], method: str, path: str, status: int
) -> None:
    response = await client.request(method, path)
    assert response.status == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"


SPELLINGS = [
    "/health",
    "/readyz",
    "/livez",
    "/startupz",
    "/metrics",
    "/health/api",
    "/livez/heartbeat",
    "/readyz/cache",
    "/startupz/api",
]


@pytest.mark.parametrize("path", SPELLINGS, ids=[p.strip("/") for p in SPELLINGS])
async def test_a_trailing_slash_answers_like_the_canonical_path(
    aiohttp_client: Client, make_config: Callable[[str], Config], path: str
) -> None:
    # Results that hold still, so that two answers can be compared byte for byte.
    store = StateStore(["api", "heartbeat", "cache"])
    for name, status in [("api", "fail"), ("heartbeat", "pass"), ("cache", "pass")]:
        run = Run(Result(status), started=time.time(), duration=0.01, finished=1000.0)
        store.record(name, run)
    app = make_app(make_config(CONFIG), run_checks=False, store=store, clock=lambda: 1001.0)
    client = await aiohttp_client(app)
    canonical = await client.get(path, allow_redirects=False)
    slashed = await client.get(path + "/", allow_redirects=False)
    assert canonical.status in (200, 503)
    assert slashed.status == canonical.status
    assert slashed.content_type == canonical.content_type
    if path != "/metrics":  # the adapter's own process figures change between scrapes
        assert await slashed.read() == await canonical.read()
    head = await client.head(path + "/", allow_redirects=False)
    assert head.status == canonical.status
    assert await head.read() == b""
    # The query string is read the same way.
    verbose = await client.get(path + "/?format=text", allow_redirects=False)
    assert verbose.status == canonical.status and verbose.content_type == "text/plain"


async def test_a_name_that_differs_by_case_gets_a_did_you_mean(
    client: TestClient[Any, Any],
) -> None:
    await settle(client, "/health", 200)
    for path, text in [
        ("/health/API", "no check named 'API'; did you mean 'api'?\n"),
        ("/health/heartbeet/", "no check named 'heartbeet'; did you mean 'heartbeat'?\n"),
        ("/livez/Heartbeat", "no check named 'Heartbeat' in livez; did you mean 'heartbeat'?\n"),
        ("/livez/api", "no check named 'api' in livez\n"),
        ("/health/zzz", "no check named 'zzz'\n"),
    ]:
        response = await client.get(path)
        assert response.status == 404, path
        assert await response.text() == text


async def test_excluding_a_mistyped_name_says_which_was_meant(
    client: TestClient[Any, Any],
) -> None:
    await settle(client, "/health", 200)
    sample_probes.SWITCHES["api"] = "fail"
    await settle(client, "/health", 503)
    response = await client.get("/health?exclude=Api")
    assert response.status == 503  # nothing was left out
    body = await response.json(content_type=None)
    assert body["notes"] == [
        "no check to exclude named Api",
        "exclude=Api matches no check; did you mean 'api'?",
    ]
    text = await (await client.get("/readyz?verbose&exclude=Api")).text()
    assert "note: exclude=Api matches no check; did you mean 'api'?" in text.splitlines()


@pytest.mark.parametrize(
    ("config", "empty"),
    [
        ("checks: [{name: a, plugin: {class: 'tests.sample_probes:Ok'}}]", "/livez"),
        (
            "checks: [{name: a, groups: [live], plugin: {class: 'tests.sample_probes:Ok'}}]",
            "/readyz",
        ),
        (
            "checks: [{name: a, groups: [batch], plugin: {class: 'tests.sample_probes:Ok'}}]",
            "/readyz",
        ),
    ],
    ids=["no-live", "only-live", "free-form-only"],
)
async def test_an_endpoint_whose_group_has_no_check_says_so(
    aiohttp_client: Client, make_config: Callable[[str], Config], config: str, empty: str
) -> None:
    client = await aiohttp_client(make_app(make_config(config)))
    await settle(client, "/health", 200)
    group = empty.strip("/").removesuffix("z")
    note = (
        f"no check is in group {group!r}, so {empty} passes with nothing to check; "
        f"add {group!r} to a check's groups if this is not meant"
    )
    response = await client.get(empty)
    assert response.status == 200
    body = await response.json(content_type=None)
    assert body["checks"] == {} and body["notes"] == [note]
    verbose = await client.get(empty + "?verbose")
    assert (await verbose.text()).splitlines() == [f"note: {note}", f"{group}z check passed"]
    other = "/readyz" if empty == "/livez" else "/livez"
    if other == "/readyz" or "live" in config:
        body = await (await client.get(other)).json(content_type=None)
        assert "notes" not in body


def test_an_empty_endpoint_group_is_logged_at_start(
    make_config: Callable[[str], Config], caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(
        "checks: [{name: a, groups: [live], plugin: {class: 'tests.sample_probes:Ok'}}]"
    )
    with caplog.at_level(logging.INFO, logger="health_adapter"):
        log_empty_groups(config)
    (record,) = [r for r in caplog.records if r.getMessage() == "empty_group"]
    assert record.levelno == logging.WARNING
    assert record.fields["endpoint"] == "/readyz"  # type: ignore[attr-defined]


async def test_the_drain_file_drains_readiness_only(
    aiohttp_client: Client, make_config: Callable[[str], Config], tmp_path: Any
) -> None:
    drain = tmp_path / "drain"
    client = await aiohttp_client(
        make_app(make_config(CONFIG + f"server: {{drain_file: {drain}}}\n"))
    )
    await settle(client, "/readyz", 200)
    drain.touch()
    response = await client.get("/readyz?verbose")
    assert response.status == 503
    assert f"[-]draining: drain file {drain} exists" in await response.text()
    body = await (await client.get("/readyz")).json(content_type=None)
    assert body["notes"] == [f"draining: drain file {drain} exists"]
    assert (await client.get("/livez")).status == 200
    assert (await client.get("/health")).status == 200
    drain.unlink()
    assert (await client.get("/readyz")).status == 200
