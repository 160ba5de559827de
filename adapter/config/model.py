"""The validated config: `Config`, its `CheckConfig`s and `ServerConfig`, their
limits and defaults, and the key tables the builder validates against and
`adapter/schema.py` describes.

Durations are float seconds throughout; a `Duration` is a float that
remembers it was written as one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from adapter.listener import DEFAULT_LISTEN, UnixAddress, parse_listen
from probes import Duration, Probe, Resources, Status
from probes.types import format_duration, option_error

#: What a check name (and a group name) may be: it appears in URLs and metric labels.
NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
#: Seconds: a shorter interval would make the adapter a load on the app it watches.
MIN_INTERVAL = 0.1
#: Seconds: below this a timeout only measures the scheduler.
MIN_TIMEOUT = 0.01
#: The groups an endpoint reads: /livez and /readyz (/startupz reads every check).
ENDPOINT_GROUPS = ("live", "ready")

Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN, min_length=1, max_length=128)]
Threshold = Annotated[int, msgspec.Meta(ge=1, le=1000)]
StatusCode = Annotated[int, msgspec.Meta(ge=100, le=599)]


class StatusCodes(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The HTTP status answered for each verdict (Consul reads 429 as warning)."""

    pass_: StatusCode = msgspec.field(default=200, name="pass")
    warn: StatusCode = 200
    fail: StatusCode = 503

    def for_status(self, status: Status) -> int:
        """The status code configured for `status`."""
        return {Status.PASS: self.pass_, Status.WARN: self.warn, Status.FAIL: self.fail}[status]


DEFAULT_MAX_CONNECTIONS = 256
#: Seconds.
DEFAULT_KEEPALIVE_TIMEOUT = 5.0
DEFAULT_SOCKET_MODE = "0660"
#: Bytes: token files are a line of text; anything larger is not a token.
MAX_TOKEN_BYTES = 4096
#: Characters: a shorter token could be guessed.
MIN_TOKEN_LENGTH = 16
#: The values of `server.details`: who sees outputs and observed values.
DETAILS_TIERS = ("public", "token")


# -- extra listeners: the HAProxy agent, gRPC health, the drain file ---------------------

#: `warn_weight` of the HAProxy agent: a percentage of the configured weight.
WEIGHT_PATTERN = re.compile(r"^(100|[1-9][0-9]?)%$")
GRPC_EXTRA = "pip install 'health-adapter[grpc]'"


class HaproxyAgentConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """HAProxy's agent check: one line per connection, derived from readiness."""

    #: Where the agent listens, HOST:PORT (HAProxy's `agent-port`, `agent-addr`).
    listen: str
    #: The weight a warn verdict asks for, a percentage of the server's configured weight.
    warn_weight: str = "50%"

    def __post_init__(self) -> None:
        _check_listen("listen", self.listen, unix=False)
        if not WEIGHT_PATTERN.match(self.warn_weight):
            raise option_error(
                "warn_weight",
                f"{self.warn_weight!r} is not a weight: write a percentage from 1% to 100%, "
                "e.g. 50%",
            )

    @property
    def warn_percent(self) -> int:
        """`warn_weight` as a number of percent, 1 to 100."""
        return int(self.warn_weight.rstrip("%"))


class GrpcServerConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """gRPC's health service (grpc.health.v1.Health), from the same verdicts as HTTP."""

    #: Where the gRPC server listens, HOST:PORT.
    listen: str

    def __post_init__(self) -> None:
        _check_listen("listen", self.listen, unix=False)
        try:
            import grpc  # noqa: F401
            import grpc_health.v1  # noqa: F401
        except ImportError:
            raise option_error(
                "listen", f"serving gRPC health needs the grpc extra: {GRPC_EXTRA}"
            ) from None


def _check_listen(key: str, value: str, *, unix: bool) -> None:
    try:
        address = parse_listen(value)
    except ValueError as exc:
        raise option_error(key, str(exc)) from None
    if not unix and isinstance(address, UnixAddress):
        raise option_error(key, f"{value!r}: this listener takes HOST:PORT, not a Unix socket")


class ServerConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """How the adapter answers, as opposed to what it checks."""

    # (The docstring is the schema's description of `server:`.) Constructing
    # one that breaks a rule between keys raises msgspec.ValidationError naming
    # the key, as decoding does: see server_rule_errors.

    status_codes: StatusCodes = StatusCodes()
    #: Open client connections at most; more are closed as soon as they are accepted.
    max_connections: Annotated[int, msgspec.Meta(ge=1, le=65535)] = DEFAULT_MAX_CONNECTIONS
    #: An idle connection, or one that has not sent a whole request, is closed after this.
    keepalive_timeout: Duration = Duration(DEFAULT_KEEPALIVE_TIMEOUT)
    #: The share of requests written to the access log: 0 none, 1 every one.
    access_log: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    #: Poll the config file and reload it when it changes (SIGHUP always reloads).
    watch_config: bool = False
    #: Who sees details (outputs, observed values): anyone, or bearers of the token.
    details: Annotated[str, msgspec.Meta(extra_json_schema={"enum": list(DETAILS_TIERS)})] = (
        "public"
    )
    token_file: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    token_env: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    #: Permissions of the Unix socket when `listen` is `unix:PATH`, in octal.
    socket_mode: Annotated[str, msgspec.Meta(pattern=r"^0?[0-7]{3}$")] = DEFAULT_SOCKET_MODE
    #: HAProxy's agent check, answered on its own port (off unless set).
    haproxy_agent: HaproxyAgentConfig | None = None
    #: gRPC health (grpc.health.v1.Health) on its own port (off unless set; the grpc extra).
    grpc: GrpcServerConfig | None = None
    #: While this file exists, readiness reports draining (an operator's hand drain).
    drain_file: Annotated[str, msgspec.Meta(min_length=1)] | None = None

    def __post_init__(self) -> None:
        for key, message in server_rule_errors(msgspec.structs.asdict(self)):
            raise option_error(key, message)

    @property
    def socket_permissions(self) -> int:
        """`socket_mode` as a number, for chmod."""
        return int(self.socket_mode, 8)


