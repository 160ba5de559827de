"""The formats table: every format has its content type and its two renderers."""

from __future__ import annotations

import pytest

from adapter.formats.outputs import OUTPUTS, Page, output_for
from adapter.formats.prometheus import OPENMETRICS_TEXT, PROMETHEUS_TEXT
from adapter.negotiation import Format
from probes import Status
from tests.adapter.formats.samples import sample_verdict

PAGE = Page(service="orders", endpoint="readyz", version="1.2.3", now=1_700_000_000.0)


def test_every_format_has_an_output() -> None:
    assert set(OUTPUTS) == set(Format)
    assert all(output.format is format_ for format_, output in OUTPUTS.items())


@pytest.mark.parametrize(
    ("format_", "asked", "content_type", "kept"),
    [
        (Format.JSON, "application/json", "application/json", True),
        (Format.JSON, "application/health+json", "application/health+json", True),
        (Format.TEXT, "text/plain", "text/plain; charset=utf-8", True),
        (Format.NAGIOS, "text/plain", "text/plain; charset=utf-8", True),
        (Format.HTML, "text/html", "text/html; charset=utf-8", False),
        (Format.PROMETHEUS, "text/plain", PROMETHEUS_TEXT, False),
        (Format.OPENMETRICS, "application/openmetrics-text", OPENMETRICS_TEXT, False),
    ],
    ids=["json", "health-json", "text", "nagios", "html", "prometheus", "openmetrics"],
)
def test_content_type_and_keeping(
    format_: Format, asked: str, content_type: str, kept: bool
) -> None:
    output = output_for(format_)
    assert output.media(asked) == content_type
    assert output.kept is kept


@pytest.mark.parametrize("format_", list(Format), ids=[f.value for f in Format])
def test_the_verdict_only_answer_names_no_check(format_: Format) -> None:
    output = output_for(format_)
    verdict = sample_verdict()
    full = output.render(verdict, PAGE)
    bare = output.render_verdict_only(verdict.status, PAGE)
    assert b"heartbeat" in full
    assert b"heartbeat" not in bare and b"worker" not in bare
    assert b"process_resident_memory_bytes" not in bare  # the adapter's own figures too


@pytest.mark.parametrize(
    ("format_", "line"),
    [
        (Format.TEXT, b"readyz check failed"),
        (Format.NAGIOS, b"HEALTH CRITICAL"),
        (Format.JSON, b'"status":"fail"'),
    ],
    ids=["text", "nagios", "json"],
)
def test_both_renderers_tell_the_same_verdict(format_: Format, line: bytes) -> None:
    verdict = sample_verdict()
    assert verdict.status is Status.FAIL
    output = output_for(format_)
    assert line in output.render(verdict, PAGE)
    assert line in output.render_verdict_only(verdict.status, PAGE)
