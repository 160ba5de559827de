"""Reading a config: the file, its YAML, `${VAR}` expansion, then the builder.

Every way in ends in a `Config` or a `ConfigError` listing every mistake in
file order; never a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from adapter.config.builder import Builder
from adapter.config.environment import expand_env
from adapter.config.messages import value_kind
from adapter.config.model import Config, ConfigError
from adapter.config.places import in_file_order
from adapter.registry import Registry
from adapter.yaml_loader import YamlError, load_yaml

#: Bytes: a config file is written by hand; a larger one is a mistake, not a config.
MAX_CONFIG_BYTES = 1024 * 1024


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
            [f"the config must be a mapping with a 'checks:' list, not {value_kind(document)}"],
            source,
        )
    errors: list[str] = []
    document = expand_env(document, os.environ if environ is None else environ, errors)
    if document is None:
        raise ConfigError(errors, source)
    builder = Builder(
        registry or Registry.discover(), errors, os.environ if environ is None else environ
    )
    config = builder.build(document, source)
    if errors or config is None:
        raise ConfigError(in_file_order(errors, document), source)
    return config


def config_path_from(argument: str | None) -> Path | None:
    """The config path from the command line, else from HEALTH_ADAPTER_CONFIG."""
    value = argument or os.environ.get("HEALTH_ADAPTER_CONFIG")
    return Path(value) if value else None
