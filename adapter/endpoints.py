"""The endpoints as values: what each includes, how it judges a check, its status codes.

An endpoint is data, not a branch in a handler: `/health`, a group's
`/livez` and `/readyz`, `/startupz` and the page at `/` are `CheckSet`s; one
check of any of them (`/health/NAME`, `/livez/NAME`...) is a `OneCheck`.
`ROUTES` is the table the server adds, path by path, each with its
trailing-slash spelling.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from adapter.config import ENDPOINT_GROUPS, CheckConfig, Config, StatusCodes
from adapter.health import PerCheck, check_verdict, in_group, startup_verdict
from adapter.negotiation import Format
from probes import Status

#: The checks an endpoint includes, read from the config in force.
Selection = Callable[[Config], list[CheckConfig]]

_KUBELET_CODES = StatusCodes()


def all_checks(config: Config) -> list[CheckConfig]:
    """Every check of `config`, in config order."""
    return list(config.checks)


@dataclasses.dataclass(frozen=True, slots=True)
class _InGroup:
    group: str

    def __call__(self, config: Config) -> list[CheckConfig]:
        return in_group(config.checks, self.group)


def configured_codes(config: Config, status: Status) -> int:
    """`server.status_codes`: /health and the page answer what the config maps
    (Consul reads 429 as warning)."""
    return config.server.status_codes.for_status(status)


def kubelet_codes(_config: Config, status: Status) -> int:
    """kubelet's meaning whatever the config maps: 200 for pass or warn, 503 for
    fail, so that a 429 meant for Consul never fails a pod's probe (kubelet
    takes 200-399 as success, pkg/probe/http)."""
    return _KUBELET_CODES.for_status(status)


@dataclasses.dataclass(frozen=True, slots=True)
class CheckSet:
    """An endpoint that answers for a set of checks.

    `name` is how its answers name it (`readyz check passed`, a 404's `in
    readyz`); `select` picks its checks from the config in force; `per_check`
    is how one check is judged (`startup_verdict` for /startupz); `drains`
    turns it 503 while the adapter drains (/readyz); `status_code` maps a
    verdict's status to the HTTP status; `group` is the group a /livez or
    /readyz stands for (its empty-group note); `default_format` is what a
    request that asks for nothing gets; `scope` is how a 404 for one of its
    checks says where it looked (nothing for /health, which has them all).
    """

    name: str
    select: Selection = all_checks
    per_check: PerCheck = check_verdict
    drains: bool = False
    status_code: Callable[[Config, Status], int] = kubelet_codes
    group: str | None = None
    default_format: Format = Format.JSON
    scope: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class OneCheck:
    """One check of a `CheckSet`, by name: its own status and its recent runs,
    with the set's way of judging and its status codes."""

    of: CheckSet


HEALTH = CheckSet("health", status_code=configured_codes)
#: The status page: /health's checks and codes, HTML unless asked otherwise.
ROOT = dataclasses.replace(HEALTH, default_format=Format.HTML)
GROUPS = tuple(
    CheckSet(
        f"{group}z",
        _InGroup(group),
        drains=group == "ready",
        group=group,
        scope=f" in {group}z",
    )
    for group in ENDPOINT_GROUPS
)
STARTUPZ = CheckSet("startupz", per_check=startup_verdict, scope=" in startupz")


@dataclasses.dataclass(frozen=True, slots=True)
class Metrics:
    """/metrics: every check, Prometheus text unless asked otherwise, and always
    `status`, since a scrape that fails loses every figure it would have carried."""

    default_format: Format = Format.PROMETHEUS
    status: int = 200
    #: How `?format=text` names it: every check, as /health.
    name: str = "health"


METRICS = Metrics()

Endpoint = CheckSet | OneCheck | Metrics

#: Every route. The server adds each path with a trailing slash too: load
#: balancers and people write one, and a redirect is not followed by every
#: monitor (HAProxy's httpchk does not).
ROUTES: tuple[tuple[str, Endpoint], ...] = (
    ("/", ROOT),
    ("/health", HEALTH),
    ("/health/{name}", OneCheck(HEALTH)),
    *(
        route
        for endpoint in GROUPS
        for route in (
            (f"/{endpoint.name}", endpoint),
            (f"/{endpoint.name}/{{name}}", OneCheck(endpoint)),
        )
    ),
    ("/startupz", STARTUPZ),
    ("/startupz/{name}", OneCheck(STARTUPZ)),
    ("/metrics", METRICS),
)


def empty_group_note(group: str) -> str:
    """What /livez or /readyz says when no check is in its group."""
    return (
        f"no check is in group {group!r}, so /{group}z passes with nothing to check; "
        f"add {group!r} to a check's groups if this is not meant"
    )