def server_rule_errors(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every broken rule of `server:` that msgspec's types cannot state, as (key,
    message); `values` holds the keys that are valid on their own (a rule that
    needs a missing one is not judged)."""
    errors: list[tuple[str, str]] = []
    keepalive = values.get("keepalive_timeout")
    if keepalive is not None and not 0.1 <= keepalive <= 3600:
        errors.append(("keepalive_timeout", f"{format_duration(keepalive)} is outside 100ms to 1h"))
    details = values.get("details", "public")
    token_file, token_env = values.get("token_file"), values.get("token_env")
    if details not in DETAILS_TIERS:
        errors.append(
            (
                "details",
                f"unknown tier {details!r}: write public "
                "(everyone sees details) or token (only bearers of the token)",
            )
        )
    elif details == "token" and (token_file is None) == (token_env is None):
        errors.append(
            (
                "details",
                "token needs exactly one of token_file or token_env to say where the token is",
            )
        )
    elif details == "public" and (token_file or token_env):
        key = "token_file" if token_file else "token_env"
        errors.append((key, f"{key} is only used with details: token"))
    return errors


class ConfigError(Exception):
    """A config that cannot be used.

    `errors` holds one located message per mistake, in the order of the places
    they name in the file (`checks[1] (db).tcp.port: required`); `source` is
    the file's path, or "config" for text that came from no file.
    """

    def __init__(self, errors: list[str], source: str = "config") -> None:
        self.errors = errors
        self.source = source
        super().__init__("\n".join(errors))

    def report(self) -> str:
        """The errors as `validate` prints them: a count line, then one indented line each."""
        count = len(self.errors)
        head = f"{self.source}: {count} error{'s' if count != 1 else ''}"
        return "\n".join([head, *(f"  {error}" for error in self.errors)])


@dataclasses.dataclass(frozen=True)
class CheckConfig:
    """One entry of `checks:`, validated, with the defaults applied.

    `interval` and `timeout` are seconds; `probe_type` is the block's key
    (`http`, ..., or `plugin`); `options` is the probe block as written (for
    `plugin:`, without `class`) and `probe_config` the same options validated
    by the probe class's `Options` (the block as a read-only mapping when it
    declares none).
    """

    name: str
    probe_type: str
    probe_class: type[Probe]
    options: Mapping[str, Any]
    probe_config: Any
    groups: tuple[str, ...] = ("ready",)
    critical: bool = True
    interval: float = 10.0
    timeout: float = 2.0
    failure_threshold: int = 1
    success_threshold: int = 1

    def make_probe(self, resources: Resources) -> Probe:
        """A new probe instance for this check, sharing `resources` with the others."""
        return self.probe_class(self.name, self.options, resources, config=self.probe_config)


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole config file, validated: what to check (`checks`) and how to answer.

    `listen` is kept as written (`adapter.listener.parse_listen` reads it);
    `source` is the file it came from.
    """

    checks: tuple[CheckConfig, ...]
    service: str | None = None
    listen: str = DEFAULT_LISTEN
    server: ServerConfig = dataclasses.field(default_factory=ServerConfig)
    source: str = "config"
    #: The bearer token that unlocks details (server.details: token), read at load time.
    detail_token: str | None = dataclasses.field(default=None, repr=False, compare=False)

    def check(self, name: str) -> CheckConfig | None:
        """The check named `name`, or None."""
        return next((c for c in self.checks if c.name == name), None)

    @property
    def groups(self) -> set[str]:
        """Every group some check belongs to."""
        return {group for check in self.checks for group in check.groups}


# The key tables: each key with the type it is validated against. The builder
# validates each key on its own against these; adapter/schema.py describes them.

#: The check settings `defaults:` may set for every check.
TIMING_KEYS: dict[str, Any] = {
    "interval": Duration,
    "timeout": Duration,
    "failure_threshold": Threshold,
    "success_threshold": Threshold,
}
#: The keys of a check beside its probe block.
CHECK_KEYS: dict[str, Any] = {
    "name": Name,
    "groups": Annotated[list[Name], msgspec.Meta(min_length=1)],
    "critical": bool,
    **TIMING_KEYS,
}
#: The keys at the top of the file.
TOP_KEYS: dict[str, Any] = {
    "service": Annotated[str, msgspec.Meta(min_length=1)],
    "listen": str,
    "server": ServerConfig,
    "defaults": dict,
    "checks": list,
}
#: The keys of `server:`, as written in a config.
SERVER_KEYS: dict[str, Any] = {
    field.encode_name: field.type for field in msgspec.structs.fields(ServerConfig)
}
#: What `defaults:` holds when the file does not set it.
BUILTIN_DEFAULTS: dict[str, Any] = {
    "interval": Duration(10),
    "timeout": Duration(2),
    "failure_threshold": 1,
    "success_threshold": 1,
}
