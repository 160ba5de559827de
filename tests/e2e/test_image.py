"""The image as it ships: small, non-root, on a read-only root filesystem, with
aiohttp's C extensions, and every built-in probe type working inside it.

Two builds: the default (the `slim` runtime base), and the `full` base (the
monitoring plugins) with the `grpc` extra, which is where the gRPC probe runs.
Needs podman; see tests/e2e/containers.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.containers import (
    BUILD_TIMEOUT,
    Podman,
    build_adapter_image,
    container,
    make_podman,
    needs_podman,
    wait_until,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.container,
    needs_podman,
    pytest.mark.timeout(BUILD_TIMEOUT + 300),
]

SIZE_BOUND = 80_000_000  # bytes, as `podman image inspect` counts them (MB, not MiB)

# Every built-in probe type, aimed at things inside the container: a web server the
# entrypoint starts beside the adapter (http, tcp, process), files of the image
# (file, plugin) and commands (exec, with and without the shell).
CONFIG = """\
service: image
defaults: {interval: 1s, timeout: 3s}
checks:
  - name: http
    http: {url: "http://127.0.0.1:8080/health.yaml", body_contains: "service: image"}
  - name: tcp
    tcp: {port: 8080}
  - name: file
    groups: [live, ready]
    file: {path: /config/health.yaml, contains: "service: image"}
  - name: process
    process: {cmdline: "http\\\\.server 8080"}
  - name: exec
    exec: {command: [/usr/bin/env, sh, -c, "exit 0"]}
  - name: shell
    exec: {command: "test -r /etc/passwd && id -u | grep -qx 10001 && ls / | wc -l", shell: true}
  - name: plugin
    plugin: {class: "probes.file:FileProbe", path: /etc/passwd, contains: health-adapter}
"""
GRPC_CHECK = """\
  - name: grpc
    grpc: {port: 50051}
"""
PLUGIN_CHECK = """\
  - name: nagios
    exec: {command: [/usr/lib/nagios/plugins/check_tcp, -H, 127.0.0.1, -p, "8080"]}
