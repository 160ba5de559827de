"""Prometheus and OpenMetrics exposition of a verdict, made with prometheus-client.

Each answer gets a registry of its own (`AdapterMetrics.registry_for`) that
holds the verdict the endpoint judged for it, so nothing is updated per run,
no registry is shared between requests, and the collectors never call back
into the server. Counts come from the check states, which keep them.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    exposition,
    openmetrics,
)
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from adapter.formats.units import base_unit
from adapter.health import Verdict
from probes import Status

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TEXT = openmetrics.exposition.CONTENT_TYPE_LATEST

STATUS_VALUE = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


def check_metrics(verdict: Verdict) -> list[Metric]:
    """Per-check metric families, labelled `check`, from the verdict alone."""
    success = GaugeMetricFamily(
        "health_check_success",
        "1 when the check passes or warns, 0 when it fails.",
        labels=["check"],
    )
    status = GaugeMetricFamily(
        "health_check_status", "The check's status: 0 pass, 1 warn, 2 fail.", labels=["check"]
    )
    duration = GaugeMetricFamily(
        "health_check_duration_seconds",
        "How long the check's last run took.",
        labels=["check"],
        unit="seconds",
    )
    last_run = GaugeMetricFamily(
        "health_check_last_run_timestamp_seconds",
        "When the check's last run started.",
        labels=["check"],
        unit="seconds",
    )
    changed = GaugeMetricFamily(
        "health_check_last_transition_timestamp_seconds",
        "When the check's status last changed.",
        labels=["check"],
        unit="seconds",
    )
    observed = GaugeMetricFamily(
        "health_check_observed_value",
        "The value the check's last run observed, in the base unit named by `unit`.",
        labels=["check", "unit"],
    )
    # After blackbox_exporter's probe_ssl_earliest_cert_expiry, named by the
    # X.509 field and with the unit suffix Prometheus' conventions ask for.
    cert_not_after = GaugeMetricFamily(
        "health_check_tls_cert_not_after_timestamp_seconds",
        "When the earliest certificate of the chain the check's TLS peer presented "
        "expires (its notAfter), as a Unix time.",
        labels=["check"],
        unit="seconds",
    )
    runs = CounterMetricFamily(
        "health_check_runs",
        "Runs of the check since the adapter started, by their result.",
        labels=["check", "result"],
    )
    failures = CounterMetricFamily(
        "health_check_failures",
        "Failed runs of the check since the adapter started, by reason.",
        labels=["check", "reason"],
    )
    for check in verdict.checks:
        name = [check.name]
        success.add_metric(name, 0 if check.status is Status.FAIL else 1)
        status.add_metric(name, STATUS_VALUE[check.status])
        if check.duration is not None:
            duration.add_metric(name, check.duration)
        if check.time is not None:
            last_run.add_metric(name, check.time)
        if check.since is not None:
            changed.add_metric(name, check.since)
        if check.observed_value is not None:
            value, unit = base_unit(check.observed_value, check.observed_unit)
            observed.add_metric([check.name, unit], value)
        if check.cert_not_after is not None:
            cert_not_after.add_metric(name, check.cert_not_after)
        for result in Status:
            runs.add_metric([check.name, result.value], check.run_counts.get(result, 0))
        for reason, count in sorted(check.failure_counts.items()):
            failures.add_metric([check.name, reason.value], count)
    return [
        success,
        status,
        duration,
        last_run,
        changed,
        observed,
        cert_not_after,
        runs,
        failures,
    ]


class VerdictCollector(Collector):
    """Collects the check metrics of one verdict, the one it was handed."""

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict

    def collect(self) -> Iterable[Metric]:
        """The eight `health_check_*` families of the verdict."""
        return check_metrics(self.verdict)


class ReloadCounts(Protocol):
    """What the reload metrics read (adapter.reload.ReloadStats); wall-clock seconds."""

    successes: int
    failures: int
    last_success: float | None


class ReloadCollector(Collector):
    """Config reloads by result, and when the last one succeeded.

    `counts` is the live tally (adapter.reload.ReloadStats), read at each scrape.
    """

    def __init__(self, counts: ReloadCounts) -> None:
        self.counts = counts

    def collect(self) -> Iterable[Metric]:
        """`health_adapter_config_reloads_total` by result, and the last success's time."""
        counts = self.counts
        reloads = CounterMetricFamily(
            "health_adapter_config_reloads",
            "Config reloads (SIGHUP or a watched file), by result.",
            labels=["result"],
        )
        reloads.add_metric(["success"], counts.successes)
        reloads.add_metric(["failure"], counts.failures)
        metrics: list[Metric] = [reloads]
        if counts.last_success is not None:
            last = GaugeMetricFamily(
                "health_adapter_config_last_reload_success_timestamp_seconds",
                "When the config in force was put in force: at start, or by the last reload.",
                unit="seconds",
            )
            last.add_metric([], counts.last_success)
            metrics.append(last)
        return metrics


class BuildInfoCollector(Collector):
    """`health_adapter_build_info{version, python}` = 1."""

    def __init__(self, version: str) -> None:
        self.version = version

    def collect(self) -> Iterable[Metric]:
        """`health_adapter_build_info`."""
        info = InfoMetricFamily("health_adapter_build", "The adapter's version.")
        info.add_metric([], {"version": self.version, "python": platform.python_version()})
        return [info]


def exposition_bytes(registry: CollectorRegistry, *, openmetrics_format: bool) -> bytes:
    """The registry's metrics in the Prometheus text format 0.0.4, or OpenMetrics 1.0."""
    if openmetrics_format:
        return openmetrics.exposition.generate_latest(registry)  # type: ignore[no-untyped-call,no-any-return]
    return exposition.generate_latest(registry)


class AdapterMetrics:
    """The adapter's metric collectors: its checks, its own process, its build.

    `registry_for(verdict)` makes the registry of one answer: the check
    metrics of `verdict` (all checks for /metrics, one endpoint's for
    `/readyz?format=prometheus`) beside the shared process, build and
    reload collectors. `reloads` is the live tally of config reloads.
    """

    def __init__(self, *, version: str, reloads: ReloadCounts | None = None) -> None:
        self.own: list[Collector] = [
            ProcessCollector(registry=None),  # /proc/self: the adapter's own process
            PlatformCollector(registry=None),
            BuildInfoCollector(version),
        ]
        if reloads is not None:
            self.own.append(ReloadCollector(reloads))

    def registry_for(self, verdict: Verdict) -> CollectorRegistry:
        """A new registry: `verdict`'s check metrics and the adapter's own collectors."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(VerdictCollector(verdict))
        for collector in self.own:
            registry.register(collector)
        return registry
