"""adapter.testing: a probe run once, as the adapter runs it, for plugin authors' tests."""

from __future__ import annotations

import asyncio
import time

import pytest

from adapter.registry import EntryPointSpec, Registry
from adapter.testing import ConfigError, make_probe, run_probe, run_probe_sync
from probes import Probe, Reason, Resources, Result, Status
from tests import sample_probes


@pytest.mark.parametrize(
    "probe",
    [sample_probes.Typed, "tests.sample_probes:Typed"],
    ids=["class", "module-and-class"],
)
async def test_a_probe_by_class_or_import_path(probe: type[Probe] | str) -> None:
    result = await run_probe(probe, {"max_depth": 7})
    assert (result.status, result.observed_value) == (Status.PASS, 7)


async def test_a_builtin_by_its_type_name() -> None:
    result = await run_probe("file", {"path": "/nonexistent/heartbeat"})
    assert (result.status, result.reason) == (Status.FAIL, Reason.FILE_MISSING)


async def test_a_registered_type_by_name_and_errors_under_that_name() -> None:
    registry = Registry.discover(
        [EntryPointSpec("queue_depth", "tests.sample_probes:Typed", "acme-probes", "1.0")]
    )
    result = await run_probe("queue_depth", {"max_depth": 3}, registry=registry)
    assert result.status is Status.PASS

    with pytest.raises(ConfigError) as caught:
        await run_probe(sample_probes.Typed, {"max_depth": "lots"}, registry=registry)
    assert caught.value.errors == [
        "checks[0] (test).queue_depth.max_depth: expected an integer, got 'lots'"
    ]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({}, "checks[0] (q).plugin.max_depth: required"),
        (
            {"max_depth": -1},
            "checks[0] (q).plugin.max_depth: expected an integer >= 0, got an integer -1",
        ),
        (
            {"max_depth": 1, "window": "a minute"},
            (
                "checks[0] (q).plugin.window: invalid duration 'a minute' (write it like 250ms, 10s, "
                "2m, 1h or a number of seconds)"
            ),
        ),
        (
            {"max_depth": 1, "queu": "x"},
            "checks[0] (q).plugin.queu: unknown key; did you mean 'queue'?",
        ),
    ],
    ids=["missing", "constraint", "duration", "unknown-key"],
)
def test_options_are_validated_like_the_config_loader_does(
    options: dict[str, object], error: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_probe(sample_probes.Typed, options, name="q", registry=Registry.discover([]))
    assert caught.value.errors == [error]


@pytest.mark.parametrize(
    ("probe", "timeout", "status", "output", "reason"),
    [
        (
            sample_probes.Raises,
            5.0,
            Status.FAIL,
            "RuntimeError: database unreachable",
            Reason.ERROR,
        ),
        (sample_probes.SleepAsync, "200ms", Status.FAIL, "timed out after 200ms", Reason.TIMEOUT),
        (sample_probes.BlockForever, 0.2, Status.FAIL, "timed out after 200ms", Reason.TIMEOUT),
        (
            sample_probes.ReturnsGarbage,
            5.0,
            Status.FAIL,
            "probe returned dict, not a Result",
            Reason.ERROR,
        ),
    ],
    ids=["raises", "async-overrun", "stuck-thread", "not-a-result"],
)
async def test_outcomes_are_the_adapters(
    probe: type[Probe], timeout: float | str, status: Status, output: str, reason: Reason
) -> None:
    begin = time.monotonic()
    result = await run_probe(probe, timeout=timeout)
    assert (result.status, result.output, result.reason) == (status, output, reason)
    assert time.monotonic() - begin < 3  # a stuck thread does not hold the caller


async def test_output_is_capped_as_in_the_adapter() -> None:
    result = await run_probe(sample_probes.HugeOutput)
    assert len(result.output.encode()) <= 4096
    assert result.output.endswith(" of 100001 bytes)")


def test_the_sync_wrapper_for_plain_test_functions() -> None:
    result = run_probe_sync(sample_probes.Ok)
    assert result == Result(Status.PASS, "fine", 1, "items")


async def test_resources_passed_in_stay_open_for_the_caller() -> None:
    closed: list[str] = []

    class Pool:
        def close(self) -> None:
            closed.append("pool")

    class UsesPool(Probe):
        async def check(self) -> Result:
            self.resources.get(Pool)
            return Result("pass")

    shared = Resources()
    await run_probe(UsesPool, resources=shared)
    assert closed == []
    await shared.aclose()
    assert closed == ["pool"]

    await run_probe(UsesPool)
    assert closed == ["pool", "pool"]


def test_a_non_probe_is_refused() -> None:
    with pytest.raises(TypeError, match="expected a Probe subclass"):
        asyncio.run(run_probe(object))  # type: ignore[arg-type]
