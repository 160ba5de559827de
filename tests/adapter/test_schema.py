"""The JSON Schema of the config: current in the repo, valid, and in agreement with the
config loader on real configs, checked by an independent validator (jsonschema)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from adapter.config import ConfigError, parse_config
from adapter.registry import BUILTINS, EntryPointSpec, Registry
from adapter.schema import DIALECT, config_schema, option_docs, render_schema
from tests.conftest import ROOT

SHIPPED = ROOT / "schema" / "health-adapter.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(config_schema(Registry.discover([])))


def test_the_shipped_schema_is_current() -> None:
    expected = render_schema(config_schema(Registry.discover([])))
    assert SHIPPED.read_text() == expected, (
        "schema/health-adapter.schema.json is out of date: regenerate it with "
        "`health-adapter schema --builtin > schema/health-adapter.schema.json`"
    )


def test_it_is_a_valid_draft_2020_12_schema() -> None:
    schema = json.loads(SHIPPED.read_text())
    assert schema["$schema"] == DIALECT
    jsonschema.Draft202012Validator.check_schema(schema)


def yaml_blocks(path: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", path.read_text(), re.DOTALL)


DOCUMENTED = [
    pytest.param((ROOT / "examples/demo/health.yaml").read_text(), id="demo"),
    *(
        pytest.param(block, id=f"README-{i}")
        for i, block in enumerate(yaml_blocks(ROOT / "README.md"))
    ),
]


@pytest.mark.parametrize("text", DOCUMENTED)
def test_documented_configs_are_valid(
    validator: jsonschema.Draft202012Validator, text: str
) -> None:
    assert list(validator.iter_errors(yaml.safe_load(text))) == []


# Each is a config the loader accepts: the schema must accept it too.
VALID = {
    "every-probe-type": """
checks:
  - {name: api, http: {url: "http://127.0.0.1:8000/", expect_status: [200, "2xx"]}}
  - {name: beat, groups: [live, ready], file: {path: /tmp/beat, max_age: 30s}}
  - {name: worker, critical: false, process: {cmdline: "worker .*", min_count: 1}}
  - {name: db, tcp: {port: 5432, tls: true, tls_verify: false}}
  - {name: redis, tcp: {port: 6379, send: "PING\\r\\n", expect: "^\\\\+PONG"}}
  - {name: disk, timeout: 10s, exec: {command: [/usr/lib/nagios/plugins/check_disk, -w, 10%]}}
  - {name: script, exec: {command: "df / | tail -1", shell: true, env: {A: b}, cwd: /tmp}}
  - {name: rpc, grpc: {port: 50051, service: orders}}
  - {name: queue, plugin: {class: "tests.sample_probes:Typed", max_depth: 100}}
""",
    "defaults-and-server": """
service: orders
listen: ":9180"
server: {status_codes: {pass: 200, warn: 429, fail: 503}}
defaults: {interval: 5s, timeout: 500ms, failure_threshold: 3, success_threshold: 2}
checks: [{name: a, interval: 0.5, tcp: {port: 22}}]
""",
    "environment-references": """
checks:
  - name: a
    interval: ${INTERVAL:-10s}
    critical: ${CRITICAL:-true}
    tcp: {port: "${PORT}", expect: "${BANNER}"}
  - {name: b, http: {url: "${URL}", expect_status: ["${STATUS}"]}}
