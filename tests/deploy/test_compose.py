"""deploy/compose/: the demo app and the adapter side by side under the Compose spec,
the same checks as the pod example, the adapter in the app's namespaces."""

from __future__ import annotations

from typing import Any

import yaml

from adapter.config import load_config
from tests.conftest import ROOT

COMPOSE = ROOT / "deploy" / "compose"
KUBE = ROOT / "deploy" / "kubernetes"


def services() -> dict[str, Any]:
    document = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    found: dict[str, Any] = document["services"]
    return found


def test_the_adapter_shares_the_app_s_pid_and_network_namespaces() -> None:
    adapter = services()["health-adapter"]
    assert adapter["pid"] == "service:app"
    assert adapter["network_mode"] == "service:app"
    assert adapter["depends_on"] == ["app"]
    # Its port is published where its network namespace is: on the app.
    assert services()["app"]["ports"] == ["127.0.0.1:${HEALTH_PORT:-9180}:9180"]
    assert "ports" not in adapter


def test_the_config_is_valid_and_checks_what_the_pod_example_checks() -> None:
    config = load_config(COMPOSE / "config.yaml")
    config_map = yaml.safe_load((KUBE / "configmap.yaml").read_text())
    pod = yaml.safe_load(config_map["data"]["config.yaml"])
    assert {check.name: dict(check.options) for check in config.checks} == {
        check["name"]: next(v for k, v in check.items() if k in ("http", "file", "process"))
        for check in pod["checks"]
    }
    mounts = services()["health-adapter"]["volumes"]
    assert "./config.yaml:/etc/health-adapter/config.yaml:ro,Z" in mounts
    assert "shared:/shared:ro" in mounts
    assert "shared:/shared" in services()["app"]["volumes"]


def test_both_containers_are_hardened() -> None:
    for name, service in services().items():
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert service["security_opt"] == ["no-new-privileges"], name
