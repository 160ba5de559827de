"""Hot reload: a valid config swaps in without a gap; an invalid one changes nothing."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from adapter.config import load_config
from adapter.registry import BUILTINS, PLUGIN_KEY
from adapter.reload import Reloader
from adapter.server import LIVE, SCHEDULER, make_app, reloader_for
from tests import sample_probes
from tests.adapter.test_server import settle
from tests.conftest import ROOT, free_port

Client = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]

BEFORE = """
checks:
  - {name: kept, interval: 100ms, plugin: {class: "tests.sample_probes:Counting", key: kept}}
  - {name: changed, interval: 100ms, plugin: {class: "tests.sample_probes:Switch", key: old}}
  - {name: removed, interval: 100ms, plugin: {class: "tests.sample_probes:SpawnsChild",
     pidfile: "PIDFILE"}, timeout: 30s}
"""
AFTER = """
checks:
  - {name: kept, interval: 100ms, plugin: {class: "tests.sample_probes:Counting", key: kept}}
  - {name: changed, interval: 100ms, plugin: {class: "tests.sample_probes:Switch", key: new}}
  - {name: added, interval: 100ms, plugin: {class: "tests.sample_probes:Ok"}}
"""

PROBE_TYPES = ", ".join([*sorted(BUILTINS), PLUGIN_KEY])


@pytest.fixture
def pidfile(tmp_path: Path) -> Path:
    return tmp_path / "child.pid"


@pytest.fixture
def config_path(tmp_path: Path, pidfile: Path) -> Path:
    path = tmp_path / "health.yaml"
    path.write_text(BEFORE.replace("PIDFILE", str(pidfile)))
    return path


@pytest.fixture
async def running(
    aiohttp_client: Client, config_path: Path, pidfile: Path
) -> tuple[TestClient[Any, Any], Reloader]:
    client = await aiohttp_client(make_app(load_config(config_path)))
    await settle(client, "/health/kept", 200)
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.02)
    return client, reloader_for(client.app, config_path)  # type: ignore[arg-type]


async def body_of(client: TestClient[Any, Any]) -> Any:
    return await (await client.get("/health")).json(content_type=None)


async def test_a_valid_config_swaps_in_keeping_unchanged_checks_running(
    running: tuple[TestClient[Any, Any], Reloader],
    config_path: Path,
    pidfile: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, reloader = running
    caplog.set_level(logging.INFO, "health_adapter")
    app = client.app
    assert app is not None
    scheduler = app[SCHEDULER]
    kept_task = scheduler._tasks["kept"]
    kept_since = (await body_of(client))["checks"]["kept"][0]["since"]
    child = int(pidfile.read_text())
    sample_probes.SWITCHES["new"] = "warn"
    config_path.write_text(AFTER)

    assert await reloader.reload("test")

    body = await body_of(client)
    assert list(body["checks"]) == ["kept", "changed", "added"]
    # Unchanged: the same task, still running, and its state kept (no "no result yet").
    assert scheduler._tasks["kept"] is kept_task and not kept_task.done()
    assert body["checks"]["kept"][0]["since"] == kept_since
    runs = sample_probes.COUNTS["kept"]
    await asyncio.sleep(0.3)
    assert sample_probes.COUNTS["kept"] > runs
    # Changed: restarted on its new config; its first new run is reported as is.
    await settle(client, "/health/changed", 200)
    for _ in range(100):
        entry = (await body_of(client))["checks"]["changed"][0]
        if entry["status"] == "warn":
            break
        await asyncio.sleep(0.02)
    assert entry["output"] == "switch says warn"
    # Removed: stopped, its running probe cancelled and its child process killed.
    assert "removed" not in scheduler._tasks
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"
    stats = app[LIVE].reloads
    assert (stats.successes, stats.failures) == (1, 0) and stats.last_success is not None
    reloaded = [r for r in caplog.records if r.getMessage() == "config_reloaded"]
    assert [r.fields for r in reloaded] == [
        {  # type: ignore[attr-defined]
            "trigger": "test",
            "config": str(config_path),
            "added": 1,
            "removed": 1,
            "changed": 1,
            "unchanged": 1,
        }
    ]


@pytest.mark.parametrize(
    ("text", "errors"),
    [
        pytest.param(
            "checks: [{name: kept, htpp: {}}]\n",
            [
                (
                    "checks[0] (kept).htpp: unknown key 'htpp': not a check setting nor a "
                    f"probe type; did you mean 'http'? (probe types: {PROBE_TYPES})"
                )
            ],
            id="unknown-key",
        ),
        pytest.param(
            "checks: [\n",
            [("line 2, column 1: expected the node content, but found '<stream end>'")],
            id="yaml-syntax",
        ),
        pytest.param(
            "", ["the config file is empty; it needs at least a 'checks:' list"], id="emptied"
        ),
    ],
)
async def test_an_invalid_config_is_rejected_and_the_old_one_keeps_running(
    running: tuple[TestClient[Any, Any], Reloader],
    config_path: Path,
    text: str,
    errors: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, reloader = running
    caplog.set_level(logging.INFO, "health_adapter")
    app = client.app
    assert app is not None
    old = app[LIVE].config
    tasks = dict(app[SCHEDULER]._tasks)
    config_path.write_text(text)

    assert not await reloader.reload("test")

    assert app[LIVE].config is old
    assert app[SCHEDULER]._tasks == tasks and not any(t.done() for t in tasks.values())
    body = await body_of(client)
    assert list(body["checks"]) == ["kept", "changed", "removed"]
    stats = app[LIVE].reloads
    assert (stats.successes, stats.failures) == (0, 1) and stats.last_failure is not None
    logged = [
        r.fields["error"]
        for r in caplog.records  # type: ignore[attr-defined]
        if r.getMessage() == "config_error"
    ]
    assert logged == errors
    assert "Traceback" not in caplog.text


async def test_the_last_success_gauge_is_there_from_the_start_and_moves_on_a_reload(
    running: tuple[TestClient[Any, Any], Reloader], config_path: Path
) -> None:
    client, reloader = running
    gauge = "health_adapter_config_last_reload_success_timestamp_seconds"

    async def scraped() -> float:
        text = await (await client.get("/metrics")).text()
        return float(
            next(line for line in text.splitlines() if line.startswith(gauge + " ")).split()[1]
        )

    at_start = await scraped()
    assert abs(at_start - time.time()) < 60
    config_path.write_text(config_path.read_text() + "\n")  # the same checks, read again
    before = time.time()
    assert await reloader.reload("test")
    assert await scraped() >= before >= at_start


async def test_a_setting_that_needs_a_restart_is_named(
    running: tuple[TestClient[Any, Any], Reloader],
    config_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _client, reloader = running
    caplog.set_level(logging.INFO, "health_adapter")
    config_path.write_text("listen: 127.0.0.1:1\nserver: {max_connections: 5}\n" + AFTER)
    assert await reloader.reload("test")
    (record,) = [r for r in caplog.records if r.getMessage() == "restart_needed"]
    assert record.fields["settings"] == "listen,max_connections"  # type: ignore[attr-defined]


async def test_a_watched_file_is_reloaded_when_it_changes(
    running: tuple[TestClient[Any, Any], Reloader],
    config_path: Path,
) -> None:
    client, reloader = running
    watching = asyncio.create_task(reloader.watch(interval=0.05))
    try:
        await asyncio.sleep(0.2)
        replacement = config_path.with_suffix(".new")
        replacement.write_text(AFTER)
        os.replace(replacement, config_path)  # as a ConfigMap update swaps the file
        for _ in range(100):
            if "added" in (await body_of(client))["checks"]:
                break
            await asyncio.sleep(0.05)
        assert "added" in (await body_of(client))["checks"]
        assert reloader.live.reloads.successes == 1
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)


# --- SIGHUP in a real process ---------------------------------------------------------------


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Callable[[Path], tuple[subprocess.Popen[str], str]]]:
    processes: list[subprocess.Popen[str]] = []

    def start(path: Path) -> tuple[subprocess.Popen[str], str]:
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "adapter",
                "serve",
                "-c",
                str(path),
                "--listen",
                f"127.0.0.1:{port}",
                "--log-format",
                "json",
            ],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        return process, f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate()


def wait_for(url: str, predicate: Callable[[int, Any], bool], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                last = (response.status, json.loads(response.read()))
        except urllib.error.HTTPError as error:
            last = (error.code, json.loads(error.read()))
        except OSError:
            last = None
        if last is not None and predicate(*last):
            return last[1]
        time.sleep(0.05)
    raise AssertionError(f"{url} never got there; last answer: {last}")


@pytest.mark.slow
def test_sighup_reloads_a_real_process_and_a_bad_config_never_stops_it(
    tmp_path: Path, serve_process: Callable[[Path], tuple[subprocess.Popen[str], str]]
) -> None:
    path = tmp_path / "health.yaml"
    path.write_text(
        "checks:\n  - {name: a, interval: 100ms, plugin: {class: 'tests.sample_probes:Ok'}}\n"
    )
    process, url = serve_process(path)
    wait_for(f"{url}/health", lambda status, body: status == 200)

    path.write_text(
        "checks:\n  - {name: a, interval: 100ms, plugin: {class: "
        "'tests.sample_probes:Ok'}}\n  - {name: b, interval: 100ms, "
        "plugin: {class: 'tests.sample_probes:Ok'}}\n"
    )
    process.send_signal(signal.SIGHUP)
    wait_for(f"{url}/health", lambda status, body: set(body["checks"]) == {"a", "b"})

    path.write_text("checks:\n  - {name: a, interval: 10 sec}\n")
    process.send_signal(signal.SIGHUP)
    time.sleep(1)
    body = wait_for(f"{url}/health", lambda status, body: status == 200)
    assert set(body["checks"]) == {"a", "b"} and process.poll() is None

    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events if e["event"].startswith("config_")] == [
        "config_reloaded",
        "config_reload_failed",
        "config_error",
        "config_error",
    ]
    errors = [e["error"] for e in events if e["event"] == "config_error"]
    assert errors == [
        (
            "checks[0] (a).interval: invalid duration '10 sec' (write it like 250ms, 10s, 2m, 1h "
            "or a number of seconds)"
        ),
        (f"checks[0] (a): no probe block; add exactly one of: {PROBE_TYPES}"),
    ]
    assert "Traceback" not in stderr


PLUGIN = """
import msgspec
from probes import Probe, Result