"""
GRPC_SERVER = (
    "from concurrent import futures; import grpc;"
    "from grpc_health.v1 import health, health_pb2_grpc;"
    "s = grpc.server(futures.ThreadPoolExecutor(2));"
    "health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), s);"
    "s.add_insecure_port('127.0.0.1:50051'); s.start(); s.wait_for_termination()"
)
ASK = (
    "import json, sys, urllib.request, urllib.error\n"
    "try:\n"
    "    answer = urllib.request.urlopen('http://127.0.0.1:9180/health', timeout=5)\n"
    "except urllib.error.HTTPError as error:\n"
    "    answer = error\n"
    "print(answer.read().decode())\n"
)


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    return make_podman(tmp_path_factory.mktemp("podman"))


@pytest.fixture(scope="module", params=[("slim", ""), ("full", "grpc")], ids=["slim", "full-grpc"])
def image(
    request: pytest.FixtureRequest, podman: Podman, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    variant, extras = request.param
    tag = build_adapter_image(podman, variant, tmp_path_factory.mktemp("build"), extras)
    try:
        yield variant, tag
    finally:
        podman("rmi", tag, check=False)  # untags: the shared e2e tag stays


def test_the_default_image_is_within_its_size_bound(podman: Podman, image: tuple[str, str]) -> None:
    variant, tag = image
    size = int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout)
    print(f"{variant}: {size / 1e6:.1f} MB")
    if variant == "slim":
        assert size <= SIZE_BOUND, f"{size / 1e6:.1f} MB"


def test_it_runs_as_non_root_with_the_c_extensions_and_no_build_tools(
    podman: Podman, image: tuple[str, str]
) -> None:
    _, tag = image
    script = (
        "import importlib.util as u, os, ssl\n"
        "import aiohttp.http_parser as p, aiohttp.http_writer as w, multidict, yarl\n"
        "assert p.HttpRequestParser is p.HttpRequestParserC, p.HttpRequestParser\n"
        "assert p.HttpResponseParser is p.HttpResponseParserC, p.HttpResponseParser\n"
        "assert w._serialize_headers is not w._py_serialize_headers\n"
        "assert type(multidict.MultiDict()).__module__ == 'multidict._multidict'\n"
        "assert yarl._quoting._Quoter.__module__ == 'yarl._quoting_c'\n"
        "assert ssl.create_default_context().cert_store_stats()['x509_ca'] > 0\n"
        "missing = [m for m in ('pip', 'setuptools', 'wheel', 'pytest', 'tests')\n"
        "           if u.find_spec(m) is None]\n"
        "print(os.getuid(), os.getgid(), ' '.join(missing))\n"
    )
    done = podman("run", "--rm", "--network", "none", "--entrypoint", "python3", tag, "-c", script)
    assert done.stdout.split() == [
        "10001",
        "10001",
        "pip",
        "setuptools",
        "wheel",
        "pytest",
        "tests",
    ]
    # A shell and env for exec checks; no compiler, package manager or HTTP client.
    done = podman(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/bin/sh",
        tag,
        "-c",
        "command -v env; command -v gcc cc curl wget apt apt-get dpkg pip pip3;"
        " health-adapter validate",
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "/usr/bin/env",
        "ok: /etc/health-adapter/config.yaml: 1 check",
    ]


def test_every_probe_type_works_on_a_read_only_root_filesystem(
    podman: Podman, image: tuple[str, str], tmp_path: Path
) -> None:
    variant, tag = image
    config = CONFIG + (GRPC_CHECK + PLUGIN_CHECK if variant == "full" else "")
    (tmp_path / "health.yaml").write_text(config)
    tmp_path.chmod(0o755)
    (tmp_path / "health.yaml").chmod(0o644)
    grpc_server = f"python3 -c {json.dumps(GRPC_SERVER)} & " if variant == "full" else ""
    entry = (
        "python3 -m http.server 8080 --bind 127.0.0.1 --directory /config >/dev/null 2>&1 & "
        f"{grpc_server}exec health-adapter serve -c /config/health.yaml"
    )
    with container(
        podman,
        tag,
        "--network",
        "none",
        # Nothing writable at all: not even the tmpfs podman would add on /tmp and /run.
        "--read-only",
        "--read-only-tmpfs=false",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "-v",
        f"{tmp_path}:/config:ro",
        "--entrypoint",
        "/bin/sh",
        args=("-c", entry),
    ) as name:

        def passing() -> dict[str, object] | None:
            done = podman("exec", name, "python3", "-c", ASK, check=False)
            if done.returncode != 0:
                return None
            body = json.loads(done.stdout)
            return body if body["status"] == "pass" else None

        expected = {"http", "tcp", "file", "process", "exec", "shell", "plugin"}
        if variant == "full":
            expected |= {"grpc", "nagios"}
        try:
            body = wait_until("every check passing", passing, timeout=60)
        finally:
            done = podman("exec", name, "python3", "-c", ASK, check=False)
            print(done.stdout, done.stderr)
        assert set(body["checks"]) == expected  # type: ignore[call-overload]
        listed = podman("exec", name, "health-adapter", "probes").stdout.splitlines()
        types = {line.split()[0] for line in listed}
        covered = {"http", "tcp", "file", "process", "exec", "plugin", "grpc"}
        assert types == covered, listed
        if variant == "slim":
            # The default image has no gRPC: the config is refused, with the way out.
            (tmp_path / "grpc.yaml").write_text("checks:\n" + GRPC_CHECK)
            (tmp_path / "grpc.yaml").chmod(0o644)
            done = podman(
                "exec", name, "health-adapter", "validate", "-c", "/config/grpc.yaml", check=False
            )
            assert done.returncode == 2
            assert "pip install 'health-adapter[grpc]'" in done.stdout + done.stderr
        user = podman("exec", name, "id", "-u").stdout.strip()
        assert user == "10001"
        # Writing anywhere fails: the root filesystem is read-only.
        done = podman("exec", name, "sh", "-c", "echo x > /tmp/x", check=False)
        assert done.returncode != 0 and "Read-only file system" in done.stderr
