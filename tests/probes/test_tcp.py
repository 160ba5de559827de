"""The tcp probe against real loopback servers: one with a banner, one that answers
PING, one that accepts and never says a word, one that hangs up, a closed port, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from adapter.config import ConfigError, parse_config
from adapter.runner import ProbeRunner
from adapter.threads import DaemonThreadPool
from probes import Reason, Result, Status
from probes.tcp import EXPECT_LIMIT, TcpProbe, TlsSetupError, classify_connect_error
from tests.certificates import DAY, HOUR, make_chain, make_self_signed
from tests.conftest import ROOT, free_port
from tests.leaks import no_leaks
from tests.rotation import SecretDir

# Generous: these only tell a hung probe from a working one.
WAIT = 5.0

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """A loopback TCP server whose handler the test picks; it records its connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.open = 0
        self.client_left = asyncio.Event()
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self.open -= 1
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
            self.client_left.set()


async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"SSH-2.0-Loopback_1.0\r\n")
    await writer.drain()
    await reader.read()  # until the client goes


async def ping(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    line = await reader.readline()
    writer.write(b"+PONG\r\n" if line == b"PING\r\n" else b"-ERR unknown command\r\n")
    await writer.drain()
    await reader.read()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # accepts, never answers, waits for the client to go


async def says_goodbye(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"421 too busy\r\n")
    await writer.drain()


async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"x" * (3 * EXPECT_LIMIT))  # more than expect ever reads, and no match
    await writer.drain()
    await reader.read()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler, tls: ssl.SSLContext | None = None) -> Server:
        server = Server(handler)
        listening = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
        servers.append(listening)
        server.port = listening.sockets[0].getsockname()[1]
        return server

    yield start
    for listening in servers:
        listening.close()
        await listening.wait_closed()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


async def check(**options: Any) -> Result:
    return await TcpProbe("t", options).check()


async def run(timeout: float, **options: Any) -> Result:
    """One run through the adapter's runner, which cancels the probe at its timeout."""
    pool = DaemonThreadPool(1)
    try:
        return (await ProbeRunner(TcpProbe("t", options), timeout, pool).run()).result
    finally:
        pool.shutdown(wait=False)


# --- plain TCP ------------------------------------------------------------------------


