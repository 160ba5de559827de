"""Config loading: every valid form, and every invalid file paired with its exact errors."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import msgspec
import pytest

from adapter.config import ConfigError, load_config, meant_group, parse_config
from adapter.listener import DEFAULT_LISTEN
from adapter.registry import BUILTINS, PLUGIN_KEY, Registry
from probes import Duration
from probes.types import format_duration, parse_duration
from tests.sample_probes import Ok, Typed, WithDataclass

TESTDATA = Path(__file__).parent / "testdata"
INVALID = sorted((TESTDATA / "invalid").glob("*.yaml"))


#: Lists that come from the code, not written into each file by hand:
#: `{probe_types}` the built-in types then `plugin`, as an unknown check key
#: lists them; `{options of tcp}` a built-in probe's options, sorted, as an
#: unknown option lists them.
PLACEHOLDER = re.compile(r"\{(?:probe_types|options of (?P<probe>\w+))\}")


def expand_placeholder(match: re.Match[str]) -> str:
    if match["probe"] is None:
        return ", ".join([*sorted(BUILTINS), PLUGIN_KEY])
    options = Registry.discover([]).load(match["probe"]).Options
    assert options is not None and issubclass(options, msgspec.Struct)
    return ", ".join(sorted(field.encode_name for field in msgspec.structs.fields(options)))


def expected_errors(path: Path) -> list[str]:
    return [
        PLACEHOLDER.sub(expand_placeholder, line.removeprefix("# error: "))
        for line in path.read_text().splitlines()
        if line.startswith("# error: ")
    ]


def test_placeholders_stand_for_the_registrys_lists() -> None:
    types = PLACEHOLDER.sub(expand_placeholder, "{probe_types}").split(", ")
    assert types == [*sorted(BUILTINS), "plugin"]
    options = PLACEHOLDER.sub(expand_placeholder, "{options of exec}").split(", ")
    assert options == sorted(options) and "command" in options
    # Other braces, like a regex's, are the message's own.
    assert PLACEHOLDER.sub(expand_placeholder, "'^0?[0-7]{3}$'") == "'^0?[0-7]{3}$'"


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_config_reports_each_mistake_where_it_is(path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        # The built-in probe types only: messages that list them must not
        # change with what else is installed beside the adapter.
        load_config(path, Registry.discover([]), environ={})
    assert sorted(caught.value.errors) == sorted(expected_errors(path))
    assert caught.value.source == str(path)


def test_every_invalid_file_states_its_expected_errors() -> None:
    assert len(INVALID) > 30
    for path in INVALID:
        assert expected_errors(path), f"{path.name} has no '# error:' line"


def test_full_example_is_typed_and_defaults_apply() -> None:
    config = parse_config(
        """
service: orders-api
listen: "127.0.0.1:9999"
defaults: {interval: 10s, timeout: 2s, failure_threshold: 3, success_threshold: 2}
checks:
  - name: api
    groups: [ready]
    interval: 5s
    plugin: {class: "tests.sample_probes:Typed", max_depth: 100, window: 2m}
  - name: heartbeat
    groups: [live, ready]
    critical: false
    timeout: 250ms
    plugin: {class: "tests.sample_probes:Ok"}
  - name: dc
    plugin: {class: "tests.sample_probes:WithDataclass", url: "http://x"}
