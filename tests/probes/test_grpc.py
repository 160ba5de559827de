"""The grpc probe against a real gRPC health server on loopback (grpcio's aio server and
the standard health servicer), and the clear refusal when the grpc extra is missing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from adapter.cli import _summary, describe_probe
from adapter.config import ConfigError, parse_config
from adapter.registry import Registry
from adapter.runner import ProbeRunner
from adapter.threads import DaemonThreadPool
from probes import Reason, Result, Status
from probes import grpc as grpc_probe
from probes.grpc import INSTALL_HINT, GrpcProbe, TlsSetupError
from tests.certificates import DAY, HOUR, make_chain
from tests.conftest import ROOT, free_port
from tests.leaks import no_leaks
from tests.rotation import SecretDir

grpc = pytest.importorskip("grpc", reason="the grpc extra is not installed (CI installs it)")
health = pytest.importorskip("grpc_health.v1.health")
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
WAIT = 5.0


class HangingHealth(health_pb2_grpc.HealthServicer):
    """A health service whose Check never answers until the client gives up."""

    def __init__(self) -> None:
        self.called = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def Check(self, request: Any, context: Any) -> Any:
        self.called.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


class HealthServer:
    def __init__(self, server: Any, port: int, servicer: Any) -> None:
        self.server = server
        self.port = port
        self.servicer = servicer


ServerFactory = Callable[..., Awaitable[HealthServer]]


@pytest.fixture
async def start_server() -> AsyncIterator[ServerFactory]:
    servers: list[Any] = []

    async def start(
        servicer: Any = None,
        credentials: Any = None,
        with_health: bool = True,
        address: str = "127.0.0.1:0",
    ) -> HealthServer:
        server = grpc.aio.server()
        servicer = servicer if servicer is not None else health.aio.HealthServicer()
        if with_health:
            health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
        await server.start()
        servers.append(server)
        return HealthServer(server, port, servicer)

    yield start
    for server in servers:
        await server.stop(None)


async def run(timeout: float = WAIT, **options: Any) -> Result:
    pool = DaemonThreadPool(1)
    probe = GrpcProbe("g", options)
    try:
        return (await ProbeRunner(probe, timeout, pool).run()).result
    finally:
        await probe.close()
        pool.shutdown(wait=False)


@pytest.mark.parametrize(
    ("service", "status", "reason", "output"),
    [
        ("", Status.PASS, None, "server is SERVING"),
        ("orders", Status.PASS, None, "service 'orders' is SERVING"),
        ("billing", Status.FAIL, Reason.STATUS, "service 'billing' is NOT_SERVING"),
        ("nobody", Status.FAIL, Reason.STATUS, "service 'nobody' is unknown to 127.0.0.1:"),
    ],
    ids=["whole-server", "serving", "not-serving", "unknown-service"],
)
async def test_health_status(
    start_server: ServerFactory,
    service: str,
    status: Status,
    reason: Reason | None,
    output: str,
) -> None:
    server = await start_server()
    await server.servicer.set("orders", SERVING)
    await server.servicer.set("billing", NOT_SERVING)

    result = await run(port=server.port, service=service)

    assert (result.status, result.reason) == (status, reason)
    assert result.output.startswith(output)
    if service != "nobody":
        assert result.observed_unit == "ms" and isinstance(result.observed_value, float)


async def test_a_status_change_is_seen_on_the_next_run(start_server: ServerFactory) -> None:
    server = await start_server()
    await server.servicer.set("orders", SERVING)
    assert (await run(port=server.port, service="orders")).status is Status.PASS
    await server.servicer.set("orders", NOT_SERVING)
    assert (await run(port=server.port, service="orders")).status is Status.FAIL


@pytest.mark.parametrize("host", ["::1", "[::1]"], ids=["ipv6", "ipv6-in-brackets"])
async def test_an_ipv6_host_with_or_without_brackets(
    start_server: ServerFactory, host: str
) -> None:
    server = await start_server(address="[::1]:0")
    config = parse_config(
        f'checks: [{{name: g, grpc: {{host: "{host}", port: {server.port}}}}}]', environ={}
    )
    result = await run(**config.checks[0].options)
    assert result.status is Status.PASS, result.output
    assert f"([::1]:{server.port}, " in result.output


async def test_the_first_run_after_a_long_outage_passes(start_server: ServerFactory) -> None:
    server = await start_server()
    port = server.port
    pool = DaemonThreadPool(1)
    probe = GrpcProbe("g", {"port": port})
    runner = ProbeRunner(probe, WAIT, pool)
    try:
        assert (await runner.run()).result.status is Status.PASS
        await server.server.stop(None)
        # Several failed runs while gRPC's reconnect backoff grows (1 s, 1.6 s, ...).
        loop = asyncio.get_running_loop()
        outage_ends = loop.time() + 3.5
        while loop.time() < outage_ends:
            assert (await runner.run()).result.status is Status.FAIL
            await asyncio.sleep(0.3)
        await start_server(address=f"127.0.0.1:{port}")

        result = (await runner.run()).result

        assert result.status is Status.PASS, result.output
    finally:
        await probe.close()
        pool.shutdown(wait=False)


async def test_proxies_in_the_environment_are_ignored(
    start_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    connections: list[bytes] = []

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(await reader.read(200))
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        writer.close()

    proxy = await asyncio.start_server(refuse, "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}"
        for name in ("http_proxy", "https_proxy", "grpc_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            monkeypatch.setenv(name, url)
        for name in ("no_proxy", "NO_PROXY", "no_grpc_proxy"):
            monkeypatch.delenv(name, raising=False)
        server = await start_server()
        result = await run(port=server.port)
    finally:
        proxy.close()
        await proxy.wait_closed()
    assert result.status is Status.PASS, result
    assert connections == []


async def test_a_server_without_the_health_service(start_server: ServerFactory) -> None:
    server = await start_server(with_health=False)
    result = await run(port=server.port)
    assert (result.status, result.reason) == (Status.FAIL, Reason.STATUS)
    assert "does not implement grpc.health.v1.Health (UNIMPLEMENTED)" in result.output


async def test_a_closed_port_is_refused() -> None:
    port = free_port()
    result = await run(port=port)
    assert (result.status, result.reason, result.output) == (
        Status.FAIL,
        Reason.CONNECTION_REFUSED,
        f"connection refused by 127.0.0.1:{port}",
    )


async def test_a_hanging_check_times_out_and_is_cancelled(start_server: ServerFactory) -> None:
    servicer = HangingHealth()
    server = await start_server(servicer)
    await run(port=server.port, service="warm-up")  # grpc's own lasting threads and fds
    servicer.called.clear()

    async with no_leaks():
        result = await run(0.3, port=server.port)
        assert (result.status, result.reason) == (Status.FAIL, Reason.TIMEOUT)
        await asyncio.wait_for(servicer.cancelled.wait(), WAIT)


async def test_many_runs_leave_nothing_behind(start_server: ServerFactory) -> None:
    server = await start_server()
    closed = free_port()
    await run(port=server.port)  # grpc's own lasting threads and fds
    async with no_leaks():
        for _ in range(10):
            assert (await run(port=server.port)).status is Status.PASS
            assert (await run(port=closed)).status is Status.FAIL


async def test_runs_against_a_server_that_never_answers_keep_one_socket() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    silent = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    pool = DaemonThreadPool(1)
    probe = GrpcProbe("g", {"port": port})
    runner = ProbeRunner(probe, 0.1, pool)
    try:
        for _ in range(10):
            assert (await runner.run()).result.reason is Reason.TIMEOUT
        # One channel per check: a timed-out run does not leave a connection
        # attempt behind for gRPC core to give up on some 20 s later.
        assert len(accepted) <= 2, len(accepted)
    finally:
        await probe.close()
        pool.shutdown(wait=False)
        for writer in accepted:
            writer.close()
        silent.close()
        await silent.wait_closed()


# --- TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_dir(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("grpc-tls")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    client = ca.issue_cert("probe.test")
    client.cert_chain_pems[0].write_to_path(str(folder / "client.pem"))
    client.private_key_pem.write_to_path(str(folder / "client.key"))
    return folder


def server_credentials(ca: trustme.CA, *, client_ca: bool = False) -> Any:
    cert = ca.issue_cert("health.test")
    pair = (cert.private_key_pem.bytes(), cert.cert_chain_pems[0].bytes())
    if client_ca:
        return grpc.ssl_server_credentials(
            [pair], root_certificates=ca.cert_pem.bytes(), require_client_auth=True
        )
    return grpc.ssl_server_credentials([pair])


@pytest.mark.parametrize(
    ("options", "status", "reason"),
    [
        pytest.param(
            {"server_name": "health.test", "with_ca": True}, Status.PASS, None, id="trusted"
        ),
        pytest.param({"with_ca": True}, Status.FAIL, Reason.TLS, id="name-mismatch"),
        pytest.param({"server_name": "health.test"}, Status.FAIL, Reason.TLS, id="untrusted-ca"),
    ],
)
async def test_tls(
    start_server: ServerFactory,
    ca: trustme.CA,
    tls_dir: Path,
    options: dict[str, Any],
    status: Status,
    reason: Reason | None,
) -> None:
    server = await start_server(credentials=server_credentials(ca))
    if options.pop("with_ca", False):
        options["ca_file"] = str(tls_dir / "ca.pem")

    result = await run(port=server.port, tls=True, **options)

    assert (result.status, result.reason) == (status, reason), result.output


async def test_mutual_tls(start_server: ServerFactory, ca: trustme.CA, tls_dir: Path) -> None:
    server = await start_server(credentials=server_credentials(ca, client_ca=True))
    common = {
        "port": server.port,
        "tls": True,
        "server_name": "health.test",
        "ca_file": str(tls_dir / "ca.pem"),
    }

    with_cert = await run(
        **common, cert_file=str(tls_dir / "client.pem"), key_file=str(tls_dir / "client.key")
    )
    without = await run(**common)

    assert with_cert.status is Status.PASS, with_cert.output
    assert without.status is Status.FAIL


async def test_rotated_tls_files_are_used_at_the_next_run(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    old_ca, new_ca = trustme.CA(), trustme.CA()
    secret = SecretDir(tmp_path / "secret")

    def publish(ca: trustme.CA) -> None:
        client = ca.issue_cert("probe.test")
        secret.publish(
            {
                "ca.pem": ca.cert_pem.bytes(),
                "tls.crt": client.cert_chain_pems[0].bytes(),
                "tls.key": client.private_key_pem.bytes(),
            }
        )

    publish(old_ca)
    server = await start_server(credentials=server_credentials(old_ca, client_ca=True))
    port = server.port
    options = {
        "port": port,
        "tls": True,
        "server_name": "health.test",
        "ca_file": secret.path("ca.pem"),
        "cert_file": secret.path("tls.crt"),
        "key_file": secret.path("tls.key"),
    }
    pool = DaemonThreadPool(1)
    probe = GrpcProbe("g", options)
    runner = ProbeRunner(probe, WAIT, pool)
    try:
        assert (await runner.run()).result.status is Status.PASS
        # Server and client both move to the new CA (a mutual-TLS rotation).
        await server.server.stop(None)
        await start_server(
            credentials=server_credentials(new_ca, client_ca=True), address=f"127.0.0.1:{port}"
        )
        assert (await runner.run()).result.reason is Reason.TLS
        publish(new_ca)
        result = (await runner.run()).result
        assert result.status is Status.PASS, result.output
        # A key caught half written keeps the material in use.
        secret.publish(
            {
                "ca.pem": new_ca.cert_pem.bytes(),
                "tls.crt": Path(secret.path("tls.crt")).read_bytes(),
                "tls.key": Path(secret.path("tls.key")).read_bytes()[:60],
            }
        )
        assert (await runner.run()).result.status is Status.PASS
    finally:
        await probe.close()
        pool.shutdown(wait=False)


async def test_plain_text_to_a_tls_server_fails(
    start_server: ServerFactory, ca: trustme.CA
) -> None:
    server = await start_server(credentials=server_credentials(ca))
    result = await run(port=server.port)
    assert result.status is Status.FAIL


async def test_an_unreadable_ca_file_is_a_setup_error(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    probe = GrpcProbe("g", {"port": free_port(), "tls": True, "ca_file": str(missing)})
    with pytest.raises(TlsSetupError, match=f"cannot read ca_file {missing}: No such file"):
        await probe.check()


@pytest.mark.parametrize(
    ("expires_in", "status", "reason", "said"),
    [
        pytest.param(
            HOUR, Status.FAIL, Reason.CERT_EXPIRY, "within cert_expiry_fail 1d", id="hour"
        ),
        pytest.param(
            10 * DAY, Status.WARN, Reason.CERT_EXPIRY, "within cert_expiry_warn 14d", id="10d"
        ),
        pytest.param(365 * DAY, Status.PASS, None, "(in 364 days)", id="year"),
    ],
)
async def test_certificate_expiry(
    start_server: ServerFactory,
    tmp_path: Path,
    expires_in: float,
    status: Status,
    reason: Reason | None,
    said: str,
) -> None:
    not_after = int(time.time() + expires_in)
    chain = make_chain(not_after, intermediate_not_after=int(time.time() + 400 * DAY))
    server = await start_server(
        credentials=grpc.ssl_server_credentials([(chain.key_pem, chain.chain_pem)])
    )

    result = await run(
        port=server.port,
        tls=True,
        server_name="localhost",
        ca_file=chain.ca_file(tmp_path),
        cert_expiry_warn="14d",
        cert_expiry_fail="1d",
    )

    assert (result.status, result.reason) == (status, reason), result.output
    assert result.cert_not_after == not_after
    assert "server is SERVING" in result.output
    assert "certificate 'localhost' expires " in result.output
    assert said in result.output


async def test_an_expired_certificate_fails_grpcs_own_verification(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    chain = make_chain(int(time.time() - DAY))
    server = await start_server(
        credentials=grpc.ssl_server_credentials([(chain.key_pem, chain.chain_pem)])
    )

    result = await run(
        port=server.port,
        tls=True,
        server_name="localhost",
        ca_file=chain.ca_file(tmp_path),
        cert_expiry_warn="14d",
    )

    assert (result.status, result.reason) == (Status.FAIL, Reason.TLS), result.output


async def test_without_limits_no_second_handshake_is_made(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    chain = make_chain(int(time.time() + 10 * DAY))
    server = await start_server(
        credentials=grpc.ssl_server_credentials([(chain.key_pem, chain.chain_pem)])
    )

    result = await run(
        port=server.port, tls=True, server_name="localhost", ca_file=chain.ca_file(tmp_path)
    )

    assert (result.status, result.cert_not_after) == (Status.PASS, None), result.output


# --- options and the missing extra ---------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "error"),
    [
        ("{}", "checks[0] (g).grpc.port: required"),
        ("{port: 50051, ca_file: ca.pem}", "checks[0] (g).grpc.ca_file: ca_file needs tls: true"),
        (
            "{port: 50051, cert_expiry_fail: 3d}",
            "checks[0] (g).grpc.cert_expiry_fail: cert_expiry_fail needs tls: true",
        ),
        (
            "{port: 50051, tls: true, cert_file: c.pem}",
            "checks[0] (g).grpc.key_file: cert_file and key_file go together",
        ),
        (
            "{port: 50051, servce: x}",
            "checks[0] (g).grpc.servce: unknown key; did you mean 'service'?",
        ),
    ],
)
def test_invalid_options_are_located(block: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"checks: [{{name: g, grpc: {block}}}]", environ={})
    assert caught.value.errors == [error]


@pytest.fixture
def without_grpc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    grpc_probe.load_grpc.cache_clear()
    monkeypatch.setitem(sys.modules, "grpc", None)  # import grpc now raises ImportError
    yield
    grpc_probe.load_grpc.cache_clear()


@pytest.mark.usefixtures("without_grpc")
def test_without_the_extra_a_config_using_grpc_says_how_to_install_it() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("checks: [{name: api, grpc: {port: 50051}}]", environ={})
    assert caught.value.errors == [f"checks[0] (api).grpc: {INSTALL_HINT}"]
    assert "pip install 'health-adapter[grpc]'" in INSTALL_HINT


@pytest.mark.usefixtures("without_grpc")
def test_without_the_extra_the_catalog_says_what_is_missing() -> None:
    registry = Registry.discover([])
    assert GrpcProbe.missing_requirement() == INSTALL_HINT
    assert _summary(registry, "grpc").endswith(f"(not usable here: {INSTALL_HINT})")
    assert f"  not usable here: {INSTALL_HINT}\n" in describe_probe(
        registry.info("grpc"), GrpcProbe
    )


def test_with_the_extra_nothing_is_missing() -> None:
    assert GrpcProbe.missing_requirement() is None


@pytest.mark.usefixtures("without_grpc")
def test_without_the_extra_other_probes_are_unaffected() -> None:
    config = parse_config("checks: [{name: t, tcp: {port: 22}}]", environ={})
    assert [(check.name, check.probe_type) for check in config.checks] == [("t", "tcp")]
    # Beside a grpc check, only that check is refused.
    with pytest.raises(ConfigError) as caught:
        parse_config(
            "checks: [{name: t, tcp: {port: 22}}, {name: g, grpc: {port: 50051}}]", environ={}
        )
    assert caught.value.errors == [f"checks[1] (g).grpc: {INSTALL_HINT}"]


def test_the_module_imports_without_grpc() -> None:
    code = (
        "import sys; sys.modules['grpc'] = None; import probes.grpc as g; "
        "print(g.GrpcProbe.__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=30,
    )
    assert (done.returncode, done.stdout) == (0, "GrpcProbe\n"), done.stderr


class DenyingHealth(health_pb2_grpc.HealthServicer):
    """Fails every call with a status message of the server's own."""

    async def Check(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "token SERVER-SECRET rejected")


async def test_the_servers_status_message_is_never_quoted(start_server: ServerFactory) -> None:
    server = await start_server(DenyingHealth())
    result = await run(host="127.0.0.1", port=server.port)
    assert (result.status, result.reason) == (Status.FAIL, Reason.CONNECTION_ERROR)
    assert result.output == f"health call to 127.0.0.1:{server.port} failed: PERMISSION_DENIED"
