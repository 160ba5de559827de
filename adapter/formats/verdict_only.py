"""The anonymous answer: the verdict and nothing else, in every format.

With `server.details: token`, callers without the token get these: no check
names, outputs, observed values, history or timings — only pass, warn or fail.
"""

from __future__ import annotations

import html

import msgspec
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapter.formats.nagios import state_of
from adapter.formats.prometheus import STATUS_VALUE, exposition_bytes
from probes import Status

_json = msgspec.json.Encoder()
NOTE = "details need the bearer token"


def json_body(status: Status) -> bytes:
    """`{"status":"pass"}`: the health+json document with nothing but the status."""
    return _json.encode({"status": status.value})


def text_body(status: Status, label: str) -> str:
    """kube-apiserver's last line alone: `readyz check passed` (warn passes too)."""
    return f"{label} check {'failed' if status is Status.FAIL else 'passed'}\n"


def nagios_body(status: Status) -> str:
    """`HEALTH STATE - details need the bearer token`: no perfdata, no check lines."""
    return f"HEALTH {state_of(status)} - {NOTE}\n"


def html_body(status: Status) -> str:
    """A page that says the status and that details need the token."""
    value = html.escape(status.value)
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{value}</title></head>'
        f"<body><h1>{value}</h1><p>{html.escape(NOTE)}</p></body></html>\n"
    )


class _StatusCollector(Collector):
    def __init__(self, status: Status) -> None:
        self.status = status

    def collect(self) -> list[Metric]:
        gauge = GaugeMetricFamily(
            "health_status", "The verdict of the endpoint's checks: 0 pass, 1 warn, 2 fail."
        )
        gauge.add_metric([], STATUS_VALUE[self.status])
        return [gauge]


def metrics_body(status: Status, *, openmetrics_format: bool) -> bytes:
    """Only the overall verdict: check names and the adapter's own process stay private."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StatusCollector(status))
    return exposition_bytes(registry, openmetrics_format=openmetrics_format)