""",
        environ={},
    )
    assert config.service == "orders-api"
    assert config.listen == "127.0.0.1:9999"
    api, heartbeat, dc = config.checks
    assert (api.name, api.groups, api.critical) == ("api", ("ready",), True)
    assert (api.interval, api.timeout) == (5.0, 2.0)
    assert (api.failure_threshold, api.success_threshold) == (3, 2)
    assert api.probe_class is Typed and api.probe_type == "plugin"
    assert api.probe_config == Typed.Options(max_depth=100, window=Duration(120))
    assert dict(api.options) == {"max_depth": 100, "window": "2m"}
    assert heartbeat.groups == ("live", "ready") and heartbeat.critical is False
    assert (heartbeat.interval, heartbeat.timeout) == (10.0, 0.25)
    assert dc.probe_class is WithDataclass and dc.probe_config.retries == 3
    assert config.groups == {"live", "ready"}


def test_builtin_defaults_when_the_config_gives_none() -> None:
    config = parse_config("checks: [{name: a, plugin: {class: 'tests.sample_probes:Ok'}}]")
    (check,) = config.checks
    assert config.listen == DEFAULT_LISTEN and config.service is None
    assert (check.interval, check.timeout) == (10.0, 2.0)
    assert (check.failure_threshold, check.success_threshold) == (1, 1)
    assert check.groups == ("ready",) and check.critical is True
    assert check.probe_class is Ok


def test_probe_block_may_be_empty() -> None:
    config = parse_config("checks: [{name: a, plugin: {class: 'tests.sample_probes:Ok'}}]")
    probe = config.checks[0].make_probe(resources=None)  # type: ignore[arg-type]
    assert probe.name == "a" and dict(probe.options) == {}


@pytest.mark.parametrize(
    ("template", "environ", "expected"),
    [
        ("${QUEUE}", {"QUEUE": "orders"}, "orders"),
        ("${QUEUE:-fallback}", {}, "fallback"),
        ("${QUEUE:-}", {}, ""),
        ("${QUEUE:-fallback}", {"QUEUE": ""}, ""),
        ("pre-${A}-${B}-post", {"A": "1", "B": "2"}, "pre-1-2-post"),
        ("cost: $$5 and $HOME", {}, "cost: $5 and $HOME"),
        ("${WITH:-a:b}", {}, "a:b"),
    ],
    ids=[
        "set",
        "default",
        "empty-default",
        "set-but-empty",
        "several",
        "literal-dollar",
        "default-with-colon",
    ],
)
def test_environment_variables_are_expanded(
    template: str, environ: dict[str, str], expected: str
) -> None:
    text = (
        f"checks: [{{name: q, plugin: {{class: 'tests.sample_probes:Typed', max_depth: 1, "
        f"queue: '{template}'}}}}]"
    )
    config = parse_config(text, environ=environ)
    assert config.checks[0].probe_config.queue == expected


def test_expansion_happens_before_validation_so_numbers_can_come_from_variables() -> None:
    text = """
defaults: {interval: "${INTERVAL}", failure_threshold: "${THRESHOLD}"}
checks:
  - {name: q, plugin: {class: "tests.sample_probes:Typed", max_depth: "${DEPTH}"}}
"""
    config = parse_config(text, environ={"INTERVAL": "30s", "THRESHOLD": "3", "DEPTH": "250"})
    (check,) = config.checks
    assert check.interval == 30 and check.failure_threshold == 3
    assert check.probe_config.max_depth == 250


def test_a_variable_holding_the_wrong_type_names_its_origin_value() -> None:
    text = "checks: [{name: q, plugin: {class: 'tests.sample_probes:Typed', max_depth: '${D}'}}]"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, environ={"D": "lots"})
    assert caught.value.errors == [
        ("checks[0] (q).plugin.max_depth: expected an integer, got 'lots'")
    ]


def test_merge_keys_share_settings_without_counting_as_duplicates() -> None:
    text = """
checks:
  - &base {name: a, interval: 1s, timeout: 500ms, plugin: {class: "tests.sample_probes:Ok"}}
  - {<<: *base, name: b, timeout: 200ms}
