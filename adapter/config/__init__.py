"""The config file: YAML in, a typed and validated `Config` out, or every mistake located.

Validation uses msgspec: it is small, fast to import, converts YAML values to
typed structs and reports the key path of what is wrong, which is all this
needs. Each key is validated on its own so that one run reports every
mistake, each as `checks[1] (heartbeat).file.max_age: invalid duration '30 sec'`.

    model.py        Config, CheckConfig, ServerConfig, limits, the key tables
    loading.py      load_config, parse_config: file -> YAML -> expansion -> builder
    environment.py  ${VAR} expansion
    builder.py      the document -> Config, each key on its own
    options.py      a probe block -> its probe's Options
    messages.py     msgspec's messages rewritten, and our own wording
    places.py       where an error is (`checks[1] (db).tcp.port`), and file order

The listen address is a config value; it is parsed in `adapter.listener`,
and its names are re-exported here.
"""

from adapter.config.environment import MAX_NODES, UnsetVariable, expand_env
from adapter.config.loading import MAX_CONFIG_BYTES, config_path_from, load_config, parse_config
from adapter.config.messages import group_typo_message, meant_group, unknown_key_message
from adapter.config.model import (
    BUILTIN_DEFAULTS,
    CHECK_KEYS,
    DETAILS_TIERS,
    ENDPOINT_GROUPS,
    MAX_TOKEN_BYTES,
    MIN_INTERVAL,
    MIN_TIMEOUT,
    MIN_TOKEN_LENGTH,
    NAME_PATTERN,
    SERVER_KEYS,
    TIMING_KEYS,
    TOP_KEYS,
    CheckConfig,
    Config,
    ConfigError,
    GrpcServerConfig,
    HaproxyAgentConfig,
    ServerConfig,
    StatusCodes,
    server_rule_errors,
)
from adapter.config.options import OptionField, option_fields, parse_probe_options
from adapter.config.places import in_file_order, key_label
from adapter.listener import (
    DEFAULT_LISTEN,
    ListenAddress,
    TcpAddress,
    UnixAddress,
    parse_listen,
)

__all__ = [
    "BUILTIN_DEFAULTS",
    "CHECK_KEYS",
    "DEFAULT_LISTEN",
    "DETAILS_TIERS",
    "ENDPOINT_GROUPS",
    "MAX_CONFIG_BYTES",
    "MAX_NODES",
    "MAX_TOKEN_BYTES",
    "MIN_INTERVAL",
    "MIN_TIMEOUT",
    "MIN_TOKEN_LENGTH",
    "NAME_PATTERN",
    "SERVER_KEYS",
    "TIMING_KEYS",
    "TOP_KEYS",
    "CheckConfig",
    "Config",
    "ConfigError",
    "GrpcServerConfig",
    "HaproxyAgentConfig",
    "ListenAddress",
    "OptionField",
    "ServerConfig",
    "StatusCodes",
    "TcpAddress",
    "UnixAddress",
    "UnsetVariable",
    "config_path_from",
    "expand_env",
    "group_typo_message",
    "in_file_order",
    "key_label",
    "load_config",
    "meant_group",
    "option_fields",
    "parse_config",
    "parse_listen",
    "parse_probe_options",
    "server_rule_errors",
    "unknown_key_message",
]
