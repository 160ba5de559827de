"""The product as it ships: the image built from the Dockerfile, and the pod
example played with `podman kube play`, the adapter in the pod watching the
demo app in the neighbouring container while a monitor on the host polls it.

Needs podman (skipped only when it is absent; CI installs it with runc,
catatonit and mmdebstrap). The base image comes from
scripts/build-base-image.sh, so no registry is needed; it and the build layers
are cached between runs. Everything a run starts is named after the run and
removed by name, even when the test fails.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, free_port
from tests.e2e.containers import (
    BASE_IMAGE,
    BUILD_LOCK,
    BUILD_TIMEOUT,
    IMAGE,
    Podman,
    image_id,
    make_podman,
)

POLL_TIMEOUT = 60

pytestmark = [
    pytest.mark.slow,
    pytest.mark.container,
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed"),
    # Whichever test comes first also builds the images (a module fixture).
    pytest.mark.timeout(BUILD_TIMEOUT + 300),
]

KUBE = ROOT / "deploy" / "kubernetes"
DEMO_IMAGE = "localhost/health-adapter-demo"


@dataclass(frozen=True)
class Images:
    adapter: str
    demo: str


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    return make_podman(tmp_path_factory.mktemp("podman"))


@pytest.fixture(scope="module")
def images(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    """The base image (if missing), then this checkout's images, tagged for this run.

    The shared `e2e` tag keeps the build cache warm for the next run; the
    run's own tag is what its pod uses, so concurrent runs never swap images.
    """
    run = uuid.uuid4().hex[:8]
    built = Images(f"{IMAGE}:e2e-{run}", f"{DEMO_IMAGE}:e2e-{run}")
    with BUILD_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time on a machine
        script = subprocess.run(
            [str(ROOT / "scripts" / "build-base-image.sh"), BASE_IMAGE],
            env={
                **podman.env,
                "ENGINE": "podman",
                "TMPDIR": str(tmp_path_factory.mktemp("base-image")),
            },
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
        assert script.returncode == 0, f"build-base-image.sh:\n{script.stdout}{script.stderr}"
        base = ["--build-arg", f"BASE_IMAGE={BASE_IMAGE}"]
        base += ["--build-arg", f"RUNTIME_IMAGE={BASE_IMAGE}-slim"]  # the shipped default
        for tag, options, context in (
            (built.adapter, ["--format", "docker"], ROOT),  # docker format keeps HEALTHCHECK
            (built.demo, [], ROOT / "examples" / "demo"),
        ):
            shared = tag.rsplit(":", 1)[0] + ":e2e"
            previous = image_id(podman, shared)
            podman(
                "build",
                *options,
                *base,
                "-t",
                shared,
                "-t",
                tag,
                str(context),
                timeout=BUILD_TIMEOUT,
            )
            if previous not in (None, image_id(podman, shared)):
                # The last run's image, superseded; refused (and kept) if anything else
                # still names or uses it.
                podman("rmi", previous, check=False)
    try:
        yield built
    finally:
        podman("rmi", built.adapter, built.demo, check=False)  # untags: the e2e tags stay


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def statuses(body: dict[str, Any]) -> dict[str, str]:
    return {name: entries[0]["status"] for name, entries in body["checks"].items()}


def wait_for_health(
    url: str,
    predicate: Callable[[int, dict[str, Any]], bool],
    what: str,
    timeout: float = POLL_TIMEOUT,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: object = "no answer"
    while time.monotonic() < deadline:
        try:
            code, text = get(url)
            body = json.loads(text)
            last = (code, body)
            if predicate(code, body):
                return dict(body)
        except (OSError, ValueError) as error:
            last = error
        time.sleep(0.25)
    raise AssertionError(f"{what}: {url} never got there; last answer: {last}")


# --- the image on its own ------------------------------------------------------------


def test_the_image_runs_as_non_root_with_the_c_parser_and_nothing_else(
    podman: Podman,
    images: Images,
) -> None:
    image = json.loads(podman("image", "inspect", images.adapter).stdout)[0]
    config = image["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["health-adapter", "serve"]
    assert "HEALTH_ADAPTER_CONFIG=/etc/health-adapter/config.yaml" in config["Env"]
    assert "9180/tcp" in config["ExposedPorts"]
    assert image["Healthcheck"]["Test"] == ["CMD", "health-adapter-alive"]

    script = (
        "import importlib.util as u, os, aiohttp.http_parser as p\n"
        "assert p.HttpRequestParser is p.HttpRequestParserC, p.HttpRequestParser\n"
        "assert p.HttpResponseParser is p.HttpResponseParserC, p.HttpResponseParser\n"
        "missing = [m for m in ('pip', 'setuptools', 'wheel', 'pytest', 'tests')\n"
        "           if u.find_spec(m) is None]\n"
        "print(os.getuid(), os.getgid(), ' '.join(missing))\n"
    )
    done = podman(
        "run", "--rm", "--network", "none", "--entrypoint", "python3", images.adapter, "-c", script
    )
    assert done.stdout.split() == [
        "10001",
        "10001",
        "pip",
        "setuptools",
        "wheel",
        "pytest",
        "tests",
    ]
    # No compiler or HTTP client came along, and the default config is valid.
    done = podman(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "sh",
        images.adapter,
        "-c",
        "command -v gcc cc curl wget; health-adapter validate",
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["ok: /etc/health-adapter/config.yaml: 1 check"]


def test_the_healthcheck_asks_the_adapter_itself(podman: Podman, images: Images) -> None:
    name = f"ha-e2e-{uuid.uuid4().hex[:8]}"
    try:
        # The default config's one check fails here (no app beside it): the
        # adapter still answers, and that is what its HEALTHCHECK reports.
        podman(
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "none",
            "--health-interval",
            "disable",
            images.adapter,
        )
        deadline = time.monotonic() + POLL_TIMEOUT
        while True:
            done = podman("healthcheck", "run", name, check=False)
            if done.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert done.returncode == 0, done.stdout + done.stderr
        podman("exec", name, "sh", "-c", "health-adapter-alive")
        # Aimed at a port nothing listens on, it says the adapter is not answering.
        done = podman(
            "exec",
            "-e",
            "HEALTH_ADAPTER_ALIVE_URL=http://127.0.0.1:1/livez",
            name,
            "health-adapter-alive",
            check=False,
        )
        assert done.returncode == 1
        assert "not answering" in done.stderr
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)


# --- the pod -------------------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    name: str
    url: str
    app: str
    adapter: str


def derive_pod_spec(run: str, port: int, images: Images, directory: Path) -> tuple[Path, Path]:
    """The example pod and ConfigMap, renamed for this run and quicker to react.

    Renamed: the pod, the ConfigMap and the emptyDir (podman turns both volumes
    into named volumes on the host), the images and the host port. Quicker:
    checks every second and a heartbeat stale after 3 s instead of 15 s.
    Everything else is the example as shipped.
    """
    config_map = yaml.safe_load((KUBE / "configmap.yaml").read_text())
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    config["defaults"]["interval"] = "1s"
    heartbeat = next(check for check in config["checks"] if check["name"] == "heartbeat")
    heartbeat["file"]["max_age"] = "3s"
    config_map["data"]["config.yaml"] = yaml.safe_dump(config, sort_keys=False)
    config_map["metadata"]["name"] = f"ha-e2e-{run}-config"

    pod = yaml.safe_load((KUBE / "pod.yaml").read_text())
    pod["metadata"]["name"] = f"ha-e2e-{run}"
    spec = pod["spec"]
    renamed = {"demo-shared": f"ha-e2e-{run}-shared"}
    for volume in spec["volumes"]:
        if "configMap" in volume:
            volume["configMap"]["name"] = config_map["metadata"]["name"]
        volume["name"] = renamed.get(volume["name"], volume["name"])
    containers = {container["name"]: container for container in spec["containers"]}
    containers["app"]["image"] = images.demo
    containers["health-adapter"]["image"] = images.adapter
    for container in spec["containers"]:
        for mount in container.get("volumeMounts", []):
            mount["name"] = renamed.get(mount["name"], mount["name"])
    (health_port,) = containers["health-adapter"]["ports"]
    assert health_port["hostIP"] == "127.0.0.1"
    health_port["hostPort"] = port

    config_map_file, pod_file = directory / "configmap.yaml", directory / "pod.yaml"
    config_map_file.write_text(yaml.safe_dump(config_map, sort_keys=False))
    pod_file.write_text(yaml.safe_dump(pod, sort_keys=False))
    return config_map_file, pod_file


def make_volume_world_writable(podman: Podman, volume: str) -> None:
    """Kubernetes makes an emptyDir world-writable; podman 4 chowns it to whichever
    container mounts it first, a race between the app and the adapter. A volume
    made in advance, with the mode Kubernetes gives it, takes that race away."""
    podman("volume", "create", volume)
    mountpoint = podman("volume", "inspect", volume, "--format", "{{.Mountpoint}}").stdout
    if os.geteuid() == 0:
        os.chmod(mountpoint.strip(), 0o1777)
    else:
        podman("unshare", "chmod", "1777", mountpoint.strip())


@pytest.fixture
def pod(podman: Podman, images: Images, tmp_path: Path) -> Iterator[Pod]:
    run = uuid.uuid4().hex[:8]
    port = free_port()
    config_map_file, pod_file = derive_pod_spec(run, port, images, tmp_path)
    name = f"ha-e2e-{run}"
    volumes = [f"{name}-shared", f"{name}-config"]
    started = Pod(name, f"http://127.0.0.1:{port}", f"{name}-app", f"{name}-health-adapter")
    try:
        make_volume_world_writable(podman, volumes[0])
        podman("kube", "play", "--configmap", str(config_map_file), str(pod_file))
        yield started
    finally:
        logs = podman("logs", started.adapter, check=False)
        print(f"--- {started.adapter} logs\n{logs.stdout}{logs.stderr}")
        podman("kube", "down", str(pod_file), check=False)
        podman("pod", "rm", "-f", name, check=False)
        podman("rm", "-f", "-t", "0", started.app, started.adapter, check=False)
        podman("volume", "rm", "-f", *volumes, check=False)


def kill_the_worker(podman: Podman, container: str) -> None:
    # The worker's command line ends with the word the process check looks for.
    script = (
        "import os, signal\n"
        "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "    with open(f'/proc/{pid}/cmdline', 'rb') as f:\n"
        "        if f.read().endswith(b'\\0demo-worker\\0'):\n"
        "            os.kill(int(pid), signal.SIGKILL); print(pid)\n"
    )
    done = podman("exec", container, "python3", "-c", script)
    assert len(done.stdout.split()) == 1, done.stdout


def test_the_adapter_in_a_pod_reports_the_app_truthfully_as_it_breaks(
    podman: Podman,
    pod: Pod,
) -> None:
    health = f"{pod.url}/health"
    body = wait_for_health(health, lambda code, b: code == 200, "the pod starting")
    assert body["status"] == "pass"
    assert statuses(body) == {"api": "pass", "heartbeat": "pass", "worker": "pass"}
    # Seen through the shared process namespace: the app container's worker.
    assert "demo-worker" in body["checks"]["worker"][0]["output"]
    # What the pod's Prometheus annotations point a scraper at.
    code, metrics = get(f"{pod.url}/metrics")
    assert code == 200
    assert 'health_check_success{check="worker"} 1.0' in metrics.splitlines()
    assert get(f"{pod.url}/startupz")[0] == 200

    # 1. The app's HTTP endpoint fails.
    podman("exec", pod.app, "touch", "/shared/break-http")
    body = wait_for_health(health, lambda code, b: statuses(b)["api"] == "fail", "api failing")
    assert body["status"] == "fail"
    assert body["checks"]["api"][0]["reason"] == "status"
    assert get(f"{pod.url}/readyz")[0] == 503
    assert get(f"{pod.url}/livez")[0] == 200  # not a reason to restart the app
    podman("exec", pod.app, "rm", "/shared/break-http")
    wait_for_health(health, lambda code, b: code == 200, "api recovering")

    # 2. The heartbeat in the shared emptyDir stops.
    podman("exec", pod.app, "touch", "/shared/stop-heartbeat")
    body = wait_for_health(
        health, lambda code, b: statuses(b)["heartbeat"] == "fail", "heartbeat failing"
    )
    assert body["status"] == "fail"
    assert body["checks"]["heartbeat"][0]["reason"] == "file_stale"
    assert get(f"{pod.url}/livez")[0] == 503
    podman("exec", pod.app, "rm", "/shared/stop-heartbeat")
    wait_for_health(health, lambda code, b: code == 200, "heartbeat recovering")

    # 3. The worker process dies.
    kill_the_worker(podman, pod.app)
    body = wait_for_health(
        health, lambda code, b: statuses(b)["worker"] == "fail", "worker failing"
    )
    assert body["status"] == "fail"
    assert body["checks"]["worker"][0]["reason"] == "process_missing"
    assert get(f"{pod.url}/livez")[0] == 503
    # What kubelet's liveness probe would do next: restart the app container.
    podman("restart", "-t", "10", pod.app)
    wait_for_health(health, lambda code, b: code == 200, "the restarted app passing")

    # SIGTERM, as `podman stop` and Kubernetes send it: /readyz fails at once
    # while the port stays open for the shutdown delay, then the adapter exits.
    answers: list[int | str] = []
    stopping = threading.Event()

    def poll_readyz() -> None:
        while not stopping.is_set():
            try:
                answers.append(get(f"{pod.url}/readyz")[0])
            except OSError as error:
                answers.append(type(error).__name__)
            time.sleep(0.1)

    poller = threading.Thread(target=poll_readyz, daemon=True)
    poller.start()
    time.sleep(0.5)
    begin = time.monotonic()
    podman("stop", "-t", "30", pod.adapter, timeout=60)
    took = time.monotonic() - begin
    stopping.set()
    poller.join(timeout=10)
    state = json.loads(podman("inspect", pod.adapter).stdout)[0]["State"]
    assert state["ExitCode"] == 0, state  # exited by itself, not killed
    assert took < 15, f"the adapter took {took:.1f} s to stop"
    print(f"SIGTERM to exit: {took:.2f} s")
    codes = [answer for answer in answers if isinstance(answer, int)]
    assert codes[0] == 200 and 503 in codes, answers
    assert 200 not in codes[codes.index(503) :], answers  # once unready, never ready again
    logs = podman("logs", pod.adapter)
    lines = (logs.stdout + logs.stderr).splitlines()
    events = [json.loads(line)["event"] for line in lines if line.startswith("{")]
    assert events[-2:] == ["stopping", "stopped"]
