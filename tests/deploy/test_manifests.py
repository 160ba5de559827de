"""The Kubernetes examples in deploy/kubernetes/ and the files baked into the image:
the adapter config they carry is valid, every probe and scrape path they name is
one the adapter serves, the three pod shapes agree, and the hardening is there."""

from __future__ import annotations

import configparser
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient

from adapter.config import Config, load_config, parse_config
from adapter.server import make_app
from tests.conftest import ROOT, free_port

KUBE = ROOT / "deploy" / "kubernetes"
IMAGE_FILES = ROOT / "deploy" / "image"
PORT = 9180
POD_FILES = ["pod.yaml", "deployment.yaml", "pod-native-sidecar.yaml"]


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((KUBE / name).read_text())
    assert isinstance(document, dict)
    return document


def pod_spec(name: str) -> dict[str, Any]:
    document = load(name)
    spec = (
        document["spec"]["template"]["spec"]
        if document["kind"] == "Deployment"
        else document["spec"]
    )
    assert isinstance(spec, dict)
    return spec


def metadata(name: str) -> dict[str, Any]:
    document = load(name)
    meta = (
        document["spec"]["template"]["metadata"]
        if document["kind"] == "Deployment"
        else document["metadata"]
    )
    assert isinstance(meta, dict)
    return meta


