"""The status page: self-contained, escaped, and showing every check."""

from __future__ import annotations

import html.parser
import re

import pytest

from adapter.config import CheckConfig
from adapter.formats.html import ago, observed, status_page
from adapter.health import judge, one_check_verdict, shutting_down
from adapter.state import CheckState
from probes import Result
from tests.adapter.formats.samples import (
    CHECKS,
    NOW,
    STARTED,
    STATES,
    check,
    sample_verdict,
    state,
)

WALL_NOW = STARTED + 125


class Elements(html.parser.HTMLParser):
    """Collects the tags and the text of a page, as a browser would parse it."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Elements:
    elements = Elements()
    elements.feed(page)
    return elements


def test_the_page_shows_every_check_with_its_state() -> None:
    page = status_page(sample_verdict(), service="orders-api", now=WALL_NOW, version="1.2.3")
    elements = parse(page)
    text = " ".join(elements.text)
    for name in ["api", "heartbeat", "worker", "cache", "fresh"]:
        assert name in text
    rows = [attrs.get("class") for tag, attrs in elements.tags if tag == "tr"]
    # rows[0] is the header; failing first, then warning, then passing.
    assert rows[1:] == ["fail", "fail", "fail", "warn", "pass"]
    assert "Failing" in text and "orders-api" in text and "health-adapter 1.2.3" in text
    assert "2 failing" not in text and "3 failing" in text
    assert "12.5 ms" in text and "reason: process_missing" in text
    # The strip shows each recorded run, oldest first, the rest of it empty.
    strips = re.findall(r'<div class="strip">(.*?)</div>', page)
    assert len(strips) == 5
    assert re.findall(r'class="(\w+)" title', strips[0]) == ["pass", "fail"]
    assert strips[2].count("<i></i>") == 20


def test_check_output_is_escaped() -> None:
    page = status_page(
        sample_verdict(), service="<script>alert(1)</script>", now=WALL_NOW, version="1"
    )
    elements = parse(page)
    assert not any(tag in ("b", "script") for tag, _ in elements.tags)
    assert "no <b>process</b> matches a|b" in "".join(elements.text)
    assert "&lt;script&gt;" in page


def test_the_page_is_self_contained_and_refreshes_itself() -> None:
    page = status_page(sample_verdict(), service=None, now=WALL_NOW, version="1")
    elements = parse(page)
    assert ("meta", {"http-equiv": "refresh", "content": "5"}) in elements.tags
    for tag, attrs in elements.tags:
        assert "src" not in attrs, tag
        if tag == "link":
            assert (attrs.get("href") or "").startswith("data:"), attrs
    assert "@import" not in page and "url(" not in page
    assert "<script" not in page
    # A browser asks every link for HTML: links to other formats say which.
    links = [attrs["href"] for tag, attrs in elements.tags if tag == "a"]
    assert "/health?format=json" in links and "/metrics?format=prometheus" in links
    assert all("format=" in link or "verbose" in link for link in links), links


def test_one_check_lists_its_recent_runs_newest_first() -> None:
    name = "worker"
    verdict = one_check_verdict(CHECKS[2], STATES[name], NOW)
    page = status_page(verdict, service=None, now=WALL_NOW, version="1", with_runs=True)
    text = " ".join(parse(page).text)
    assert "Recent runs of worker (1 pass, 0 warn, 1 fail since start)" in text
    runs = re.findall(r'<tr class="(\w+)"><td class="num" title', page)
    assert runs == ["fail", "pass"]


def test_notes_for_exclusions_and_shutdown() -> None:
    checks = [check("a"), check("b")]
    verdict = judge(checks, {"a": state(Result("pass"))}, NOW, exclude=["b", "nope"])
    text = " ".join(
        parse(status_page(shutting_down(verdict), service=None, now=WALL_NOW, version="1")).text
    )
    assert "Shutting down" in text
    assert "Excluded on request: b." in text
    assert "No check to exclude named nope." in text


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (None, "ms", "—"),
        (12.5, "ms", "12.5 ms"),
        (2, "processes", "2 processes"),
        (1234.5, None, "1,234"),
        (42.25, "s", "42.2 s"),
        (1048576, "B", "1,048,576 B"),
        (1, "processes", "1 process"),
        (1, "items", "1 item"),
        (1, "queries", "1 query"),
        (1, "matches", "1 match"),
        (1, "bytes", "1 byte"),
        (1, "ms", "1 ms"),
        (1, "iops", "1 iops"),
        (1, "%", "1 %"),
        (4838, "MiB", "4,838 MiB"),
        (0, "processes", "0 processes"),
    ],
    ids=[
        "none",
        "ms",
        "count",
        "thousands",
        "tens",
        "int-thousands",
        "one-process",
        "one-item",
        "one-query",
        "one-match",
        "one-byte",
        "one-ms",
        "abbreviation",
        "percent",
        "scale-kept",
        "zero-is-plural",
    ],
)
def test_observed(value: float | None, unit: str | None, expected: str) -> None:
    assert observed(value, unit) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-1, "0s ago"),
        (45.9, "45s ago"),
        (192, "3m 12s ago"),
        (7500, "2h 5m ago"),
        (3 * 86400 + 4 * 3600 + 59, "3d 4h ago"),
    ],
    ids=["clock-skew", "seconds", "minutes", "hours", "days"],
)
def test_ago(seconds: float, expected: str) -> None:
    assert ago(seconds) == expected


def test_an_empty_group_says_so() -> None:
    page = status_page(judge([], {}, NOW), service=None, now=WALL_NOW, version="1")
    text = " ".join(parse(page).text)
    assert "Healthy" in text and "No checks here." in text and "no checks" in text


def many(total: int, failing: set[int]) -> tuple[list[CheckConfig], dict[str, CheckState]]:
    """field-cases/20 at scale: `total` sentinel checks with 20 runs each, a few failing."""
    checks = [check(f"svc{i:04d}", probe_type="file") for i in range(total)]
    states = {}
    for i, c in enumerate(checks):
        if i in failing:
            result = Result("fail", f"/srv/{c.name} does not exist", reason="file_missing")
        else:
            result = Result("pass", "modified 0.3s ago", 0.3, "s")
        states[c.name] = state(*[result] * 20)
    return checks, states


def test_failing_rows_come_first() -> None:
    checks, states = many(40, {15, 18, 39})
    page = status_page(judge(checks, states, NOW), service=None, now=WALL_NOW, version="1")
    rows = re.findall(
        r'<tr class="(\w+)"><td class="check"><div class="name"><a [^>]*>(\w+)<', page
    )
    assert rows[:4] == [
        ("fail", "svc0015"),
        ("fail", "svc0018"),
        ("fail", "svc0039"),
        ("pass", "svc0000"),
    ]
    assert len(rows) == 40


def test_thousands_of_checks_make_a_compact_page() -> None:
    checks, states = many(2000, {150, 1800, 1999})
    page = status_page(judge(checks, states, NOW), service=None, now=WALL_NOW, version="1")
    # Full rows (20 runs with their outputs each) made 3.9 MB; the compact page:
    assert len(page.encode()) < 250_000
    elements = parse(page)
    rows = [attrs.get("class") for tag, attrs in elements.tags if tag == "tr"]
    assert rows[1:] == ["fail", "fail", "fail"]
    text = " ".join(elements.text)
    assert "/srv/svc1999 does not exist" in text and "1,997 passing checks" in text
    links = {attrs["href"] for tag, attrs in elements.tags if tag == "a"}
    assert all(f"/health/{c.name}?format=html" in links for c in checks)
    # The rows come before the list of passing names.
    assert page.index("svc1999 does not exist") < page.index(">svc0000<")


def test_a_compact_page_with_nothing_failing_says_so() -> None:
    checks, states = many(100, set())
    text = " ".join(
        parse(status_page(judge(checks, states, NOW), service=None, now=WALL_NOW, version="1")).text
    )
    assert "Every check passes." in text and "100 passing checks" in text


def test_a_compact_page_cuts_long_outputs_in_rows() -> None:
    checks, states = many(100, set())
    states["svc0007"] = state(Result("fail", "y" * 4000))
    page = status_page(judge(checks, states, NOW), service=None, now=WALL_NOW, version="1")
    assert "y" * 299 + "…" in page and "y" * 300 not in page
