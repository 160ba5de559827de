"""The config file: YAML in, a typed and validated `Config` out, or every mistake located.

Validation uses msgspec: it is small, fast to import, converts YAML values to
typed structs and reports the key path of what is wrong, which is all this
needs. Each key is validated on its own so that one run reports every
mistake, each as `checks[1] (heartbeat).file.max_age: invalid duration '30 sec'`.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import enum
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec

from adapter.registry import PLUGIN_KEY, Registry, RegistryError, load_class
from adapter.yaml_loader import YamlError, load_yaml
from probes import Duration, Probe, Resources, Status
from probes.address import MissingPort, format_endpoint, split_host_port
from probes.types import decode_custom, format_duration, option_error

MAX_CONFIG_BYTES = 1024 * 1024
DEFAULT_LISTEN = "0.0.0.0:9180"
NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
MIN_INTERVAL = 0.1
#: The groups an endpoint reads: /livez and /readyz (/startupz reads every check).
ENDPOINT_GROUPS = ("live", "ready")
#: Group names that mean an endpoint; a near miss of one is taken for a typo.
_MEANT_GROUPS = (*ENDPOINT_GROUPS, "startup")
MIN_TIMEOUT = 0.01

Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN, min_length=1, max_length=128)]
Threshold = Annotated[int, msgspec.Meta(ge=1, le=1000)]


StatusCode = Annotated[int, msgspec.Meta(ge=100, le=599)]


class StatusCodes(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The HTTP status answered for each verdict (Consul reads 429 as warning)."""

    pass_: StatusCode = msgspec.field(default=200, name="pass")
    warn: StatusCode = 200
    fail: StatusCode = 503

    def for_status(self, status: Status) -> int:
        return {Status.PASS: self.pass_, Status.WARN: self.warn, Status.FAIL: self.fail}[status]


DEFAULT_MAX_CONNECTIONS = 256
DEFAULT_KEEPALIVE_TIMEOUT = 5.0
DEFAULT_SOCKET_MODE = "0660"
#: Token files are a line of text; anything larger is not a token.
MAX_TOKEN_BYTES = 4096
MIN_TOKEN_LENGTH = 16

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
    """A config that cannot be used; `errors` holds one located message per mistake."""

    def __init__(self, errors: list[str], source: str = "config") -> None:
        self.errors = errors
        self.source = source
        super().__init__("\n".join(errors))

    def report(self) -> str:
        count = len(self.errors)
        head = f"{self.source}: {count} error{'s' if count != 1 else ''}"
        return "\n".join([head, *(f"  {error}" for error in self.errors)])


@dataclasses.dataclass(frozen=True)
class CheckConfig:
    name: str
    probe_type: str
    probe_class: type[Probe]
    options: Mapping[str, Any]  # the probe block as written (for plugin:, without class)
    probe_config: Any  # the options validated by the probe class
    groups: tuple[str, ...] = ("ready",)
    critical: bool = True
    interval: float = 10.0
    timeout: float = 2.0
    failure_threshold: int = 1
    success_threshold: int = 1

    @property
    def stale_after(self) -> float:
        """Seconds after which the last result is too old to trust."""
        return 3 * self.interval + self.timeout

    def make_probe(self, resources: Resources) -> Probe:
        return self.probe_class(self.name, self.options, resources, config=self.probe_config)


@dataclasses.dataclass(frozen=True)
class Config:
    checks: tuple[CheckConfig, ...]
    service: str | None = None
    listen: str = DEFAULT_LISTEN
    server: ServerConfig = dataclasses.field(default_factory=ServerConfig)
    source: str = "config"
    #: The bearer token that unlocks details (server.details: token), read at load time.
    detail_token: str | None = dataclasses.field(default=None, repr=False, compare=False)

    def check(self, name: str) -> CheckConfig | None:
        return next((c for c in self.checks if c.name == name), None)

    @property
    def groups(self) -> set[str]:
        return {group for check in self.checks for group in check.groups}


