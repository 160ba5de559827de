"""The formats by name: for each, its content type and its two renderers.

Like goss's outputs registry, the server looks a format up here and never
`match`es on it. Every format answers twice over: in full (`render`, for
callers who may see details) and as the bare verdict (`render_verdict_only`,
for anonymous callers under `server.details: token`). A new format is one
renderer module, one `Format` member (adapter.negotiation) and one entry in
`OUTPUTS`; a test checks every `Format` has one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from adapter.formats import verdict_only
from adapter.formats.health_json import health_json
from adapter.formats.html import status_page
from adapter.formats.nagios import nagios_text
from adapter.formats.prometheus import (
    OPENMETRICS_TEXT,
    PROMETHEUS_TEXT,
    AdapterMetrics,
    exposition_bytes,
)
from adapter.formats.text import verbose_text
from adapter.health import Verdict
from adapter.negotiation import Format
from probes import Status

TEXT_UTF8 = "text/plain; charset=utf-8"
HTML_UTF8 = "text/html; charset=utf-8"


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    """What a renderer may know beside the verdict: none of it changes the verdict.

    `endpoint` names the endpoint in the text form's last line (`readyz check
    passed`); `with_runs` asks for one check's run counts and recent runs (the
    `/health/NAME` answers); `now` is wall-clock seconds (the page's "since"
    column); `metrics` holds the adapter's own collectors for the metric formats.
    """

    service: str | None
    endpoint: str
    version: str
    now: float
    metrics: AdapterMetrics | None = None
    with_runs: bool = False


Render = Callable[[Verdict, Page], bytes]
RenderVerdictOnly = Callable[[Status, Page], bytes]


@dataclasses.dataclass(frozen=True, slots=True)
class Output:
    """One format: its content type, its renderers, whether its answers may be kept.

    `content_type` None means the media type the request asked for
    (application/health+json or application/json, as negotiated). `kept`
    formats are rendered once per change of the results (adapter.answers);
    the page tells how long ago things happened and the metrics carry the
    adapter's own process figures, so those are rendered for each request.
    """

    format: Format
    content_type: str | None
    render: Render
    render_verdict_only: RenderVerdictOnly
    kept: bool

    def media(self, asked: str) -> str:
        """The Content-Type of an answer in this format; `asked` is the negotiated type."""
        return asked if self.content_type is None else self.content_type


def _json(verdict: Verdict, page: Page) -> bytes:
    return health_json(verdict, page.service, with_runs=page.with_runs)


def _text(verdict: Verdict, page: Page) -> bytes:
    return verbose_text(verdict, page.endpoint).encode()


def _nagios(verdict: Verdict, page: Page) -> bytes:
    return nagios_text(verdict, page.service).encode()


def _html(verdict: Verdict, page: Page) -> bytes:
    return status_page(
        verdict,
        service=page.service,
        now=page.now,
        version=page.version,
        with_runs=page.with_runs,
    ).encode()


def _exposition(*, openmetrics_format: bool) -> Render:
    def render(verdict: Verdict, page: Page) -> bytes:
        metrics = page.metrics or AdapterMetrics(version=page.version)
        registry = metrics.registry_for(verdict)
        return exposition_bytes(registry, openmetrics_format=openmetrics_format)

    return render


def _metrics_verdict_only(*, openmetrics_format: bool) -> RenderVerdictOnly:
    def render(status: Status, _page: Page) -> bytes:
        return verdict_only.metrics_body(status, openmetrics_format=openmetrics_format)

    return render


OUTPUTS: Mapping[Format, Output] = {
    output.format: output
    for output in (
        Output(
            Format.JSON,
            None,
            _json,
            lambda status, _page: verdict_only.json_body(status),
            kept=True,
        ),
        Output(
            Format.TEXT,
            TEXT_UTF8,
            _text,
            lambda status, page: verdict_only.text_body(status, page.endpoint).encode(),
            kept=True,
        ),
        Output(
            Format.NAGIOS,
            TEXT_UTF8,
            _nagios,
            lambda status, _page: verdict_only.nagios_body(status).encode(),
            kept=True,
        ),
        Output(
            Format.HTML,
            HTML_UTF8,
            _html,
            lambda status, _page: verdict_only.html_body(status).encode(),
            kept=False,
        ),
        Output(
            Format.PROMETHEUS,
            PROMETHEUS_TEXT,
            _exposition(openmetrics_format=False),
            _metrics_verdict_only(openmetrics_format=False),
            kept=False,
        ),
        Output(
            Format.OPENMETRICS,
            OPENMETRICS_TEXT,
            _exposition(openmetrics_format=True),
            _metrics_verdict_only(openmetrics_format=True),
            kept=False,
        ),
    )
}


def output_for(format_: Format) -> Output:
    """The output registered for `format_` (every `Format` has one)."""
    return OUTPUTS[format_]
