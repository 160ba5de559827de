"""One spelling of an address: every way a host is written, accepted or refused with a hint."""

from __future__ import annotations

import pytest

from probes.address import format_endpoint, parse_host, split_host_port


@pytest.mark.parametrize(
    ("written", "host"),
    [
        pytest.param("127.0.0.1", "127.0.0.1", id="ipv4"),
        pytest.param("::1", "::1", id="ipv6"),
        pytest.param("[::1]", "::1", id="ipv6-in-brackets"),
        pytest.param(" [::1] ", "::1", id="spaces-around"),
        pytest.param("::ffff:127.0.0.1", "::ffff:127.0.0.1", id="ipv4-mapped"),
        pytest.param("fe80::1%lo", "fe80::1%lo", id="zone-by-name"),
        pytest.param("[fe80::1%1]", "fe80::1%1", id="zone-by-index-in-brackets"),
        pytest.param("localhost", "localhost", id="name"),
        pytest.param("localhost.", "localhost.", id="rooted-name"),
        pytest.param("db_1.svc.cluster.local", "db_1.svc.cluster.local", id="service-name"),
    ],
)
def test_hosts_are_accepted_bare(written: str, host: str) -> None:
    assert parse_host(written) == host


@pytest.mark.parametrize(
    ("written", "error"),
    [
        pytest.param(
            "[::1]:8080",
            "invalid host '[::1]:8080': give the port in the port option, and the host as '::1'",
            id="ipv6-with-port",
        ),
        pytest.param(
            "app:8080",
            "invalid host 'app:8080': give the port in the port option, and the host as 'app'",
            id="name-with-port",
        ),
        pytest.param(
            "[127.0.0.1]",
            "invalid host '[127.0.0.1]': brackets hold an IPv6 address only",
            id="ipv4-in-brackets",
        ),
        pytest.param("[::1", "invalid host '[::1': the '[' is never closed", id="open-bracket"),
        pytest.param(
            "::1:19340",
            "invalid host '::1:19340': give the port in the port option, and the host as '::1'",
            id="ipv6-with-its-port-glued-on",
        ),
        pytest.param(
            "fe80::1%nosuch0",
            "invalid host 'fe80::1%nosuch0': this host has no network interface 'nosuch0'",
            id="unknown-zone",
        ),
        pytest.param(
            "app example",
            "invalid host 'app example': not a host name, IPv4 or IPv6 address",
            id="space",
        ),
        pytest.param(
            "http://app", "invalid host 'http://app': not a host name", id="url-instead-of-host"
        ),
    ],
)
def test_hosts_that_cannot_work_are_refused(written: str, error: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_host(written)
    assert str(caught.value).startswith(error)


@pytest.mark.parametrize(
    ("host", "port", "printed"),
    [
        ("127.0.0.1", 80, "127.0.0.1:80"),
        ("::1", 8080, "[::1]:8080"),
        ("[::1]", 8080, "[::1]:8080"),
        ("fe80::1%lo", 9, "[fe80::1%lo]:9"),
        ("app.example", 443, "app.example:443"),
    ],
)
def test_endpoints_print_ipv6_in_brackets(host: str, port: int, printed: str) -> None:
    assert format_endpoint(host, port) == printed


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("[::1]:8080", ("::1", 8080)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
        ("localhost:65535", ("localhost", 65535)),
        (":9180", ("any", 9180)),
        ("9180", ("any", 9180)),
        ("[::ffff:127.0.0.1]:9", ("127.0.0.1", 9)),
    ],
)
def test_host_and_port(written: str, expected: tuple[str, int]) -> None:
    assert split_host_port(written, default_host="any") == expected


@pytest.mark.parametrize(
    ("written", "error"),
    [
        ("::1", "write an IPv6 address in brackets with its port, like [::1]:9180"),
        ("::1:8080", "write an IPv6 address in brackets with its port, like [::1]:8080"),
        ("[::1]", "give the port after the brackets, like [::1]:9180"),
        ("[127.0.0.1]:80", "brackets hold an IPv6 address only, like [::1]:9180"),
        ("host:70000", "port 70000 is out of range (a port is 1-65535)"),
        ("host:0", "port 0 is out of range (a port is 1-65535)"),
        ("host name:80", "'host name' is not a host name, IPv4 or IPv6 address"),
    ],
)
def test_host_and_port_mistakes(written: str, error: str) -> None:
    with pytest.raises(ValueError) as caught:
        split_host_port(written, default_host="any")
    assert str(caught.value) == error
