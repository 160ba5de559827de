"""Content negotiation: ?format= first, then Accept, else the endpoint's default."""

from __future__ import annotations

import pytest

from adapter.negotiation import Format, UnknownFormat, choose, parse_accept

PROMETHEUS_SCRAPE = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


@pytest.mark.parametrize(
    ("query", "accept", "default", "expected", "media_type"),
    [
        ({}, None, Format.JSON, Format.JSON, "application/health+json"),
        ({}, "*/*", Format.JSON, Format.JSON, "application/health+json"),
        ({}, "*/*", Format.HTML, Format.HTML, "text/html"),
        ({}, "application/json", Format.JSON, Format.JSON, "application/json"),
        ({}, "application/health+json", Format.HTML, Format.JSON, "application/health+json"),
        ({}, BROWSER, Format.JSON, Format.HTML, "text/html"),
        ({}, "text/plain", Format.JSON, Format.TEXT, "text/plain"),
        ({}, "text/plain", Format.PROMETHEUS, Format.PROMETHEUS, "text/plain"),
        ({}, "text/plain;version=0.0.4", Format.JSON, Format.PROMETHEUS, "text/plain"),
        (
            {},
            PROMETHEUS_SCRAPE,
            Format.PROMETHEUS,
            Format.OPENMETRICS,
            "application/openmetrics-text",
        ),
        ({}, PROMETHEUS_SCRAPE, Format.JSON, Format.OPENMETRICS, "application/openmetrics-text"),
        ({}, "text/plain;q=0.5, application/json", Format.HTML, Format.JSON, "application/json"),
        ({}, "text/*", Format.JSON, Format.TEXT, "text/plain"),
        ({}, "text/plain, text/*, */*", Format.JSON, Format.TEXT, "text/plain"),
        ({}, "application/json, */*", Format.HTML, Format.JSON, "application/json"),
        ({}, "image/png", Format.JSON, Format.JSON, "application/health+json"),
        ({}, "text/html;q=0", Format.HTML, Format.HTML, "text/html"),
        ({}, "garbage, ;;, /", Format.JSON, Format.JSON, "application/health+json"),
        ({}, "text/html;q=abc, application/json", Format.HTML, Format.JSON, "application/json"),
        ({"format": "nagios"}, BROWSER, Format.JSON, Format.NAGIOS, "text/plain"),
        ({"format": "HTML"}, None, Format.JSON, Format.HTML, "text/html"),
        ({"format": "json"}, BROWSER, Format.HTML, Format.JSON, "application/health+json"),
        ({"format": "prometheus"}, None, Format.JSON, Format.PROMETHEUS, "text/plain"),
        (
            {"format": "openmetrics"},
            None,
            Format.JSON,
            Format.OPENMETRICS,
            "application/openmetrics-text",
        ),
        ({"verbose": ""}, None, Format.JSON, Format.TEXT, "text/plain"),
        (
            {"verbose": "", "format": "json"},
            None,
            Format.JSON,
            Format.JSON,
            "application/health+json",
        ),
    ],
    ids=[
        "no-accept",
        "anything",
        "anything-page",
        "plain-json",
        "health-json-on-page",
        "browser",
        "text",
        "text-on-metrics",
        "prometheus-version",
        "prometheus-scrape",
        "prometheus-scrape-health",
        "quality",
        "text-wildcard",
        "consul",
        "named-beats-wildcard",
        "unacceptable-falls-back",
        "refused-default-still-default",
        "malformed",
        "bad-quality",
        "format-beats-accept",
        "format-case",
        "format-json",
        "format-prometheus",
        "format-openmetrics",
        "verbose",
        "format-beats-verbose",
    ],
)
def test_choose(
    query: dict[str, str], accept: str | None, default: Format, expected: Format, media_type: str
) -> None:
    choice = choose(query, accept, default)
    assert (choice.format, choice.media_type) == (expected, media_type)


def test_an_unknown_format_is_an_error_that_lists_the_choices() -> None:
    with pytest.raises(
        UnknownFormat,
        match="unknown format 'xml'; use one of: json, text, nagios, html, prometheus, openmetrics",
    ):
        choose({"format": "xml"}, None, Format.JSON)


def test_parse_accept_keeps_only_the_version_parameter() -> None:
    (media,) = parse_accept('Text/Plain; Version="0.0.4"; charset=utf-8; q=0.3')
    assert (media.type, media.subtype, dict(media.params), media.quality) == (
        "text",
        "plain",
        {"version": "0.0.4"},
        0.3,
    )