# Check settings and defaults: each key with the type it is validated against.
_TIMING_KEYS: dict[str, Any] = {
    "interval": Duration,
    "timeout": Duration,
    "failure_threshold": Threshold,
    "success_threshold": Threshold,
}
_CHECK_KEYS: dict[str, Any] = {
    "name": Name,
    "groups": Annotated[list[Name], msgspec.Meta(min_length=1)],
    "critical": bool,
    **_TIMING_KEYS,
}
_TOP_KEYS: dict[str, Any] = {
    "service": Annotated[str, msgspec.Meta(min_length=1)],
    "listen": str,
    "server": ServerConfig,
    "defaults": dict,
    "checks": list,
}
_SERVER_KEYS: dict[str, Any] = {
    field.encode_name: field.type for field in msgspec.structs.fields(ServerConfig)
}
_BUILTIN_DEFAULTS: dict[str, Any] = {
    "interval": Duration(10),
    "timeout": Duration(2),
    "failure_threshold": 1,
    "success_threshold": 1,
}


def load_config(
    path: str | os.PathLike[str],
    registry: Registry | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read and validate a config file; raise ConfigError listing every mistake."""
    source = str(path)
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"cannot read the config file: {exc.strerror or exc}"], source) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([f"the config file is larger than {MAX_CONFIG_BYTES} bytes"], source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"the config file is not UTF-8 text: {exc.reason} at byte {exc.start}"], source
        ) from None
    return parse_config(text, source, registry, environ)


def parse_config(
    text: str,
    source: str = "config",
    registry: Registry | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Validate config text; raise ConfigError listing every mistake."""
    try:
        document = load_yaml(text)
    except YamlError as exc:
        raise ConfigError([str(exc)], source) from None
    if document is None:
        raise ConfigError(["the config file is empty; it needs at least a 'checks:' list"], source)
    if not isinstance(document, dict):
        raise ConfigError(
            [f"the config must be a mapping with a 'checks:' list, not {_kind(document)}"], source
        )
    errors: list[str] = []
    document = expand_env(document, os.environ if environ is None else environ, errors)
    if document is None:
        raise ConfigError(errors, source)
    builder = _Builder(
        registry or Registry.discover(), errors, os.environ if environ is None else environ
    )
    config = builder.build(document, source)
    if errors or config is None:
        raise ConfigError(in_file_order(errors, document), source)
    return config


def in_file_order(errors: list[str], document: Any) -> list[str]:
    """`errors` in the order of the places they name in `document` (YAML mappings
    keep the file's order): `checks[1] (db).tcp.port` after `checks[0] (api).interval`.
    An error about a whole node, or about a key that is not there (`name:
    required`), comes after those inside it; errors about one place keep the
    order they were found in."""
    return sorted(errors, key=lambda error: _place(error, document))


#: Follows the places an error can name beside keys: `[3]`, then ` (name)`.
_INDEX = re.compile(r"\[(\d+)\](?: \([^)]*\))?")


def _place(error: str, document: Any) -> tuple[int, ...]:
    place: list[int] = []
    rest, node = error, document
    while True:
        step: tuple[int, Any, str] | None = None
        if isinstance(node, dict):
            for index, (key, value) in enumerate(node.items()):
                label = key_label(key)
                if rest.startswith(label) and rest[len(label) : len(label) + 1] in (".", ":", "["):
                    step = index, value, rest[len(label) :]
                    break
        elif isinstance(node, list):
            match = _INDEX.match(rest)
            if match and int(match[1]) < len(node):
                step = int(match[1]), node[int(match[1])], rest[match.end() :]
        if step is None:
            # About this node as a whole (`where: what`) or a key it lacks: after
            # the errors inside it, as a summary follows its details.
            place.append(sys.maxsize)
            return tuple(place)
        place.append(step[0])
        node, rest = step[1], step[2]
        if rest.startswith("."):
            rest = rest[1:]


class _Builder:
    """Turns the expanded YAML document into a Config, collecting errors as it goes."""

    def __init__(self, registry: Registry, errors: list[str], environ: Mapping[str, str]) -> None:
        self.registry = registry
        self.errors = errors
        self.environ = environ
        #: Mistakes not reported again here: values whose variable is unset.
        self.unreported = 0

    def build(self, document: dict[str, Any], source: str) -> Config | None:
        # server: is validated key by key below, so that all of its mistakes are reported.
        top = self.fields(document, {**_TOP_KEYS, "server": dict}, "")
        if "checks" not in document:
            self.errors.append("checks: required: list the checks to run")
        defaults = dict(_BUILTIN_DEFAULTS)
        own_defaults = self.fields(top.get("defaults", {}), _TIMING_KEYS, "defaults.")
        self.timing_ranges(own_defaults, "defaults.")
        defaults.update(own_defaults)
        listen = top.get("listen", DEFAULT_LISTEN)
        if "listen" in top:
            listen = self.listen(listen, "listen")
        checks = []
        seen: dict[str, int] = {}
        for index, raw in enumerate(top.get("checks", [])):
            # A name is looked at even when the rest of its check is invalid.
            name = raw.get("name") if isinstance(raw, dict) else None
            duplicate = False
            if isinstance(name, str):
                duplicate = name in seen
                if duplicate:
                    label = f" ({name})" if _is_name(name) else ""
                    self.errors.append(
                        f"checks[{index}]{label}.name: duplicate name {name!r}, "
                        f"already used by checks[{seen[name]}]"
                    )
                else:
                    seen[name] = index
            check = self.check(index, raw, defaults)
            if check is not None and not duplicate:
                checks.append(check)
        if "checks" in top and not top["checks"]:
            self.errors.append("checks: the list is empty; add at least one check")
        server = self.server(top.get("server", {}))
        token = self.detail_token(server)
        if self.errors:
            return None
        return Config(
            tuple(checks),
            service=top.get("service"),
            listen=listen,
            server=server,
            source=source,
            detail_token=token,
        )

    def server(self, raw: dict[str, Any]) -> ServerConfig:
        """Each key on its own first, so that every mistake is reported; then the rules
        between keys, which only make sense once each key is valid."""
        failures = self.failures()
        valid = self.fields(raw, _SERVER_KEYS, "server.")
        invalid = set(raw) - set(valid) if isinstance(raw, dict) else set()
        if not invalid & {"details", "token_file", "token_env"}:
            for key, message in server_rule_errors(valid):
                self.errors.append(f"server.{key}: {message}")
        if self.failures() > failures:
            return ServerConfig()
        server = self.convert(valid, ServerConfig, "server")
        return ServerConfig() if server is _INVALID else server

    def detail_token(self, server: ServerConfig) -> str | None:
        """The token of `details: token`, from its file or variable; never echoed in errors."""
        if server.token_env is not None:
            where, value = "server.token_env", self.environ.get(server.token_env)
            if value is None:
                self.errors.append(f"{where}: environment variable {server.token_env} is not set")
                return None
        elif server.token_file is not None:
            where = "server.token_file"
            try:
                with open(server.token_file, "rb") as stream:
                    data = stream.read(MAX_TOKEN_BYTES + 1)
            except OSError as exc:
                self.errors.append(
                    f"{where}: cannot read {server.token_file}: {exc.strerror or exc}"
                )
                return None
            if len(data) > MAX_TOKEN_BYTES:
                self.errors.append(
                    f"{where}: {server.token_file} is larger than "
                    f"{MAX_TOKEN_BYTES} bytes; it should hold one token"
                )
                return None
            value = data.decode("utf-8", "replace")
        else:
            return None
        token = value.strip()
        if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() or not c.isprintable() for c in token):
            self.errors.append(
                f"{where}: the token must be one word of at least "
                f"{MIN_TOKEN_LENGTH} printable characters"
            )
            return None
        return token

    def fields(self, mapping: Any, schema: dict[str, Any], where: str) -> dict[str, Any]:
        """Validate each known key of `mapping` on its own; report unknown keys."""
        if not isinstance(mapping, dict):
            self.errors.append(
                f"{where.rstrip('.') or 'config'}: expected a mapping, got {_kind(mapping)}"
            )
            return {}
        valid: dict[str, Any] = {}
        for key, value in mapping.items():
            if key not in schema:
                self.errors.append(f"{where}{key_label(key)}: {unknown_key_message(key, schema)}")
                continue
            converted = self.convert(value, schema[key], f"{where}{key}")
            if converted is not _INVALID:
                valid[key] = converted
        return valid

    def convert(
        self,
        value: Any,
        type_: Any,
        where: str,
        convert: Callable[[Any], Any] | None = None,
    ) -> Any:
        try:
            if convert is not None:
                return convert(value)
            return msgspec.convert(value, type_, strict=False, dec_hook=decode_custom)
        except msgspec.ValidationError as exc:
            self.report(located_message(str(exc), where, value))
            return _INVALID

    def report(self, message: str | None) -> None:
        if message is None:  # the value's variable was already reported unset
            self.unreported += 1
        else:
            self.errors.append(message)

    def failures(self) -> int:
        """Mistakes found so far, including those reported once already (unset variables)."""
        return len(self.errors) + self.unreported

    def check(self, index: int, raw: Any, defaults: dict[str, Any]) -> CheckConfig | None:
        if not isinstance(raw, dict):
            self.errors.append(f"checks[{index}]: expected a mapping, got {_kind(raw)}")
            return None
        name = raw.get("name")
        where = f"checks[{index}]" + (f" ({name})" if _is_name(name) else "")
        failures_before = self.failures()
        common = {key: value for key, value in raw.items() if key in _CHECK_KEYS}
        fields = self.fields(common, _CHECK_KEYS, where + ".")
        if "name" not in raw:
            self.errors.append(f"{where}.name: required")
        for position, group in enumerate(fields.get("groups", ())):
            meant = meant_group(group)
            if meant is not None:
                self.errors.append(
                    f"{where}.groups[{position}]: {group_typo_message(group, meant)}"
                )
        # Ranges are judged with the other mistakes, not after they are fixed; a
        # value taken from defaults: was judged there, once.
        self.timing_ranges(fields, where + ".")
        timing = {key: fields.get(key, defaults[key]) for key in _TIMING_KEYS}
        blocks = [key for key in raw if key not in _CHECK_KEYS]
        probe = self.probe_block(where, raw, blocks)
        if self.failures() > failures_before or probe is None:
            return None
        probe_type, probe_class, options, probe_config = probe
        return CheckConfig(
            name=fields["name"],
            probe_type=probe_type,
            probe_class=probe_class,
            options=options,
            probe_config=probe_config,
            groups=tuple(dict.fromkeys(fields.get("groups", ["ready"]))),
            critical=fields.get("critical", True),
            interval=float(timing["interval"]),
            timeout=float(timing["timeout"]),
            failure_threshold=timing["failure_threshold"],
            success_threshold=timing["success_threshold"],
        )

    def probe_block(
        self, where: str, raw: dict[str, Any], blocks: list[str]
    ) -> tuple[str, type[Probe], dict[str, Any], Any] | None:
        known = [key for key in blocks if key in self.registry]
        for key in blocks:
            if key not in self.registry:
                self.errors.append(f"{where}.{key_label(key)}: {self.unknown_block_message(key)}")
        if len(known) > 1:
            self.errors.append(
                f"{where}: has {len(known)} probe blocks ({', '.join(known)}); "
                "a check takes exactly one"
            )
            return None
        if not known:
            if not blocks:
                self.errors.append(
                    f"{where}: no probe block; add exactly one of: "
                    f"{', '.join([*self.registry.names(), PLUGIN_KEY])}"
                )
            return None
        probe_type = known[0]
        block = raw[probe_type]
        block_where = f"{where}.{probe_type}"
        if block is None:
            block = {}
        if not isinstance(block, dict):
            self.errors.append(f"{block_where}: expected a mapping of options, got {_kind(block)}")
            return None
        options = dict(block)
        try:
            if probe_type == PLUGIN_KEY:
                target = options.pop("class", None)
                if not isinstance(target, str) or not target:
                    self.errors.append(
                        f"{block_where}.class: required: the plugin's 'package.module:ClassName'"
                    )
                    return None
                block_where_class = f"{block_where}.class"
                try:
                    probe_class = load_class(target)
                except RegistryError as exc:
                    self.errors.append(f"{block_where_class}: {exc}")
                    return None
            else:
                probe_class = self.registry.load(probe_type)
        except RegistryError as exc:
            self.errors.append(f"{block_where}: {exc}")
            return None
        try:
            probe_config = parse_probe_options(probe_class, options, block_where)
        except ConfigError as exc:
            if not exc.errors:
                self.unreported += 1
            self.errors.extend(exc.errors)
            return None
        return probe_type, probe_class, options, probe_config

    def timing_ranges(self, fields: dict[str, Any], where: str) -> None:
        """Report an interval or timeout in `fields` below its minimum."""
        for key, minimum in (("interval", MIN_INTERVAL), ("timeout", MIN_TIMEOUT)):
            if key in fields and fields[key] < minimum:
                self.errors.append(
                    f"{where}{key}: {format_duration(fields[key])} is "
                    f"shorter than the minimum of {format_duration(minimum)}"
                )

    def listen(self, value: str, where: str) -> str:
        try:
            parse_listen(value)
        except ValueError as exc:
            self.errors.append(f"{where}: {exc}")
        return value

    def unknown_block_message(self, key: str) -> str:
        choices = [*self.registry.names(), PLUGIN_KEY]
        close = difflib.get_close_matches(str(key), [*choices, *_CHECK_KEYS], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return (
            f"unknown key {str(key)!r}: not a check setting nor a probe type{hint} "
            f"(probe types: {', '.join(choices)})"
        )


_INVALID = object()
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def key_label(key: Any) -> str:
    """A mapping key as it appears in an error's location: plain when it is a plain
    word, quoted otherwise, so that `':'` or `'a.b'` cannot be misread as a path."""
    if isinstance(key, str) and _PLAIN_KEY.match(key):
        return key
    if not isinstance(key, str) and len(repr(key)) <= 40:
        return repr(key)
    text = str(key)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _is_name(value: Any) -> bool:
    """Whether a check's name can label its errors, as `checks[1] (name)`: even an
    invalid name helps the reader, unless it would make the label ambiguous."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= 64
        and value.isprintable()
        and not any(c in value for c in "()")
        and "${" not in value
    )


def parse_probe_options(probe_class: type[Probe], options: Mapping[str, Any], where: str) -> Any:
    """A probe block validated by its class, or ConfigError with every located mistake.

    `where` is the block's place, like `checks[0] (api).http`. Each key is
    checked on its own first, so that one run reports every mistake of the
    block; then the whole block, for the rules that tie options together.
    """
    declared = option_fields(probe_class.Options)
    errors: list[str] = []
    unreported = 0
    if declared is not None:
        errors, unreported = _option_errors(options, declared, where)
        # The rules between options are judged on the keys that are valid on
        # their own, in the same run: never only once the others are fixed.
        options = {
            key: value
            for key, value in options.items()
            if not any(_names(error, f"{where}.{key_label(key)}") for error in errors)
        }
    try:
        parsed = probe_class.parse_options(options)
    except msgspec.ValidationError as exc:
        message = located_message(str(exc), where, options, _option_names(probe_class))
        # None: the bad value is an unset variable, which was reported already.
        # A key left out above may make the block say it is missing: not news.
        if message is not None and not (errors and message.endswith(": required")):
            errors.append(message)
        raise ConfigError(errors) from None
    except Exception as exc:
        raise ConfigError([*errors, f"{where}: {type(exc).__name__}: {exc}"]) from None
    if errors or unreported:
        raise ConfigError(errors)
    return parsed


def _names(error: str, place: str) -> bool:
    """Whether `error` is about `place` or something inside it."""
    return error.startswith(place) and error[len(place) : len(place) + 1] in (".", ":", "[")


@dataclasses.dataclass(frozen=True)
class TcpAddress:
    host: str  # "0.0.0.0" or "::" for all addresses
    port: int

    def __str__(self) -> str:
        return format_endpoint(self.host, self.port)


@dataclasses.dataclass(frozen=True)
class UnixAddress:
    path: str

    def __str__(self) -> str:
        return f"unix:{self.path}"


ListenAddress = TcpAddress | UnixAddress
UNIX_PREFIX = "unix:"


def parse_listen(value: str) -> ListenAddress:
    """`host:port`, `[v6]:port`, `:port`, `port` (empty host = all) or `unix:/path`."""
    text = str(value).strip()
    if text.startswith(UNIX_PREFIX):
        path = text[len(UNIX_PREFIX) :]
        if not path.startswith("/") or "\0" in path:
            raise ValueError(
                f"invalid listen address {value!r}: write a Unix socket as unix:/absolute/path.sock"
            )
        if len(os.fsencode(path)) > 107:  # sun_path holds 108 bytes with the NUL
            raise ValueError(
                f"invalid listen address {value!r}: a Unix socket path is limited to 107 bytes"
            )
        return UnixAddress(path)
    try:
        host, port = split_host_port(text, default_host="0.0.0.0")
    except MissingPort:
        raise ValueError(
            f"invalid listen address {value!r}: write it as HOST:PORT or "
            f"unix:/path.sock, e.g. {DEFAULT_LISTEN!r}"
        ) from None
    except ValueError as exc:
        raise ValueError(f"invalid listen address {value!r}: {exc}") from None
    return TcpAddress(host, port)


# -- error messages ---------------------------------------------------------------------

_MSGSPEC_ERROR = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def located_message(
    error: str, where: str, value: Any, valid_keys: list[str] | None = None
) -> str | None:
    """Rewrite a msgspec error as `where.path: message <bad value>`.

    None when the bad value is an unset variable, which was reported already.
    """
    match = _MSGSPEC_ERROR.match(error)
    assert match is not None  # the pattern matches any text
    message, path = match["message"], match["path"] or ""
    bad = _lookup(value, path)
    if isinstance(bad, UnsetVariable) or (not path and _holds_unset(value)):
        return None
    unknown = re.fullmatch(r"Object contains unknown field `(.*)`", message)
    missing = re.fullmatch(r"Object missing required field `(.*)`", message)
    if unknown:
        key = unknown[1]
        keys = valid_keys if not path else None
        return f"{where}{path}.{key_label(key)}: {unknown_key_message(key, keys)}"
    if missing:
        return f"{where}{path}.{key_label(missing[1])}: required"
    expected = re.fullmatch(r"Expected `(.*?)`, got `(.*?)`", message)
    if expected:
        hint = " (quote it to make it text)" if expected[1] == "str" else ""
        return f"{where}{path}: expected {_type_name(expected[1])}, got {_show(bad)}{hint}"
    constraint = re.fullmatch(r"Expected `(.*?)` (.*)", message)
    if constraint and constraint[2] == "of length >= 1" and isinstance(bad, list | dict | str):
        return f"{where}{path}: must not be empty"
    if constraint:
        return (
            f"{where}{path}: expected {_type_name(constraint[1])} {constraint[2]}, got {_show(bad)}"
        )
    return f"{where}{path}: {message}"


@dataclasses.dataclass(frozen=True, slots=True)
class OptionField:
    type: Any
    required: bool


def option_fields(options_type: type | None) -> dict[str, OptionField] | None:
    """The keys of an Options struct or dataclass, as written in a config."""
    if options_type is None:
        return None
    if dataclasses.is_dataclass(options_type):
        hints = typing.get_type_hints(options_type, include_extras=True)
        return {
            field.name: OptionField(
                hints[field.name],
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING,
            )
            for field in dataclasses.fields(options_type)
            if field.init
        }
    if isinstance(options_type, type) and issubclass(options_type, msgspec.Struct):
        return {
            field.encode_name: OptionField(field.type, field.required)
            for field in msgspec.structs.fields(options_type)
        }
    return None


def _option_errors(
    options: Mapping[str, Any], declared: dict[str, OptionField], where: str
) -> tuple[list[str], int]:
    """Every mistake among a block's keys taken one by one, and how many were
    already reported (unset variables)."""
    errors: list[str] = []
    unreported = 0
    suggested: set[str] = set()  # a misspelt key is not reported missing as well
    for key, value in options.items():
        field = declared.get(key) if isinstance(key, str) else None
        if field is None:
            errors.append(f"{where}.{key_label(key)}: {_unknown_option_message(key, declared)}")
            suggested.update(difflib.get_close_matches(str(key), list(declared), n=1))
            continue
        found, hidden = _value_errors(value, field.type, f"{where}.{key}")
        errors += found
        unreported += hidden
    for key, field in declared.items():
        if field.required and key not in options and key not in suggested:
            errors.append(f"{where}.{key}: required")
    return errors, unreported


def _unknown_option_message(key: Any, declared: Mapping[str, OptionField]) -> str:
    if not difflib.get_close_matches(str(key), list(declared), n=1):
        setting = difflib.get_close_matches(str(key), list(_CHECK_KEYS), n=1)
        if setting:
            return (
                f"unknown key; did you mean the check setting {setting[0]!r}? "
                "It goes beside the probe block, not in it"
            )
    return unknown_key_message(key, declared)


def _value_errors(value: Any, type_: Any, where: str) -> tuple[list[str], int]:
    """Every located mistake in `value` against `type_`, and how many were already
    reported (unset variables): each bad item of a mapping or a list on its own,
    since msgspec stops at the first."""
    try:
        msgspec.convert(value, type_, strict=False, dec_hook=decode_custom)
    except msgspec.ValidationError as exc:
        error = str(exc)
    else:
        return [], 0
    # msgspec does not name the key of a bad value in a mapping (`$[...]`): find it.
    items: list[tuple[str, Any]] = []
    item_type = _mapping_value_type(type_)
    if item_type is not None and isinstance(value, dict) and "[...]" in error:
        items = [(f"{where}.{key_label(key)}", item) for key, item in value.items()]
    else:
        item_type = _list_item_type(type_)
        if item_type is not None and isinstance(value, list) and re.search(r"`\$\[\d+\]", error):
            items = [(f"{where}[{index}]", item) for index, item in enumerate(value)]
    if items:
        messages: list[str] = []
        unreported = 0
        for item_where, item in items:
            found, hidden = _value_errors(item, item_type, item_where)
            messages += found
            unreported += hidden
        if messages or unreported:
            return messages, unreported
    message = located_message(error, where, value)
    if message is None:
        return [], 1
    choices = _enum_type(type_)
    if choices is not None and "Invalid enum value" in message:
        message += f" (one of: {', '.join(str(member.value) for member in choices)})"
    return [message], 0


def _list_item_type(type_: Any) -> Any:
    for candidate in _unwrapped(type_):
        if typing.get_origin(candidate) in (list, tuple, collections.abc.Sequence):
            args = typing.get_args(candidate)
            if len(args) == 1 or (len(args) == 2 and args[1] is Ellipsis):
                return args[0]
    return None


def _unwrapped(type_: Any) -> list[Any]:
    """`type_` without Annotated, and the members of a union (Optional) other than None."""
    while typing.get_origin(type_) is typing.Annotated:
        type_ = typing.get_args(type_)[0]
    if typing.get_origin(type_) in (typing.Union, types.UnionType):
        return [
            t for arg in typing.get_args(type_) if arg is not type(None) for t in _unwrapped(arg)
        ]
    return [type_]


def _mapping_value_type(type_: Any) -> Any:
    for candidate in _unwrapped(type_):
        if typing.get_origin(candidate) in (dict, collections.abc.Mapping):
            return typing.get_args(candidate)[1]
    return None


def _enum_type(type_: Any) -> type[enum.Enum] | None:
    for candidate in _unwrapped(type_):
        if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
            return candidate
    return None


def meant_group(group: str) -> str | None:
    """The endpoint group (`live`, `ready`, `startup`) that `group` is a near miss
    of (`Ready`, `redy`), or None when it is one or is nothing like one."""
    if group in _MEANT_GROUPS:
        return None
    folded = group.lower()
    if folded in _GROUP_SYNONYMS:
        return _GROUP_SYNONYMS[folded]
    close = difflib.get_close_matches(folded, _MEANT_GROUPS, n=1, cutoff=0.75)
    return close[0] if close else None


#: Kubernetes' own words for the probes, and the endpoints' names: meant as the group.
_GROUP_SYNONYMS = {
    "liveness": "live",
    "livez": "live",
    "readiness": "ready",
    "readyz": "ready",
    "startupz": "startup",
}


def group_typo_message(group: str, meant: str) -> str:
    if meant == "startup":
        # /startupz reads every check: the name is only ever for check --group.
        return (
            f"group {group!r} looks like a misspelt 'startup'; /startupz reads every "
            "check whatever its groups, so write 'startup' for check --group, or "
            "another name that does not look like live, ready or startup"
        )
    return (
        f"group {group!r} is read by no endpoint; did you mean {meant!r}? "
        "(/readyz reads group 'ready', /livez 'live'; other names are free-form, "
        "for check --group, and must not look like these)"
    )


def unknown_key_message(key: Any, valid: Any) -> str:
    names = sorted(str(k) for k in valid) if valid else []
    close = difflib.get_close_matches(str(key), names, n=1)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    if names:
        return f"unknown key (valid keys: {', '.join(names)})"
    return "unknown key"


def _option_names(probe_class: type[Probe]) -> list[str] | None:
    options = probe_class.Options
    if options is None:
        return None
    if dataclasses.is_dataclass(options):
        return [field.name for field in dataclasses.fields(options)]
    struct_fields = getattr(options, "__struct_fields__", None)
    return list(struct_fields) if struct_fields is not None else None


def _lookup(value: Any, path: str) -> Any:
    for key, index in _PATH_PART.findall(path):
        try:
            value = value[int(index)] if index else value[key]
        except (KeyError, IndexError, TypeError, ValueError):
            return _MISSING
    return value


_MISSING = object()


def _show(value: Any) -> str:
    if value is _MISSING:
        return "something else"
    kind = _kind(value)
    if value is None or isinstance(value, dict | list):
        return kind
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{kind} {text}" if not isinstance(value, str) else text


_TYPE_NAMES = {
    "str": "text",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "nothing",
}


def _type_name(msgspec_name: str) -> str:
    return " or ".join(
        _TYPE_NAMES.get(part.strip(), part.strip()) for part in msgspec_name.split("|")
    )


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {
        dict: "a mapping",
        list: "a list",
        str: "text",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }.get(type(value), type(value).__name__)


# -- ${VAR} expansion -------------------------------------------------------------------

_REFERENCE = re.compile(r"\$\$|\$\{(?P<body>[^}]*)\}")
_VARIABLE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?$", re.DOTALL)
MAX_NODES = 100_000


class UnsetVariable(str):
    """Stands for a value whose variable is unset; the error is reported once, here."""


def expand_env(document: Any, environ: Mapping[str, str], errors: list[str]) -> Any:
    """Expand `${VAR}` and `${VAR:-default}` in every string value (`$$` is a literal `$`).

    Walking also bounds the document's size after YAML aliases are resolved,
    which is what stops an alias bomb.
    """
    budget = [MAX_NODES]

    def walk(node: Any, where: str) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooLarge
        if isinstance(node, dict):
            return {
                key: walk(value, f"{where}.{key_label(key)}" if where else key_label(key))
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [walk(item, _item_label(where, i, item)) for i, item in enumerate(node)]
        if isinstance(node, str) and "$" in node:
            return _expand_string(node, environ, where, errors)
        return node

    try:
        return walk(document, "")
    except (_TooLarge, RecursionError):
        errors.append(
            f"the config has more than {MAX_NODES} values, or nests too deeply, once "
            "YAML aliases are expanded; refusing it"
        )
        return None


class _TooLarge(Exception):
    pass


def _item_label(where: str, index: int, item: Any) -> str:
    label = f"{where}[{index}]"
    if where == "checks" and isinstance(item, dict) and _is_name(item.get("name")):
        label += f" ({item['name']})"
    return label


def _holds_unset(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_holds_unset(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_unset(v) for v in value)
    return isinstance(value, UnsetVariable)


def _expand_string(text: str, environ: Mapping[str, str], where: str, errors: list[str]) -> str:
    unset = False

    def replace(match: re.Match[str]) -> str:
        nonlocal unset
        if match[0] == "$$":
            return "$"
        reference = _VARIABLE.match(match["body"])
        if reference is None:
            errors.append(
                f"{where}: invalid variable reference {match[0]!r}; write ${{NAME}} "
                "or ${NAME:-default} ($$ for a literal $)"
            )
            unset = True
            return ""
        name, default = reference["name"], reference["default"]
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        errors.append(
            f"{where}: environment variable {name} is not set "
            f"(write ${{{name}:-default}} to give a default)"
        )
        unset = True
        return ""

    expanded = _REFERENCE.sub(replace, text)
    return UnsetVariable(expanded) if unset else expanded


def config_path_from(argument: str | None) -> Path | None:
    """The config path from the command line, else from HEALTH_ADAPTER_CONFIG."""
    value = argument or os.environ.get("HEALTH_ADAPTER_CONFIG")
    return Path(value) if value else None
