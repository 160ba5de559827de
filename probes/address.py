"""One spelling of a network address, for every probe and every `listen`.

A host is written as a name (`localhost`, `app.internal.`), an IPv4 address,
or an IPv6 address with or without brackets (`::1`, `[::1]`, `fe80::1%eth0`);
brackets are dropped, so every library gets the bare address. A port goes in
its own option, never in the host. An endpoint is printed the way a URL
writes it: `127.0.0.1:8080`, `[::1]:8080`, `app:8080`.

Errors are ValueError with a message that names the value and says how to
write it; the config loader adds where it is.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any

__all__ = [
    "Host",
    "MissingPort",
    "format_endpoint",
    "format_host",
    "parse_host",
    "split_host_port",
]

# RFC 1123 labels (letters, digits, hyphens; underscores too, as resolvers
# accept them for service names), an optional trailing dot for a rooted name.
_HOST_NAME = re.compile(
    r"^(?=.{1,253}\.?$)([A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$"
)
_PORT_HINT = "a port is 1-65535"


def parse_host(value: str) -> str:
    """The bare host of `value` (brackets dropped); ValueError when it is no host.

    `[::1]:8080` and `app:8080` are refused with a hint to give the port on
    its own: a host option never carries one.
    """
    text = value.strip()
    if not text:
        raise ValueError("the host is empty")
    if text.startswith("["):
        inside, bracket, after = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"invalid host {value!r}: the '[' is never closed")
        if after:
            port = after[1:] if after.startswith(":") else ""
            if port.isdigit():
                raise ValueError(
                    f"invalid host {value!r}: give the port in the port option, "
                    f"and the host as {inside!r}"
                )
            raise ValueError(f"invalid host {value!r}: nothing may follow ']'")
        if not _is_ipv6(inside):
            raise ValueError(f"invalid host {value!r}: brackets hold an IPv6 address only")
        return _checked_zone(inside, value)
    if ":" in text:
        if _is_ipv6(text):
            return _checked_zone(text, value)
        name, _, port = text.rpartition(":")
        if port.isdigit() and (":" not in name or _is_ipv6(name)):
            # `::1:19340` is how an IPv6 address and its port come out when the
            # brackets are forgotten (kubernetes#56543): say which part is which.
            raise ValueError(
                f"invalid host {value!r}: give the port in the port option, and the host as {name!r}"
            )
        raise ValueError(f"invalid host {value!r}: not a host name, IPv4 or IPv6 address")
    if not _HOST_NAME.match(text):
        raise ValueError(f"invalid host {value!r}: not a host name, IPv4 or IPv6 address")
    return text


def format_host(host: str) -> str:
    """`host` as it is written before `:port`: IPv6 addresses in brackets."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return f"[{bare}]" if ":" in bare else bare


def format_endpoint(host: str, port: int | str) -> str:
    """`host:port`, with an IPv6 host in brackets: `[::1]:8080`."""
    return f"{format_host(host)}:{port}"


def split_host_port(value: str, *, default_host: str) -> tuple[str, int]:
    """`HOST:PORT`, `[IPv6]:PORT`, `:PORT` or `PORT` as (bare host, port).

    ValueError says what is wrong without repeating the value (the caller
    names it); `MissingPort` when there is no port at all. An IPv6 address
    without brackets is refused: `::1:8080` could be an address, or an
    address and a port. An IPv4-mapped address (`[::ffff:127.0.0.1]`) is
    given as its IPv4 address.
    """
    text = value.strip()
    if text.startswith("["):
        inside, bracket, after = text[1:].partition("]")
        if not bracket or not _is_ipv6(inside):
            raise ValueError("brackets hold an IPv6 address only, like [::1]:9180")
        if not after.startswith(":"):
            raise ValueError(f"give the port after the brackets, like [{inside}]:9180")
        # An IPv4-mapped address is its IPv4 address: asyncio's IPv6 sockets
        # are IPv6-only and cannot bind it.
        mapped = ipaddress.IPv6Address(inside.partition("%")[0]).ipv4_mapped
        return (str(mapped) if mapped is not None else inside), _port(after[1:])
    if text.count(":") > 1:
        address, _, port_text = text.rpartition(":")
        if _is_ipv6(address) and port_text.isdigit():
            like = f"[{address}]:{port_text}"
        else:
            like = f"[{text}]:9180" if _is_ipv6(text) else "[::1]:9180"
        raise ValueError(f"write an IPv6 address in brackets with its port, like {like}")
    host, separator, port_text = text.rpartition(":")
    if not separator:
        host, port_text = "", text
    if host and not _HOST_NAME.match(host):
        raise ValueError(f"{host!r} is not a host name, IPv4 or IPv6 address")
    return host or default_host, _port(port_text)


class MissingPort(ValueError):
    """An address without a port where one is needed."""


def _port(text: str) -> int:
    if not text.isdigit():
        raise MissingPort("write it as HOST:PORT")
    port = int(text)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range ({_PORT_HINT})")
    return port


def _checked_zone(address: str, value: str) -> str:
    """`address`, when its zone (`%eth0`) names an interface of this host."""
    _, percent, zone = address.partition("%")
    if percent and not zone.isdigit():
        try:
            socket.if_nametoindex(zone)
        except OSError:
            raise ValueError(
                f"invalid host {value!r}: this host has no network interface {zone!r}"
            ) from None
    return address


def _is_ipv6(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False


class Host(str):
    """A host option: a name, an IPv4 address, or an IPv6 address with or without
    brackets; the value is the bare host."""

    __slots__ = ()

    @classmethod
    def from_config(cls, value: Any) -> Host:
        """The bare host of `value` (`[::1]` -> `::1`); ValueError saying what a host is."""
        if not isinstance(value, str):
            raise ValueError(f"expected a host name or address, got {value!r}")
        return cls(parse_host(value))

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON Schema of a host option, for the config's schema."""
        return {"type": "string", "minLength": 1}