class Plugin(Probe):
    class Options(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
        word: str = "ok"
{extra}
    def check(self) -> Result:
        return Result("pass", "{output} " + self.config.word)
"""


@pytest.mark.parametrize(
    ("module", "accepted", "error"),
    [
        pytest.param(
            PLUGIN.format(extra="", output="version two"), True, None, id="new-code-is-used"
        ),
        pytest.param(
            "raise ImportError('half deployed')\n",
            False,
            "could not be imported: ImportError: half deployed",
            id="no-longer-imports",
        ),
        pytest.param(
            PLUGIN.format(extra="        limit: int\n", output="version two"),
            False,
            "plugin.limit: required",
            id="options-schema-changed",
        ),
    ],
)
async def test_a_reload_judges_plugin_code_as_it_is_on_disk(
    aiohttp_client: Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
    module: str,
    accepted: bool,
    error: str | None,
) -> None:
    name = "reloaded_plugin_" + request.node.callspec.id.replace("-", "_")
    (tmp_path / f"{name}.py").write_text(PLUGIN.format(extra="", output="version one"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    path = tmp_path / "health.yaml"
    path.write_text(f"checks: [{{name: p, interval: 100ms, plugin: {{class: '{name}:Plugin'}}}}]\n")
    client = await aiohttp_client(make_app(load_config(path)))
    await settle(client, "/health/p", 200)
    reloader = reloader_for(client.app, path)  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, "health_adapter")

    (tmp_path / f"{name}.py").write_text(module)
    path.write_text(path.read_text().replace("100ms", "150ms"))  # the check changes too
    validate = subprocess.run(
        [sys.executable, "-m", "adapter", "validate", "-c", str(path)],
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"},
        capture_output=True,
        text=True,
        check=False,
    )

    # What a restart would say, the reload says.
    assert (await reloader.reload("test")) is accepted
    assert (validate.returncode == 0) is accepted, validate.stdout + validate.stderr
    errors = [r.fields["error"] for r in caplog.records if r.getMessage() == "config_error"]  # type: ignore[attr-defined]
    if accepted:
        for _ in range(200):
            output = (await body_of(client))["checks"]["p"][0]["output"]
            if output == "version two ok":
                break
            await asyncio.sleep(0.02)
        assert output == "version two ok"
    else:
        assert error is not None and len(errors) == 1 and error in errors[0], errors
        assert error in validate.stdout + validate.stderr
        # The check in force keeps running on the code it was loaded with.
        assert (await body_of(client))["checks"]["p"][0]["output"] == "version one ok"
        # A second reload of the same files is refused again.
        assert not await reloader.reload("test")