"""
    config = parse_config(text)
    a, b = config.checks
    assert (a.interval, a.timeout) == (1.0, 0.5)
    assert (b.name, b.interval, b.timeout) == ("b", 1.0, 0.2)


def test_errors_are_reported_together_with_a_header() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(TESTDATA / "invalid" / "many_errors.yaml")
    report = caught.value.report()
    assert report.splitlines()[0].endswith("many_errors.yaml: 4 errors")
    assert "Traceback" not in report


def test_unreadable_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file: No such file"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ConfigError, match="cannot read the config file: Is a directory"):
        load_config(tmp_path / "dir.yaml")


def test_binary_and_oversized_files_are_refused(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"checks: \xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)
    huge = tmp_path / "huge.yaml"
    huge.write_text("# " + "x" * (1024 * 1024) + "\nchecks: []\n")
    with pytest.raises(ConfigError, match="larger than 1048576 bytes"):
        load_config(huge)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("10s", 10),
        ("2m", 120),
        ("1h", 3600),
        (30, 30),
        (1.5, 1.5),
        ("1.5s", 1.5),
        ("90", 90),
        (" 5s ", 5),
        (".5s", 0.5),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["30 sec", "5w", "-1s", "", "s", True, None, [1], float("nan"), -3]
)
def test_invalid_durations(text: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.25, "250ms"),
        (10, "10s"),
        (120, "2m"),
        (90, "90s"),
        (3600, "1h"),
        (0, "0s"),
        (1.5, "1.5s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_status_codes_default_and_override() -> None:
    default = parse_config("checks: [{name: a, plugin: {class: 'tests.sample_probes:Ok'}}]")
    assert (
        default.server.status_codes.pass_,
        default.server.status_codes.warn,
        default.server.status_codes.fail,
    ) == (200, 200, 503)
    consul = parse_config(
        "server: {status_codes: {warn: 429, fail: 500}}\n"
        "checks: [{name: a, plugin: {class: 'tests.sample_probes:Ok'}}]"
    )
    assert (
        consul.server.status_codes.pass_,
        consul.server.status_codes.warn,
        consul.server.status_codes.fail,
    ) == (200, 429, 500)


def test_one_run_reports_every_kind_of_mistake_in_file_order() -> None:
    text = """
server: {details: private, access_log: 2, keepalive_timeout: 2h}
listen: "localhost:99999"
defaults: {timeout: 1ms}
checks:
  - name: a
    interval: 50ms
    groups: [redy]
    critical: maybe
    http: {url: "http://127.0.0.1:1/", headers: {X-Debug: on, X-Country: NO}}
  - name: b
    tcp: {host: "${HEALTH_ADAPTER_TEST_UNSET}", port: 70000}
  - name: a
    process: {name: "a-very-long-process-name", min_count: -1}
service: ""
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, registry=Registry.discover([]), environ={})
    assert [error.split(": ")[0] for error in caught.value.errors] == [
        "server.details",  # a rule between keys, beside the keys' own mistakes
        "server.access_log",
        "server.keepalive_timeout",
        "listen",
        "defaults.timeout",  # a range, once where it is written
        "checks[0] (a).interval",
        "checks[0] (a).groups[0]",
        "checks[0] (a).critical",
        "checks[0] (a).http.headers.X-Debug",  # every bad value of one mapping
        "checks[0] (a).http.headers.X-Country",
        "checks[1] (b).tcp.host",  # an unset variable, found before the rest
        "checks[1] (b).tcp.port",
        "checks[2] (a).name",  # a duplicate name, though its check is invalid too
        "checks[2] (a).process.name",  # a rule of the probe, beside its bad key
        "checks[2] (a).process.min_count",
        "service",
    ]


@pytest.mark.parametrize(
    ("group", "meant"),
    [
        ("redy", "ready"),
        ("Ready", "ready"),
        ("READY", "ready"),
        ("lve", "live"),
        ("Live", "live"),
        ("startp", "startup"),
        ("readiness", "ready"),
        ("Liveness", "live"),
        ("livez", "live"),
        ("readyz", "ready"),
        ("ready", None),
        ("live", None),
        ("db", None),
        ("batch", None),
        ("nightly", None),
    ],
)
def test_a_group_name_close_to_an_endpoint_group_is_taken_for_a_typo(
    group: str, meant: str | None
) -> None:
    assert meant_group(group) == meant


def test_grpc_health_without_the_grpc_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "grpc", None)  # as if grpcio were not installed
    text = 'server: {grpc: {listen: "127.0.0.1:9182"}}\nchecks:\n  - {name: a, file: {path: /x}}\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(text, environ={})
    assert caught.value.errors == [
        "server.grpc.listen: serving gRPC health needs the grpc extra: "
        "pip install 'health-adapter[grpc]'"
    ]