""",
}


@pytest.mark.parametrize("text", VALID.values(), ids=VALID.keys())
def test_configs_the_loader_accepts_are_valid(
    validator: jsonschema.Draft202012Validator, text: str
) -> None:
    environ = {
        "INTERVAL": "2s",
        "CRITICAL": "false",
        "PORT": "22",
        "BANNER": "^SSH",
        "URL": "http://127.0.0.1/",
        "STATUS": "200",
    }
    parse_config(text, registry=Registry.discover([]), environ=environ)
    assert [error.message for error in validator.iter_errors(yaml.safe_load(text))] == []


# Each is a config the loader refuses for its structure: the schema must refuse it too.
INVALID = {
    "unknown-top-key": "listne: ':80'\nchecks: [{name: a, tcp: {port: 1}}]",
    "no-checks": "service: x",
    "unknown-check-key": "checks: [{name: a, intreval: 5s, tcp: {port: 1}}]",
    "unknown-probe-type": "checks: [{name: a, htpp: {url: 'http://x'}}]",
    "two-probe-blocks": "checks: [{name: a, tcp: {port: 1}, file: {path: /x}}]",
    "no-probe-block": "checks: [{name: a}]",
    "no-name": "checks: [{tcp: {port: 1}}]",
    "bad-name": "checks: [{name: 'a b', tcp: {port: 1}}]",
    "unknown-option": "checks: [{name: a, tcp: {port: 1, sned: x}}]",
    "missing-option": "checks: [{name: a, exec: {shell: true}}]",
    "wrong-type": "checks: [{name: a, tcp: {port: eighty}}]",
    "out-of-range": "checks: [{name: a, tcp: {port: 70000}}]",
    "bad-duration": "checks: [{name: a, interval: 5 sec, tcp: {port: 1}}]",
    "bad-status-code": "server: {status_codes: {warn: 999}}\nchecks: [{name: a, tcp: {port: 1}}]",
    "plugin-without-class": "checks: [{name: a, plugin: {max_depth: 1}}]",
}


@pytest.mark.parametrize("text", INVALID.values(), ids=INVALID.keys())
def test_configs_the_loader_refuses_are_invalid(
    validator: jsonschema.Draft202012Validator, text: str
) -> None:
    with pytest.raises(ConfigError):
        parse_config(text, registry=Registry.discover([]), environ={})
    assert list(validator.iter_errors(yaml.safe_load(text))) != []


def check_branch(schema: dict[str, Any], probe_type: str) -> dict[str, Any]:
    return next(
        branch for branch in schema["$defs"]["Check"]["anyOf"] if probe_type in branch["required"]
    )


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_option_is_in_the_schema_with_a_description(name: str) -> None:
    registry = Registry.discover([])
    schema = config_schema(registry)
    block = check_branch(schema, name)["properties"][name]
    options = schema["$defs"][block["$ref"].rsplit("/", 1)[1]]
    docs = option_docs(registry.load(name))
    assert docs is not None
    assert list(options["properties"]) == [doc.name for doc in docs]
    assert options["additionalProperties"] is False
    assert all(doc.description for doc in docs)


def test_an_installed_plugins_options_are_in_the_schema() -> None:
    registry = Registry.discover(
        [
            EntryPointSpec("queue_depth", "tests.sample_probes:Typed", "acme-probes", "1.0"),
            EntryPointSpec("loose", "tests.sample_probes:Ok", "acme-probes", "1.0"),
            EntryPointSpec("broken", "no_such_module:Probe", "acme-probes", "1.0"),
        ]
    )
    schema = config_schema(registry)
    validator = jsonschema.Draft202012Validator(schema)

    def errors(block: str) -> list[str]:
        return [e.message for e in validator.iter_errors(yaml.safe_load(f"checks: [{block}]"))]

    assert errors("{name: q, queue_depth: {max_depth: 3, window: 2m}}") == []
    ref = check_branch(schema, "queue_depth")["properties"]["queue_depth"]["$ref"]
    typed = schema["$defs"][ref.rsplit("/", 1)[1]]["properties"]
    assert typed["window"]["default"] == "1m"  # a Duration default, as a config writes it
    assert errors("{name: q, queue_depth: {max_depth: 3, windw: 2m}}") != []
    assert errors("{name: q, queue_depth: {window: 2m}}") != []  # max_depth is required
    assert errors("{name: l, loose: {anything: [1, 2]}}") == []  # no Options: any keys
    assert "not loadable" in check_branch(schema, "broken")["properties"]["broken"]["description"]


def test_a_dataclass_options_plugin_refuses_unknown_keys_in_the_schema() -> None:
    registry = Registry.discover(
        [EntryPointSpec("dc", "tests.sample_probes:WithDataclass", "acme-probes", "1.0")]
    )
    validator = jsonschema.Draft202012Validator(config_schema(registry))
    ok = yaml.safe_load("checks: [{name: d, dc: {url: 'http://x', retries: 2}}]")
    unknown = yaml.safe_load("checks: [{name: d, dc: {url: 'http://x', retry: 2}}]")
    assert list(validator.iter_errors(ok)) == []
    assert list(validator.iter_errors(unknown)) != []


def _depth(node: object) -> int:
    if isinstance(node, dict):
        return 1 + max((_depth(value) for value in node.values()), default=0)
    if isinstance(node, list):
        return 1 + max((_depth(value) for value in node), default=0)
    return 0


def test_check_settings_are_wrapped_once_whatever_the_number_of_probe_types() -> None:
    schema = json.loads(SHIPPED.read_text())
    depths = {
        _depth(branch["properties"]["groups"]) for branch in schema["$defs"]["Check"]["anyOf"]
    }
    assert depths == {_depth(schema["$defs"]["Check"]["anyOf"][0]["properties"]["groups"])}
    assert depths.pop() <= 5