async def test_a_listening_port_passes_with_the_connect_time(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    server = await serve(silent)

    result = await check(port=server.port)

    assert result.status is Status.PASS
    assert result.observed_unit == "ms"
    assert isinstance(result.observed_value, float) and 0 <= result.observed_value < WAIT * 1000
    assert result.output == f"connected to 127.0.0.1:{server.port} in {result.observed_value} ms"
    await asyncio.wait_for(server.client_left.wait(), WAIT)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_closed_port_is_refused(host: str) -> None:
    port = free_port()

    result = await check(host=host, port=port)

    assert (result.status, result.reason) == (Status.FAIL, Reason.CONNECTION_REFUSED)
    assert result.output == f"connection refused by {host}:{port}"
    assert result.observed_value is None


@pytest.mark.parametrize(
    ("handler", "options", "status", "reason", "output"),
    [
        pytest.param(
            banner,
            {"expect": "^SSH-2\\.0-"},
            Status.PASS,
            None,
            "reply matches /^SSH-2\\.0-/",
            id="banner-matches",
        ),
        pytest.param(
            banner,
            {"expect": "^SSH-1"},
            Status.FAIL,
            Reason.TIMEOUT,
            "timed out after",
            id="banner-mismatch-waits-for-more",
        ),
        pytest.param(
            ping,
            {"send": "PING\r\n", "expect": "^\\+PONG"},
            Status.PASS,
            None,
            "reply matches /^\\+PONG/",
            id="send-and-expect",
        ),
        pytest.param(
            ping,
            {"send": "HELLO\r\n", "expect": "^\\+PONG"},
            Status.FAIL,
            Reason.TIMEOUT,
            "timed out after",
            id="send-and-wrong-reply",
        ),
        pytest.param(ping, {"send": "PING\r\n"}, Status.PASS, None, "connected to", id="send-only"),
        pytest.param(
            says_goodbye,
            {"expect": "^220 "},
            Status.FAIL,
            Reason.BODY_MISMATCH,
            "reply does not match /^220 / (the connection was closed after 14 bytes)",
            id="closed-before-a-match",
        ),
        pytest.param(
            chatty,
            {"expect": "READY"},
            Status.FAIL,
            Reason.BODY_MISMATCH,
            f"reply does not match /READY/ (no match in the first {EXPECT_LIMIT} bytes)",
            id="no-match-within-the-limit",
        ),
        pytest.param(
            silent,
            {"expect": "."},
            Status.FAIL,
            Reason.TIMEOUT,
            "timed out after",
            id="accepts-and-never-answers",
        ),
    ],
)
async def test_send_and_expect(
    serve: Callable[..., Awaitable[Server]],
    handler: Handler,
    options: dict[str, Any],
    status: Status,
    reason: Reason | None,
    output: str,
) -> None:
    server = await serve(handler)

    async with no_leaks():
        result = await run(0.5, port=server.port, **options)
        await asyncio.wait_for(server.client_left.wait(), WAIT)

    assert (result.status, result.reason) == (status, reason)
    assert output in result.output
    assert server.open == 0


async def test_the_expect_pattern_may_span_reads(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    async def slow_banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for part in (b"22", b"0 mail.", b"example ESMTP\r\n"):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.02)
        await reader.read()

    server = await serve(slow_banner)

    result = await run(WAIT, port=server.port, expect="^220 \\S+ ESMTP")

    assert result.status is Status.PASS


async def test_many_runs_leave_nothing_open(serve: Callable[..., Awaitable[Server]]) -> None:
    servers = [await serve(handler) for handler in (banner, silent, ping)]
    closed = free_port()
    async with no_leaks():
        for _ in range(10):
            await run(0.2, port=servers[0].port, expect="^SSH-")
            await run(0.1, port=servers[1].port, expect="never")
            await run(0.2, port=servers[2].port, send="PING\r\n", expect="PONG")
            await run(0.2, port=closed)
    assert [server.connections for server in servers] == [10, 10, 10]


async def test_cancelling_a_connect_leaves_nothing_open(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    server = await serve(silent)
    async with no_leaks():
        task = asyncio.ensure_future(check(port=server.port, expect="never"))
        await asyncio.wait_for(_until(lambda: server.open == 1), WAIT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(server.client_left.wait(), WAIT)


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


# --- TLS ---------------------------------------------------------------------------------


async def test_tls_with_the_right_ca_passes(
    serve: Callable[..., Awaitable[Server]], ca: trustme.CA, ca_file: str
) -> None:
    server = await serve(banner, server_tls(ca))

    async with no_leaks():
        result = await run(WAIT, port=server.port, tls=True, ca_file=ca_file, expect="^SSH-")
        await asyncio.wait_for(server.client_left.wait(), WAIT)

    assert result.status is Status.PASS, result.output
    assert result.output.startswith(f"TLS connected to 127.0.0.1:{server.port} in ")


@pytest.mark.parametrize(
    ("options", "status", "output"),
    [
        pytest.param({}, Status.FAIL, "certificate verify failed", id="untrusted-ca"),
        pytest.param({"tls_verify": False}, Status.PASS, "TLS connected", id="verify-off"),
        pytest.param(
            {"with_ca": True, "server_name": "other.example"},
            Status.FAIL,
            "certificate verify failed (Hostname mismatch",
            id="name-mismatch",
        ),
        pytest.param(
            {"with_ca": True, "server_name": "localhost"},
            Status.PASS,
            "TLS connected",
            id="server-name",
        ),
    ],
)
async def test_tls_verification(
    serve: Callable[..., Awaitable[Server]],
    ca: trustme.CA,
    ca_file: str,
    options: dict[str, Any],
    status: Status,
    output: str,
) -> None:
    server = await serve(silent, server_tls(ca))
    if options.pop("with_ca", False):
        options["ca_file"] = ca_file

    result = await run(WAIT, port=server.port, tls=True, **options)

    assert result.status is status
    assert output in result.output
    if status is Status.FAIL:
        assert result.reason is Reason.TLS


async def test_tls_to_a_plain_server_is_a_tls_failure(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    server = await serve(says_goodbye)

    result = await run(WAIT, port=server.port, tls=True, tls_verify=False)

    assert (result.status, result.reason) == (Status.FAIL, Reason.TLS)
    assert result.output.startswith(f"TLS error with 127.0.0.1:{server.port}: ")


async def test_a_server_that_never_finishes_the_handshake_times_out_cleanly(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    server = await serve(silent)
    async with no_leaks():
        result = await run(0.3, port=server.port, tls=True, tls_verify=False)
        await asyncio.wait_for(server.client_left.wait(), WAIT)
    assert (result.status, result.reason) == (Status.FAIL, Reason.TIMEOUT)


async def test_an_unloadable_ca_file_is_a_setup_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(TlsSetupError, match=f"cannot load ca_file {missing}: No such file"):
        await check(port=free_port(), tls=True, ca_file=str(missing))


# --- errors without a server ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "tls", "reason", "output"),
    [
        pytest.param(
            ConnectionRefusedError(111, "Connect call failed"),
            False,
            Reason.CONNECTION_REFUSED,
            "connection refused by db:5432",
            id="refused",
        ),
        pytest.param(
            OSError(
                "Multiple exceptions: [Errno 111] Connect call failed ('::1', 5432), "
                "[Errno 111] Connect call failed ('127.0.0.1', 5432)"
            ),
            False,
            Reason.CONNECTION_REFUSED,
            "connection refused by db:5432",
            id="refused-on-every-address",
        ),
        pytest.param(
            OSError(
                "Multiple exceptions: [Errno 111] Connect call failed ('::1', 5432), "
                "[Errno 113] No route to host"
            ),
            False,
            Reason.CONNECTION_ERROR,
            "cannot connect to db:5432: Multiple exceptions",
            id="mixed-errors",
        ),
        pytest.param(
            OSError(113, "No route to host"),
            False,
            Reason.CONNECTION_ERROR,
            "cannot connect to db:5432: No route to host",
            id="no-route",
        ),
        pytest.param(
            __import__("socket").gaierror(-2, "Name or service not known"),
            False,
            Reason.DNS,
            "cannot resolve db: Name or service not known",
            id="dns",
        ),
        pytest.param(
            ConnectionResetError(104, "Connection reset by peer"),
            True,
            Reason.TLS,
            "TLS error with db:5432: the server closed the connection during the handshake",
            id="reset-during-handshake",
        ),
    ],
)
def test_connect_errors_are_classified(
    exc: BaseException, tls: bool, reason: Reason, output: str
) -> None:
    got_reason, got_output = classify_connect_error(exc, "db:5432", tls=tls)
    assert got_reason is reason
    assert got_output.startswith(output)


# --- options -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "error"),
    [
        ("{}", "checks[0] (t).tcp.port: required"),
        ("{port: 0}", "checks[0] (t).tcp.port: expected an integer >= 1, got an integer 0"),
        (
            "{port: 70000}",
            "checks[0] (t).tcp.port: expected an integer <= 65535, got an integer 70000",
        ),
        (
            "{port: 80, ca_file: /ca.pem}",
            "checks[0] (t).tcp.ca_file: ca_file needs tls: true or a starttls step",
        ),
        (
            "{port: 80, tls_verify: false}",
            "checks[0] (t).tcp.tls_verify: tls_verify needs tls: true or a starttls step",
        ),
        (
            "{port: 80, expect: '(unclosed'}",
            (
                "checks[0] (t).tcp.expect: invalid regular expression '(unclosed': "
                "missing ), unterminated subpattern at position 0"
            ),
        ),
        (
            "{port: 80, send: PING\\r\\n}",
            (
                "checks[0] (t).tcp.send: send holds a literal backslash escape (\\r or \\n); write the "
                'text in double quotes, like "PING\\r\\n", so that YAML turns it into a line break'
            ),
        ),
        ("{port: 80, sned: x}", "checks[0] (t).tcp.sned: unknown key; did you mean 'send'?"),
        (
            "{port: 80, cert_file: c.pem}",
            "checks[0] (t).tcp.cert_file: cert_file needs tls: true or a starttls step",
        ),
        (
            "{port: 80, tls: true, key_file: k.pem}",
            "checks[0] (t).tcp.key_file: key_file requires cert_file",
        ),
    ],
)
def test_invalid_options_are_located(block: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"checks: [{{name: t, tcp: {block}}}]", environ={})
    assert caught.value.errors == [error]


def test_a_double_quoted_send_gets_its_escapes_from_yaml() -> None:
    config = parse_config('checks: [{name: t, tcp: {port: 6379, send: "PING\\r\\n"}}]', environ={})
    assert config.checks[0].probe_config.send == "PING\r\n"


def test_defaults() -> None:
    options = TcpProbe.parse_options({"port": 22})
    assert (options.host, options.tls, options.tls_verify, options.send, options.expect) == (
        "127.0.0.1",
        False,
        True,
        None,
        None,
    )


# --- how the host is written -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen_on", "host", "printed"),
    [
        pytest.param("::1", "::1", "[::1]", id="ipv6"),
        pytest.param("::1", "[::1]", "[::1]", id="ipv6-in-brackets"),
        pytest.param("127.0.0.1", "::ffff:127.0.0.1", "[::ffff:127.0.0.1]", id="ipv4-mapped"),
    ],
)
async def test_every_spelling_of_a_host_reaches_it(listen_on: str, host: str, printed: str) -> None:
    accepted = asyncio.Event()

    async def note(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        writer.close()

    try:
        server = await asyncio.start_server(note, listen_on, 0)
    except OSError as exc:
        pytest.skip(f"cannot listen on {listen_on}: {exc}")
    port = server.sockets[0].getsockname()[1]
    try:
        config = parse_config(
            f'checks: [{{name: t, tcp: {{host: "{host}", port: {port}}}}}]', environ={}
        )
        result = await check(**config.checks[0].options)
        await asyncio.wait_for(accepted.wait(), WAIT)
    finally:
        server.close()
        await server.wait_closed()
    assert result.status is Status.PASS, result.output
    assert result.output.startswith(f"connected to {printed}:{port} in ")


async def test_a_refused_ipv6_endpoint_is_written_in_brackets() -> None:
    port = free_port()
    result = await check(host="[::1]", port=port)
    assert result.output == f"connection refused by [::1]:{port}"


async def test_a_rooted_name_resolves_as_the_system_resolves_it() -> None:
    # A trailing dot is passed on as written (it turns off search domains);
    # glibc's hosts file does not match it, DNS does: the probe agrees with getaddrinfo.
    port = free_port()
    try:
        socket.getaddrinfo("localhost.", port)
    except socket.gaierror:
        resolves = False
    else:
        resolves = True
    result = await check(host="localhost.", port=port)
    if resolves:
        assert result.reason is Reason.CONNECTION_REFUSED, result.output
    else:
        assert (result.reason, result.output.partition(":")[0]) == (
            Reason.DNS,
            "cannot resolve localhost.",
        )


@pytest.mark.parametrize(
    ("host", "error"),
    [
        pytest.param(
            "[::1]:8080",
            "checks[0] (t).tcp.host: invalid host '[::1]:8080': give the port in the port "
            "option, and the host as '::1'",
            id="port-in-host",
        ),
        pytest.param(
            "fe80::1%nosuch0",
            "checks[0] (t).tcp.host: invalid host 'fe80::1%nosuch0': this host has no "
            "network interface 'nosuch0'",
            id="unknown-zone",
        ),
    ],
)
def test_a_host_that_cannot_work_is_refused_at_validate(host: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f'checks: [{{name: t, tcp: {{host: "{host}", port: 80}}}}]', environ={})
    assert caught.value.errors == [error]


async def test_a_rotated_ca_is_used_at_the_next_run(
    serve: Callable[..., Awaitable[Server]], tmp_path: Path
) -> None:
    old_ca, new_ca = trustme.CA(), trustme.CA()
    secret = SecretDir(tmp_path / "secret")
    secret.publish({"ca.pem": old_ca.cert_pem.bytes()})
    tls = server_tls(old_ca)
    server = await serve(silent, tls)
    probe = TcpProbe("t", {"port": server.port, "tls": True, "ca_file": secret.path("ca.pem")})
    assert (await probe.check()).status is Status.PASS

    new_ca.issue_cert("localhost", "127.0.0.1").configure_cert(tls)
    assert (await probe.check()).reason is Reason.TLS
    secret.publish({"ca.pem": new_ca.cert_pem.bytes()})
    result = await probe.check()
    assert result.status is Status.PASS, result.output

    secret.publish({"ca.pem": b""})  # an empty replacement keeps the bundle in use
    assert (await probe.check()).status is Status.PASS


async def test_tls_to_a_host_from_the_config_file_on_the_production_loop(
    serve: Callable[..., Awaitable[Server]], ca: trustme.CA, ca_file: str, tmp_path: Path
) -> None:
    # `health-adapter check` runs on uvloop when it is installed, whose
    # resolver and TLS take an exact str for a host name, not a subclass.
    server = await serve(silent, server_tls(ca))
    config = tmp_path / "health.yaml"
    config.write_text(
        f"checks: [{{name: t, tcp: {{host: '127.0.0.1', port: {server.port}, "
        f"tls: true, ca_file: '{ca_file}'}}}}]\n"
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adapter",
        "check",
        "-c",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(child.communicate(), 30)
    assert child.returncode == 0, (out + err).decode()
    assert f"TLS connected to 127.0.0.1:{server.port}" in out.decode()


@pytest.mark.parametrize("with_cert", [True, False], ids=["client-certificate", "none"])
async def test_mutual_tls(
    serve: Callable[..., Awaitable[Server]],
    ca: trustme.CA,
    ca_file: str,
    tmp_path: Path,
    with_cert: bool,
) -> None:
    tls = server_tls(ca)
    ca.configure_trust(tls)
    tls.verify_mode = ssl.CERT_REQUIRED
    # With TLS 1.2 a missing client certificate fails the handshake itself.
    tls.maximum_version = ssl.TLSVersion.TLSv1_2
    server = await serve(silent, tls)
    client = ca.issue_cert("probe.test")
    client.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "client.pem"))
    options: dict[str, Any] = {"port": server.port, "tls": True, "ca_file": ca_file}
    if with_cert:
        options["cert_file"] = str(tmp_path / "client.pem")

    result = await run(WAIT, **options)

    if with_cert:
        assert result.status is Status.PASS, result.output
    else:
        assert (result.status, result.reason) == (Status.FAIL, Reason.TLS), result.output


# --- certificate expiry -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expires_in", "options", "status", "reason", "said"),
    [
        pytest.param(
            HOUR,
            {"cert_expiry_warn": "14d", "cert_expiry_fail": "1d"},
            Status.FAIL,
            Reason.CERT_EXPIRY,
            "expires {date} UTC (in 59 minutes), within cert_expiry_fail 1d",
            id="in-an-hour-fails",
        ),
        pytest.param(
            10 * DAY,
            {"cert_expiry_warn": "14d", "cert_expiry_fail": "1d"},
            Status.WARN,
            Reason.CERT_EXPIRY,
            "expires {date} UTC (in 9 days), within cert_expiry_warn 14d",
            id="in-10-days-warns",
        ),
        pytest.param(
            365 * DAY,
            {"cert_expiry_warn": "14d", "cert_expiry_fail": "1d"},
            Status.PASS,
            None,
            "expires {date} UTC (in 364 days)",
            id="in-a-year-passes",
        ),
        pytest.param(
            -DAY,
            {"cert_expiry_warn": "14d", "tls_verify": False},
            Status.FAIL,
            Reason.CERT_EXPIRY,
            "expired {date} UTC (1 day ago)",
            id="expired-with-verification-off",
        ),
        pytest.param(10 * DAY, {}, Status.PASS, None, None, id="no-limits-only-records-the-date"),
    ],
)
async def test_certificate_expiry(
    serve: Callable[..., Awaitable[Server]],
    tmp_path: Path,
    expires_in: float,
    options: dict[str, Any],
    status: Status,
    reason: Reason | None,
    said: str | None,
) -> None:
    not_after = int(time.time() + expires_in)
    chain = make_chain(not_after)
    server = await serve(banner, chain.server_context(tmp_path))
    verify = {} if options.get("tls_verify") is False else {"ca_file": chain.ca_file(tmp_path)}

    result = await run(WAIT, port=server.port, tls=True, **verify, **options)

    assert (result.status, result.reason) == (status, reason), result.output
    assert result.cert_not_after == not_after
    if said is None:
        assert "certificate" not in result.output
    else:
        date = datetime.datetime.fromtimestamp(not_after, datetime.UTC)
        assert f"certificate 'localhost' {said.format(date=f'{date:%Y-%m-%d %H:%M}')}" in (
            result.output
        )
        assert f"TLS connected to 127.0.0.1:{server.port} in " in result.output


async def test_an_expired_self_signed_certificate_is_reported_with_verification_off(
    serve: Callable[..., Awaitable[Server]], tmp_path: Path
) -> None:
    not_after = int(time.time() - 3 * DAY)
    server = await serve(banner, make_self_signed(not_after).server_context(tmp_path))

    result = await run(WAIT, port=server.port, tls=True, tls_verify=False, cert_expiry_fail="1d")

    assert (result.status, result.reason) == (Status.FAIL, Reason.CERT_EXPIRY), result.output
    assert result.cert_not_after == not_after
    assert result.output.startswith("certificate 'self-signed.test' expired ")
    assert "(3 days ago)" in result.output


async def test_the_earliest_certificate_of_the_presented_chain_counts(
    serve: Callable[..., Awaitable[Server]], tmp_path: Path
) -> None:
    leaf_until, middle_until = int(time.time() + 365 * DAY), int(time.time() + 5 * DAY)
    chain = make_chain(leaf_until, intermediate_not_after=middle_until)
    server = await serve(banner, chain.server_context(tmp_path))

    result = await run(
        WAIT, port=server.port, tls=True, ca_file=chain.ca_file(tmp_path), cert_expiry_warn="7d"
    )

    assert result.status is Status.WARN, result.output
    assert result.cert_not_after == middle_until
    assert result.output.startswith("certificate 'Test Intermediate CA' expires ")


async def test_a_certificate_without_a_common_name_is_named_by_its_first_san(
    serve: Callable[..., Awaitable[Server]], tmp_path: Path
) -> None:
    chain = make_chain(int(time.time() + 2 * DAY), leaf_name="")
    server = await serve(banner, chain.server_context(tmp_path))

    result = await run(WAIT, port=server.port, tls=True, tls_verify=False, cert_expiry_warn="7d")

    assert result.output.startswith("certificate 'localhost' expires ")


async def test_a_failed_connection_reports_no_expiry(
    serve: Callable[..., Awaitable[Server]], tmp_path: Path
) -> None:
    chain = make_chain(int(time.time() + 2 * DAY))
    server = await serve(banner, chain.server_context(tmp_path))

    # The CA is not given: verification fails, no chain is trusted enough to report.
    result = await run(WAIT, port=server.port, tls=True, cert_expiry_warn="7d")

    assert (result.status, result.reason, result.cert_not_after) == (Status.FAIL, Reason.TLS, None)


# --- dialog ----------------------------------------------------------------------------------


def smtp_like(tls: ssl.SSLContext) -> Handler:
    """An SMTP-like server: a banner, EHLO with a multi-line answer, STARTTLS, NOOP, QUIT."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mail.test ESMTP ready\r\n")
        await writer.drain()
        while line := await reader.readline():
            command = line.strip().upper()
            if command.startswith(b"EHLO"):
                writer.write(b"250-mail.test\r\n250-SIZE 1000\r\n250 STARTTLS\r\n")
            elif command == b"STARTTLS":
                writer.write(b"220 ready to start TLS\r\n")
                await writer.drain()
                await writer.start_tls(tls)
                continue
            elif command == b"NOOP":
                writer.write(b"250 OK\r\n")
            elif command == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"500 unknown command\r\n")
            await writer.drain()

    return handle


async def redis_like(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A redis-like server: PING, INFO replication and QUIT, one reply per line."""
    while line := await reader.readline():
        if line == b"PING\r\n":
            writer.write(b"+PONG\r\n")
        elif line == b"INFO replication\r\n":
            info = b"# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"
            writer.write(b"$%d\r\n%s\r\n" % (len(info), info))
        elif line == b"QUIT\r\n":
            writer.write(b"+OK\r\n")
            await writer.drain()
            return
        else:
            writer.write(b"-ERR unknown command\r\n")
        await writer.drain()


SMTP_DIALOG = [
    {"expect": "^220 "},
    {"send": "EHLO health\r\n"},
    {"expect": "(?m)^250 "},
    {"send": "STARTTLS\r\n"},
    {"expect": "^220 "},
    {"starttls": True},
    {"send": "NOOP\r\n"},
    {"expect": "^250 OK"},
    {"send": "QUIT\r\n"},
]
REDIS_DIALOG = [
    {"send": "PING\r\n"},
    {"expect": "^\\+PONG\r\n"},
    {"send": "INFO replication\r\n"},
    {"expect": "role:master"},
]


@pytest.mark.parametrize(
    ("dialog", "handler", "with_ca", "status", "reason", "said"),
    [
        pytest.param(
            SMTP_DIALOG, "smtp", True, Status.PASS, None, "dialog of 9 steps completed", id="smtp"
        ),
        pytest.param(
            REDIS_DIALOG, "redis", False, Status.PASS, None, "dialog of 4 steps", id="redis"
        ),
        pytest.param(
            [*REDIS_DIALOG[:2], {"send": "INFO replication\r\nQUIT\r\n"}, {"expect": "role:x"}],
            "redis",
            False,
            Status.FAIL,
            Reason.BODY_MISMATCH,
            "dialog step 4: reply does not match /role:x/ (the connection was closed",
            id="redis-wrong-role",
        ),
        pytest.param(
            SMTP_DIALOG,
            "smtp",
            False,
            Status.FAIL,
            Reason.TLS,
            "dialog step 6: starttls: TLS error with 127.0.0.1:{port}: certificate verify failed",
            id="starttls-untrusted",
        ),
        pytest.param(
            [{"send": "QUIT\r\n"}, {"expect": "^250 "}],
            "smtp",
            False,
            Status.FAIL,
            Reason.BODY_MISMATCH,
            "dialog step 2: reply does not match /^250 / (the connection was closed after",
            id="closed-before-the-match",
        ),
        pytest.param(
            [{"send": "PING\r\n"}, {"starttls": True}],
            "redis",
            True,
            Status.FAIL,
            Reason.TLS,
            "dialog step 2: starttls: TLS error with 127.0.0.1:{port}: ",
            id="starttls-to-a-plain-server",
        ),
    ],
)
async def test_dialog(
    serve: Callable[..., Awaitable[Server]],
    ca: trustme.CA,
    ca_file: str,
    dialog: list[dict[str, Any]],
    handler: str,
    with_ca: bool,
    status: Status,
    reason: Reason | None,
    said: str,
) -> None:
    server = await serve(smtp_like(server_tls(ca)) if handler == "smtp" else redis_like)
    tls = {"ca_file": ca_file} if with_ca else {}

    async with no_leaks():
        result = await run(WAIT, port=server.port, dialog=dialog, **tls)
        await asyncio.wait_for(server.client_left.wait(), WAIT)

    assert (result.status, result.reason) == (status, reason), result.output
    assert said.format(port=server.port) in result.output
    assert server.open == 0


async def test_starttls_reports_the_certificate_expiry(
    serve: Callable[..., Awaitable[Server]], tmp_path: Path
) -> None:
    not_after = int(time.time() + 10 * DAY)
    chain = make_chain(not_after)
    server = await serve(smtp_like(chain.server_context(tmp_path)))

    result = await run(
        WAIT,
        port=server.port,
        dialog=SMTP_DIALOG,
        ca_file=chain.ca_file(tmp_path),
        cert_expiry_warn="14d",
    )

    assert (result.status, result.cert_not_after) == (Status.WARN, not_after), result.output


async def test_an_expect_consumes_its_line_and_leaves_the_next_lines(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    async def two_lines_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK ready\r\n* BYE later\r\n")
        await writer.drain()
        await reader.read()

    server = await serve(two_lines_at_once)

    # Both lines arrive in one read: the first expect consumes its line only.
    after = await run(WAIT, port=server.port, dialog=[{"expect": "OK"}, {"expect": "^\\* BYE"}])
    rest_of_line = await run(0.5, port=server.port, dialog=[{"expect": "OK"}, {"expect": "ready"}])

    assert after.status is Status.PASS, after.output
    assert (rest_of_line.status, rest_of_line.reason) == (Status.FAIL, Reason.TIMEOUT)


async def test_a_dialog_runs_under_the_checks_deadline(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    server = await serve(silent)

    async with no_leaks():
        result = await run(0.3, port=server.port, dialog=[{"send": "hi\r\n"}, {"expect": "x"}])
        await asyncio.wait_for(server.client_left.wait(), WAIT)

    assert (result.status, result.reason) == (Status.FAIL, Reason.TIMEOUT)


@pytest.mark.parametrize(
    ("block", "error"),
    [
        pytest.param(
            "{port: 25, send: x, dialog: [{expect: x}]}",
            "checks[0] (t).tcp.send: send and dialog exclude each other: "
            "put it in the dialog as a step",
            id="both-forms",
        ),
        pytest.param(
            "{port: 25, dialog: [{expect: x}, {send: x, expect: y}]}",
            "checks[0] (t).tcp.dialog[1]: a step is exactly one of send, expect or "
            "starttls: true; it has send and expect",
            id="two-in-a-step",
        ),
        pytest.param(
            "{port: 25, dialog: [{}]}",
            "checks[0] (t).tcp.dialog[0]: a step is exactly one of send, expect or "
            "starttls: true; it has none",
            id="empty-step",
        ),
        pytest.param(
            "{port: 25, dialog: [{starttls: false}]}",
            "checks[0] (t).tcp.dialog[0]: a step is exactly one of send, expect or "
            "starttls: true; it has none",
            id="starttls-false",
        ),
        pytest.param(
            "{port: 25, tls: true, dialog: [{starttls: true}]}",
            "checks[0] (t).tcp.dialog[0]: starttls needs a plain connection: leave out tls: true",
            id="starttls-over-tls",
        ),
        pytest.param(
            "{port: 25, dialog: [{starttls: true}, {starttls: true}]}",
            "checks[0] (t).tcp.dialog[1]: starttls may come only once",
            id="starttls-twice",
        ),
        pytest.param(
            "{port: 25, dialog: [{expect: '(x'}]}",
            "checks[0] (t).tcp.dialog[0].expect: invalid regular expression '(x': "
            "missing ), unterminated subpattern at position 0",
            id="bad-pattern",
        ),
        pytest.param(
            "{port: 25, dialog: [{sned: x}]}",
            "checks[0] (t).tcp.dialog[0].sned: unknown key",
            id="unknown-step-key",
        ),
        pytest.param(
            "{port: 443, cert_expiry_warn: 14d}",
            "checks[0] (t).tcp.cert_expiry_warn: cert_expiry_warn needs tls: true "
            "or a starttls step",
            id="expiry-without-tls",
        ),
        pytest.param(
            "{port: 443, tls: true, cert_expiry_warn: 3d, cert_expiry_fail: 7d}",
            "checks[0] (t).tcp.cert_expiry_warn: cert_expiry_warn (3d) must be longer than "
            "cert_expiry_fail (7d), or the warning never shows",
            id="warn-not-longer-than-fail",
        ),
        pytest.param(
            "{port: 443, tls: true, cert_expiry_warn: 2 weeks}",
            "checks[0] (t).tcp.cert_expiry_warn: invalid duration '2 weeks' "
            "(write it like 250ms, 10s, 2m, 1h or a number of seconds)",
            id="bad-expiry-duration",
        ),
    ],
)
def test_invalid_dialogs_and_expiry_limits_are_located(block: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"checks: [{{name: t, tcp: {block}}}]", environ={})
    assert caught.value.errors == [error]


def test_a_starttls_step_allows_the_tls_options() -> None:
    options = TcpProbe.parse_options(
        {"port": 25, "dialog": [{"starttls": True}], "ca_file": "/ca.pem", "server_name": "mx"}
    )
    assert [step.starttls for step in options.dialog] == [True]
