"""Config fuzzing: whatever text arrives, the loader returns a Config or raises a
ConfigError whose every message says where the mistake is. Nothing else, ever.

The examples are bounded so this runs in seconds; for a longer hunt:

    HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/adapter/test_config_fuzz.py
"""

from __future__ import annotations

import os
import re
import string
from typing import Any

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from adapter.config import MAX_NODES, Config, ConfigError, parse_config
from adapter.registry import Registry
from tests.conftest import ROOT

settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "long",
    max_examples=20_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REGISTRY = Registry.discover()
ENVIRON = {"PORT": "8080", "TOKEN": "secret-token-value"}

#: Where an error may say it is: a line of the file, a key path, or the file as a whole.
_KEY = (
    r"(?:[A-Za-z0-9_-]+|'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\""
    r"|-?[0-9.e+]+|None|True|False|inf|nan)"
)
_LOCATED = re.compile(
    rf"^(line \d+, column \d+: "
    rf"|{_KEY}(?:\.{_KEY}|\[\d+\](?: \([^()\n]+\))?)*: "
    r"|the config )"
)

SEEDS = [
    (ROOT / "examples" / "demo" / "health.yaml").read_text(),
    *(
        path.read_text()
        for path in sorted((ROOT / "tests/adapter/testdata/invalid").glob("*.yaml"))
        if path.name not in {"plugin_import_error.yaml"}
    ),
    """
service: orders
listen: "127.0.0.1:${PORT}"
server: {status_codes: {warn: 429}, max_connections: 10, keepalive_timeout: 2s}
defaults: &defaults {interval: 10s, timeout: 2s}
checks:
  - name: api
    <<: *defaults
    http: {url: "http://127.0.0.1:${PORT}/", expect_status: ["2xx"], body_contains: ok,
           headers: {Authorization: "Bearer ${TOKEN}"}}
  - {name: beat, groups: [live, ready], file: {path: /tmp/x, max_age: 30s}}
  - {name: worker, critical: false, process: {cmdline: "celery .* worker", min_count: 2}}
  - {name: q, plugin: {class: "tests.sample_probes:Typed", max_depth: 5, window: 1m}}
""",
]

TOKENS = [
    ":",
    ": ",
    "- ",
    "-",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a ",
    "*a",
    "<<: *a",
    "!!str ",
    "!!int ",
    "!!python/object:os.system ",
    "${",
    "${PORT}",
    "${NOPE}",
    "$$",
    "}",
    "'",
    '"',
    "\t",
    "\n",
    "  ",
    "#",
    "?",
    "|",
    ">",
    "%YAML 1.1\n",
    "---\n",
    "...\n",
    "\x00",
    "\ufeff",
    "é",
    "\ud7ff",
    "10s",
    "-1",
    "1e999",
    "nan",
    ".inf",
    "null",
    "~",
    "true",
    "0x1F",
    "http:",
    "file:",
    "process:",
    "plugin:",
    "name:",
    "checks:",
]


def assert_loads_or_locates(text: str) -> Config | None:
    try:
        return parse_config(text, "fuzz.yaml", REGISTRY, ENVIRON)
    except ConfigError as exc:
        assert exc.errors, "a ConfigError without a message"
        for error in exc.errors:
            assert _LOCATED.match(error), f"not located: {error!r}"
            assert "Traceback" not in error
        return None


@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    assert_loads_or_locates(text)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 6))):
        if not text:
            break
        at = draw(st.integers(0, len(text)))
        kind = draw(
            st.sampled_from(
                ["insert", "delete", "replace", "duplicate-line", "swap-lines", "indent"]
            )
        )
        if kind == "insert":
            piece = draw(st.sampled_from(TOKENS) | st.text(string.printable, max_size=5))
            text = text[:at] + piece + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        elif kind == "replace":
            piece = draw(st.sampled_from(TOKENS))
            text = text[:at] + piece + text[at + len(piece) :]
        else:
            lines = text.splitlines(keepends=True)
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if kind == "duplicate-line":
                lines.insert(j, lines[i])
            elif kind == "swap-lines":
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines[i] = " " * draw(st.integers(1, 4)) + lines[i]
            text = "".join(lines)
    return text


@given(mutated())
def test_mutated_configs(text: str) -> None:
    assert_loads_or_locates(text)


KEYS = [
    "checks",
    "name",
    "groups",
    "critical",
    "interval",
    "timeout",
    "failure_threshold",
    "success_threshold",
    "http",
    "url",
    "file",
    "path",
    "process",
    "cmdline",
    "plugin",
    "class",
    "service",
    "listen",
    "server",
    "defaults",
    "status_codes",
    "max_age",
    "expect_status",
    "headers",
    "min_count",
    "max_connections",
    "details",
    "token_env",
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(
        [
            "10s",
            "250ms",
            "http://127.0.0.1:1/",
            "/tmp/x",
            "ready",
            "live",
            "tests.sample_probes:Ok",
            "${PORT}",
            "2xx",
            "token",
            "public",
        ]
    )
    | st.text(max_size=20)
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@given(st.dictionaries(st.sampled_from(KEYS), DOCUMENTS, max_size=6))
def test_random_documents_of_the_right_vocabulary(document: dict[str, Any]) -> None:
    assert_loads_or_locates(yaml.safe_dump(document, allow_unicode=True))


EXECUTED: list[str] = []


def boom(*args: Any) -> None:  # what a !!python tag would call, if it ever worked
    EXECUTED.append(repr(args))


@given(
    tag=st.sampled_from(
        [
            "!!python/object/apply:",
            "!!python/object/new:",
            "!!python/name:",
            "!!python/object:",
            "!!python/module:",
            "!<tag:yaml.org,2002:python/object/apply:",
        ]
    ),
    where=st.sampled_from(["top", "check", "option"]),
)
def test_python_tags_are_refused_and_never_run(tag: str, where: str) -> None:
    target = "tests.adapter.test_config_fuzz.boom"
    value = f"{tag}{target}{'>' if tag.startswith('!<') else ''} [1]"
    text = {
        "top": f"service: {value}\nchecks: [{{name: a, plugin: {{class: 'tests.sample_probes:Ok'}}}}]",
        "check": f"checks: [{{name: {value}, plugin: {{class: 'tests.sample_probes:Ok'}}}}]",
        "option": f"checks: [{{name: a, file: {{path: {value}}}}}]",
    }[where]
    assert assert_loads_or_locates(text) is None
    assert EXECUTED == []


@given(width=st.integers(2, 12), depth=st.integers(2, 9))
def test_alias_bombs_are_refused_quickly(width: int, depth: int) -> None:
    lines = ['a0: &a0 ["x"]']
    for level in range(1, depth + 1):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append("checks: [{name: a, plugin: {class: 'tests.sample_probes:Ok'}}]")
    text = "\n".join(lines) + "\n"
    expanded = sum(width**level for level in range(depth + 1))
    assume(expanded > 2 * MAX_NODES or expanded < MAX_NODES // 2)
    try:
        parse_config(text, "bomb.yaml", REGISTRY, ENVIRON)
    except ConfigError as exc:
        refused = any("more than 100000 values" in error for error in exc.errors)
        assert refused == (expanded > MAX_NODES), exc.errors
    else:
        raise AssertionError("a top-level aNN key is unknown: the config cannot load")
