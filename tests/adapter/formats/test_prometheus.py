"""Prometheus and OpenMetrics exposition of a verdict."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from adapter.formats.prometheus import AdapterMetrics, exposition_bytes
from adapter.health import Verdict, judge
from probes import Result
from tests.adapter.formats.samples import (
    CERT_NOT_AFTER,
    NOW,
    STARTED,
    check,
    sample_verdict,
    state,
    tls_verdict,
)


def samples(
    metrics: AdapterMetrics, verdict: Verdict, openmetrics: bool = False
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = metrics.registry_for(verdict)
    text = exposition_bytes(registry, openmetrics_format=openmetrics).decode()
    parse = parse_openmetrics if openmetrics else text_string_to_metric_families
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in parse(text)
        for sample in family.samples
    }


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


@pytest.mark.parametrize("openmetrics", [False, True], ids=["prometheus", "openmetrics"])
def test_check_metrics(openmetrics: bool) -> None:
    found = samples(AdapterMetrics(version="1.2.3"), sample_verdict(), openmetrics)
    success = {
        name: value(found, "health_check_success", check=name)
        for name in ["api", "heartbeat", "worker", "cache", "fresh"]
    }
    assert success == {"api": 1, "heartbeat": 1, "worker": 0, "cache": 0, "fresh": 0}
    assert value(found, "health_check_status", check="heartbeat") == 1
    assert value(found, "health_check_status", check="cache") == 2
    assert value(found, "health_check_duration_seconds", check="api") == 0.0125
    assert value(found, "health_check_duration_seconds", check="fresh") is None
    assert value(found, "health_check_last_run_timestamp_seconds", check="worker") == STARTED + 10
    assert value(
        found, "health_check_observed_value", check="api", unit="seconds"
    ) == pytest.approx(0.0125)
    assert value(found, "health_check_observed_value", check="worker", unit="processes") == 0
    runs = {
        result: value(found, "health_check_runs_total", check="worker", result=result)
        for result in ["pass", "warn", "fail"]
    }
    assert runs == {"pass": 1, "warn": 0, "fail": 1}
    assert value(found, "health_check_runs_total", check="fresh", result="pass") == 0
    assert (
        value(found, "health_check_failures_total", check="worker", reason="process_missing") == 1
    )
    assert (
        value(found, "health_check_failures_total", check="cache", reason="connection_refused") == 1
    )
    assert value(found, "health_check_failures_total", check="api", reason="timeout") is None
    build = [labels for (name, labels) in found if name == "health_adapter_build_info"]
    assert len(build) == 1 and ("version", "1.2.3") in build[0]
    assert any(name == "process_resident_memory_bytes" for name, _ in found)


def test_each_registry_shows_the_verdict_it_is_handed_and_shares_nothing() -> None:
    metrics = AdapterMetrics(version="1")
    before = metrics.registry_for(judge([check("a")], {}, NOW))
    after = judge([check("a")], {"a": state(Result("pass"), Result("pass"))}, NOW)
    assert (
        value(samples(metrics, judge([check("a")], {}, NOW)), "health_check_success", check="a")
        == 0
    )
    found = samples(metrics, after)
    assert value(found, "health_check_success", check="a") == 1
    assert value(found, "health_check_runs_total", check="a", result="pass") == 2
    # A registry made earlier keeps its own verdict; another verdict has no "a".
    text = exposition_bytes(before, openmetrics_format=False).decode()
    assert 'health_check_success{check="a"} 0.0' in text
    assert value(samples(metrics, sample_verdict()), "health_check_success", check="a") is None


def test_openmetrics_ends_with_eof_and_declares_units() -> None:
    text = exposition_bytes(
        AdapterMetrics(version="1").registry_for(sample_verdict()), openmetrics_format=True
    ).decode()
    assert text.endswith("# EOF\n")
    assert "# UNIT health_check_duration_seconds seconds" in text
    assert "# TYPE health_check_runs counter" in text


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_finds_nothing_to_lint() -> None:
    text = exposition_bytes(
        AdapterMetrics(version="1").registry_for(sample_verdict()), openmetrics_format=False
    )
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == b"" and done.stderr.strip() == b""


@pytest.mark.parametrize("openmetrics", [False, True], ids=["prometheus", "openmetrics"])
def test_a_certificate_expiry_is_a_timestamp_gauge(openmetrics: bool) -> None:
    found = samples(AdapterMetrics(version="1.2.3"), tls_verdict(), openmetrics)
    other = samples(AdapterMetrics(version="1.2.3"), sample_verdict(), openmetrics)

    name = "health_check_tls_cert_not_after_timestamp_seconds"
    assert value(found, name, check="site") == CERT_NOT_AFTER
    # The latency stays the observed value; checks without TLS have no expiry series.
    assert value(found, "health_check_observed_value", check="site", unit="seconds") == 0.0125
    assert not any(key[0] == name for key in other)
