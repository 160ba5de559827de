"""The status page: self-contained, escaped, and showing every check."""

from __future__ import annotations

import html.parser
import re

import pytest

from adapter.formats.html import ago, observed, status_page
from adapter.health import judge, judge_alone, shutting_down
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
    assert rows[1:] == ["pass", "warn", "fail", "fail", "fail"]  # rows[0] is the header
    assert "Failing" in text and "orders-api" in text and "health-adapter 1.2.3" in text
    assert "2 failing" not in text and "3 failing" in text
    assert "12.5 ms" in text and "reason: process_missing" in text
    # The strip shows each recorded run, oldest first, the rest of it empty.
    strips = re.findall(r'<div class="strip">(.*?)</div>', page)
    assert len(strips) == 5
    assert re.findall(r'class="(\w+)" title', strips[2]) == ["pass", "fail"]
    assert strips[4].count("<i></i>") == 20


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
    verdict = judge_alone(CHECKS[2], STATES[name], NOW)
    page = status_page(verdict, service=None, now=WALL_NOW, version="1", detailed=True)
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
    ],
    ids=["none", "ms", "count", "thousands", "tens", "int-thousands"],
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
