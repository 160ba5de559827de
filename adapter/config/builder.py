"""The builder: an expanded YAML document in, a `Config` out, every mistake located.

Each key is validated on its own, so that one run reports every mistake; the
rules between keys are judged on the keys that are valid on their own, in
the same run.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from adapter.config.messages import (
    group_typo_message,
    located_message,
    meant_group,
    unknown_key_message,
    value_kind,
)
from adapter.config.model import (
    BUILTIN_DEFAULTS,
    CHECK_KEYS,
    MAX_TOKEN_BYTES,
    MIN_INTERVAL,
    MIN_TIMEOUT,
    MIN_TOKEN_LENGTH,
    SERVER_KEYS,
    TIMING_KEYS,
    TOP_KEYS,
    CheckConfig,
    Config,
    ConfigError,
    ServerConfig,
    server_rule_errors,
)
from adapter.config.options import parse_probe_options
from adapter.config.places import can_label, key_label
from adapter.listener import DEFAULT_LISTEN, parse_listen
from adapter.registry import PLUGIN_KEY, Registry, RegistryError, load_class
from probes import Probe
from probes.types import decode_custom, format_duration

#: What `Builder.convert` returns for a value it reported invalid.
INVALID = object()


class Builder:
    """Turns the expanded YAML document into a Config, collecting errors as it goes.

    Each located mistake is appended to `errors`; `build` returns None when
    there was any. `environ` is read for `server.token_env`.
    """

    def __init__(self, registry: Registry, errors: list[str], environ: Mapping[str, str]) -> None:
        self.registry = registry
        self.errors = errors
        self.environ = environ
        #: Mistakes not reported again here: values whose variable is unset.
        self.unreported = 0

    def build(self, document: dict[str, Any], source: str) -> Config | None:
        """The Config of `document` (a mapping, its variables expanded), or None."""
        # server: is validated key by key below, so that all of its mistakes are reported.
        top = self.fields(document, {**TOP_KEYS, "server": dict}, "")
        if "checks" not in document:
            self.errors.append("checks: required: list the checks to run")
        defaults = dict(BUILTIN_DEFAULTS)
        own_defaults = self.fields(top.get("defaults", {}), TIMING_KEYS, "defaults.")
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
                    label = f" ({name})" if can_label(name) else ""
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
        valid = self.fields(raw, SERVER_KEYS, "server.")
        invalid = set(raw) - set(valid) if isinstance(raw, dict) else set()
        if not invalid & {"details", "token_file", "token_env"}:
            for key, message in server_rule_errors(valid):
                self.errors.append(f"server.{key}: {message}")
        if self.failures() > failures:
            return ServerConfig()
        server = self.convert(valid, ServerConfig, "server")
        return ServerConfig() if server is INVALID else server

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
                f"{where.rstrip('.') or 'config'}: expected a mapping, got {value_kind(mapping)}"
            )
            return {}
        valid: dict[str, Any] = {}
        for key, value in mapping.items():
            if key not in schema:
                self.errors.append(f"{where}{key_label(key)}: {unknown_key_message(key, schema)}")
                continue
            converted = self.convert(value, schema[key], f"{where}{key}")
            if converted is not INVALID:
                valid[key] = converted
        return valid

    def convert(
        self,
        value: Any,
        type_: Any,
        where: str,
        convert: Callable[[Any], Any] | None = None,
    ) -> Any:
        """`value` as `type_` (or through `convert`), or `INVALID` once the mistake
        is reported."""
        try:
            if convert is not None:
                return convert(value)
            return msgspec.convert(value, type_, strict=False, dec_hook=decode_custom)
        except msgspec.ValidationError as exc:
            self.report(located_message(str(exc), where, value))
            return INVALID

    def report(self, message: str | None) -> None:
        """Record a located message; None stands for one reported already."""
        if message is None:  # the value's variable was already reported unset
            self.unreported += 1
        else:
            self.errors.append(message)

    def failures(self) -> int:
        """Mistakes found so far, including those reported once already (unset variables)."""
        return len(self.errors) + self.unreported

    def check(self, index: int, raw: Any, defaults: dict[str, Any]) -> CheckConfig | None:
        """The entry `checks[index]`, or None when it has a mistake (reported)."""
        if not isinstance(raw, dict):
            self.errors.append(f"checks[{index}]: expected a mapping, got {value_kind(raw)}")
            return None
        name = raw.get("name")
        where = f"checks[{index}]" + (f" ({name})" if can_label(name) else "")
        failures_before = self.failures()
        common = {key: value for key, value in raw.items() if key in CHECK_KEYS}
        fields = self.fields(common, CHECK_KEYS, where + ".")
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
        timing = {key: fields.get(key, defaults[key]) for key in TIMING_KEYS}
        blocks = [key for key in raw if key not in CHECK_KEYS]
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
        """A check's one probe block among its keys `blocks` that are not check
        settings: (type, class, options as written, options validated)."""
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
            self.errors.append(
                f"{block_where}: expected a mapping of options, got {value_kind(block)}"
            )
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
        """`value` as written, once it is found to be a listen address."""
        try:
            parse_listen(value)
        except ValueError as exc:
            self.errors.append(f"{where}: {exc}")
        return value

    def unknown_block_message(self, key: str) -> str:
        """What to say of a key of a check that is neither a setting nor a probe type."""
        choices = [*self.registry.names(), PLUGIN_KEY]
        close = difflib.get_close_matches(str(key), [*choices, *CHECK_KEYS], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return (
            f"unknown key {str(key)!r}: not a check setting nor a probe type{hint} "
            f"(probe types: {', '.join(choices)})"
        )