def containers(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    every = [*spec.get("initContainers", []), *spec["containers"]]
    return {container["name"]: container for container in every}


def demo_config() -> Config:
    config_map = load("configmap.yaml")
    return parse_config(config_map["data"]["config.yaml"], "configmap.yaml", environ={})


def version() -> str:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser["metadata"]["version"]


def test_the_config_map_holds_a_valid_config_with_the_three_seed_probes() -> None:
    config = demo_config()
    assert config.listen == f"0.0.0.0:{PORT}"
    assert {check.name: check.probe_type for check in config.checks} == {
        "api": "http",
        "heartbeat": "file",
        "worker": "process",
    }
    # Liveness only on local, restart-worthy things: the HTTP endpoint is
    # readiness only (a failing dependency behind it is no reason to restart).
    live = {check.name for check in config.checks if "live" in check.groups}
    assert live == {"heartbeat", "worker"}


def test_the_image_default_config_is_valid() -> None:
    config = load_config(IMAGE_FILES / "config.yaml", environ={})
    assert config.listen == f"0.0.0.0:{PORT}"


@pytest.mark.parametrize("name", POD_FILES)
def test_each_pod_shape_wires_the_adapter_to_the_app(name: str) -> None:
    spec = pod_spec(name)
    by_name = containers(spec)
    app, adapter = by_name["app"], by_name["health-adapter"]
    assert spec["shareProcessNamespace"] is True  # for the process check
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert (
        volumes["health-adapter-config"]["configMap"]["name"]
        == load("configmap.yaml")["metadata"]["name"]
    )
    assert "emptyDir" in volumes["demo-shared"]
    mounts = {mount["name"]: mount for mount in adapter["volumeMounts"]}
    assert mounts["health-adapter-config"]["mountPath"] == "/etc/health-adapter"
    assert mounts["demo-shared"]["readOnly"] is True
    heartbeat = demo_config().check("heartbeat")
    assert heartbeat is not None
    app_dir = next(m["mountPath"] for m in app["volumeMounts"] if m["name"] == "demo-shared")
    assert str(heartbeat.options["path"]).startswith(app_dir + "/")
    # kubelet asks the adapter, on the pod IP, for the app's probes.
    probes = {
        kind: app[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes == {
        "startupProbe": {"path": "/startupz", "port": PORT},
        "livenessProbe": {"path": "/livez", "port": PORT},
        "readinessProbe": {"path": "/readyz", "port": PORT},
    }
    assert adapter["image"] == f"localhost/health-adapter:{version()}"
    assert app["image"] == f"localhost/health-adapter-demo:{version()}"
    assert adapter["livenessProbe"]["exec"]["command"] == ["health-adapter-alive"]
    assert adapter["args"][:2] == ["--shutdown-delay", "5s"]
    assert spec["terminationGracePeriodSeconds"] >= 10


@pytest.mark.parametrize("name", POD_FILES)
def test_each_pod_shape_is_hardened_and_sized(name: str) -> None:
    spec = pod_spec(name)
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for container in containers(spec).values():
        assert container["securityContext"] | {"runAsUser": 0, "runAsGroup": 0} == {
            "runAsUser": 0,
            "runAsGroup": 0,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }
        assert container["securityContext"]["runAsUser"] >= 10000
        assert container["resources"]["requests"]["memory"]
        assert container["resources"]["limits"]["memory"]
    adapter = containers(spec)["health-adapter"]
    assert adapter["securityContext"]["runAsUser"] == 10001  # the image's user
    annotations = metadata(name)["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(PORT),
        "prometheus.io/path": "/metrics",
    }


def test_the_deployment_template_is_the_pod_without_its_host_port() -> None:
    pod = pod_spec("pod.yaml")
    for container in pod["containers"]:
        for port in container.get("ports", []):
            port.pop("hostPort", None)
            port.pop("hostIP", None)
    assert pod_spec("deployment.yaml") == pod
    assert metadata("deployment.yaml")["annotations"] == metadata("pod.yaml")["annotations"]


def test_the_native_sidecar_is_an_always_restarting_init_container() -> None:
    spec = pod_spec("pod-native-sidecar.yaml")
    (sidecar,) = spec["initContainers"]
    assert sidecar["name"] == "health-adapter"
    assert sidecar["restartPolicy"] == "Always"
    # Otherwise the same adapter as in pod.yaml.
    plain = containers(pod_spec("pod.yaml"))["health-adapter"]
    differs = {key for key in plain.keys() | sidecar.keys() if plain.get(key) != sidecar.get(key)}
    assert differs == {"restartPolicy", "startupProbe", "ports"}
    assert containers(spec)["app"] == containers(pod_spec("pod.yaml"))["app"]


@pytest.fixture
async def adapter_client(aiohttp_client: Any) -> TestClient[Any, Any]:
    app: web.Application = make_app(demo_config(), run_checks=False)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


async def test_every_path_the_manifests_name_is_served(
    adapter_client: TestClient[Any, Any],
) -> None:
    paths = {"/metrics"}
    for name in POD_FILES:
        for container in containers(pod_spec(name)).values():
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                http = container.get(kind, {}).get("httpGet")
                if http:
                    paths.add(http["path"])
    assert paths == {"/startupz", "/livez", "/readyz", "/metrics"}
    for path in sorted(paths):
        response = await adapter_client.get(path)
        # No result yet: probes fail with 503, but every path exists.
        assert response.status in {200, 503}, (path, response.status)


# --- the image's liveness command ------------------------------------------------------


class Livez(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def livez() -> Iterator[tuple[str, type[Livez]]]:
    """A stand-in for the adapter on loopback whose /livez answers `Livez.status`."""
    handler = type("Answer", (Livez,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/livez", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def run_alive(url: str) -> subprocess.CompletedProcess[str]:
    # A proxy in the environment must not get the request.
    return subprocess.run(
        [sys.executable, str(IMAGE_FILES / "alive.py")],
        env={"HEALTH_ADAPTER_ALIVE_URL": url, "http_proxy": "http://127.0.0.1:1", "no_proxy": ""},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("status", [200, 503, 500], ids=["pass", "fail", "custom-fail-code"])
def test_alive_is_true_for_any_answer_from_the_adapter(
    livez: tuple[str, type[Livez]],
    status: int,
) -> None:
    url, handler = livez
    handler.status = status
    done = run_alive(url)
    assert done.returncode == 0, done.stderr


def test_alive_is_false_when_nothing_answers() -> None:
    url = f"http://127.0.0.1:{free_port()}/livez"
    done = run_alive(url)
    assert done.returncode == 1
    assert done.stderr.startswith(f"health-adapter is not answering at {url}: ")


def test_the_grpc_pod_probes_the_adapter_s_grpc_port_with_its_groups() -> None:
    config_map, pod = yaml.safe_load_all((KUBE / "pod-grpc-probes.yaml").read_text())
    config = parse_config(config_map["data"]["config.yaml"], environ={})
    assert config.server.grpc is not None
    grpc_port = int(config.server.grpc.listen.rsplit(":", 1)[1])
    app, adapter = pod["spec"]["containers"]
    assert {"name": "grpc-health", "containerPort": grpc_port} in adapter["ports"]
    probes = {key: app[key]["grpc"] for key in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes == {
        "startupProbe": {"port": grpc_port, "service": "startup"},
        "livenessProbe": {"port": grpc_port, "service": "live"},
        "readinessProbe": {"port": grpc_port, "service": "ready"},
    }
    assert pod["spec"]["volumes"][1]["configMap"]["name"] == config_map["metadata"]["name"]
