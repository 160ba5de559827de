"""JSON Schema of the config file, and option docs of each probe type, derived from the code.

Nothing here is written twice: the config's own keys come from the tables in
adapter/config/model.py, each probe type's options from its `Options` class (via
msgspec and the custom types' `json_schema`). Editors use the schema through
the YAML language server; `health-adapter probes NAME` prints the docs.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any

import msgspec

from adapter.config import (
    BUILTIN_DEFAULTS,
    CHECK_KEYS,
    TIMING_KEYS,
    TOP_KEYS,
    CheckConfig,
)
from adapter.registry import PLUGIN_KEY, Registry, RegistryError
from probes import Duration, Probe
from probes.types import json_schema_of_custom

__all__ = [
    "DIALECT",
    "OptionDoc",
    "config_schema",
    "option_docs",
    "options_schema",
    "render_schema",
]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
_DEFS = "#/$defs/"
# `${VAR}` is expanded before validation, so a reference may stand for any value.
_ENV_REFERENCE = {
    "type": "string",
    "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}",
    "description": "an environment variable reference, expanded before validation",
}
_PLUGIN_BLOCK = {
    "type": "object",
    "description": "any probes.Probe subclass; every other key is the plugin's option",
    "properties": {
        "class": {
            "type": "string",
            "pattern": r"^[A-Za-z_][\w.]*[:.][A-Za-z_][\w.]*$",
            "description": "the plugin class, as package.module:ClassName",
        }
    },
    "required": ["class"],
}


def _hook(type_: type) -> dict[str, Any]:
    # A custom option type without a json_schema() may hold any value.
    return json_schema_of_custom(type_) or {}


# --- probe options -------------------------------------------------------------------


def options_schema(
    probe_class: type[Probe], prefix: str = ""
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The schema of a probe block and the `$defs` it refers to (named `prefix` + name).

    A probe without `Options` takes any keys.
    """
    options = probe_class.Options
    if options is None:
        return {"type": "object", "description": "options are not declared"}, {}
    return _schema_with_defs(options, prefix)


def _schema_with_defs(type_: Any, prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = msgspec.json.schema(_with_plain_defaults(type_), schema_hook=_hook)
    defs = schema.pop("$defs", {})
    closed = {cls.__name__ for cls in _closed_classes(type_)}
    for component in defs.values():
        if component.get("type") == "object" and component.get("title") in closed:
            component["additionalProperties"] = False
    renamed = {
        f"{prefix}{name}": _prefix_refs(component, prefix) for name, component in defs.items()
    }
    return _prefix_refs(schema, prefix), renamed


def _with_plain_defaults(type_: Any) -> Any:
    """`type_`, or a copy of the struct whose defaults are written as in a config.

    msgspec cannot put a default of a custom type (a Duration, a pattern) into
    a schema; the copy holds the text a config would hold instead ("1m").
    """
    if not isinstance(type_, type) or not issubclass(type_, msgspec.Struct):
        return type_
    fields = msgspec.structs.fields(type_)
    if all(_encodable(field.default) for field in fields):
        return type_
    copied: list[Any] = []
    for field in fields:
        if field.default_factory is not msgspec.NODEFAULT:
            spec = msgspec.field(default_factory=field.default_factory, name=field.encode_name)
        elif field.default is not msgspec.NODEFAULT:
            default = field.default if _encodable(field.default) else _as_written(field.default)
            spec = msgspec.field(default=default, name=field.encode_name)
        else:
            spec = msgspec.field(name=field.encode_name)
        copied.append((field.name, field.type, spec))
    return msgspec.defstruct(
        type_.__name__,
        copied,
        kw_only=True,
        forbid_unknown_fields=type_.__struct_config__.forbid_unknown_fields,
        namespace={"__doc__": type_.__doc__},
    )


def _encodable(value: Any) -> bool:
    try:
        msgspec.to_builtins(value)
    except TypeError:
        return value is msgspec.NODEFAULT
    return True


def _as_written(value: Any) -> Any:
    if isinstance(value, Duration):
        return str(value)
    if isinstance(value, re.Pattern):
        return value.pattern
    if isinstance(value, tuple | list):
        return [_as_written(item) if not _encodable(item) else item for item in value]
    return str(value)


def _closed_classes(type_: Any) -> Iterator[type]:
    """The struct and dataclass types under `type_` that refuse unknown keys."""
    root = msgspec.inspect.type_info(type_)
    if isinstance(root, msgspec.inspect.DataclassType):
        yield root.cls  # Probe.parse_options refuses unknown keys of a dataclass
    seen: set[int] = set()
    stack: list[Any] = [root]
    while stack:
        info = stack.pop()
        if id(info) in seen:
            continue
        seen.add(id(info))
        if isinstance(info, msgspec.inspect.StructType):
            if info.forbid_unknown_fields:
                yield info.cls
            stack.extend(field.type for field in info.fields)
        elif isinstance(info, msgspec.inspect.DataclassType):
            stack.extend(field.type for field in info.fields)
        else:
            for attribute in ("item_type", "key_type", "value_type", "types", "item_types"):
                value = getattr(info, attribute, None)
                if isinstance(value, tuple):
                    stack.extend(value)
                elif value is not None:
                    stack.append(value)


def _prefix_refs(node: Any, prefix: str) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                _DEFS + prefix + value[len(_DEFS) :]
                if key == "$ref" and isinstance(value, str) and value.startswith(_DEFS)
                else _prefix_refs(value, prefix)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_prefix_refs(item, prefix) for item in node]
    return node


# --- the whole config ----------------------------------------------------------------


def config_schema(registry: Registry) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a config file using the probe types of `registry`."""
    defs: dict[str, Any] = {}
    blocks: dict[str, Any] = {}
    for probe_type in registry:
        try:
            probe_class = registry.load(probe_type.name)
        except RegistryError as exc:
            blocks[probe_type.name] = {"type": "object", "description": f"not loadable: {exc}"}
            continue
        schema, probe_defs = options_schema(probe_class, f"{probe_type.name}.")
        defs.update(probe_defs)
        blocks[probe_type.name] = schema
    blocks[PLUGIN_KEY] = _PLUGIN_BLOCK
    defs["Check"] = _check_schema(blocks)

    top: dict[str, Any] = {}
    for key, type_ in TOP_KEYS.items():
        if key == "defaults":
            top[key] = _settings_object(
                TIMING_KEYS, "settings every check gets unless it sets its own"
            )
        elif key == "checks":
            top[key] = {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": f"{_DEFS}Check"},
                "description": "the checks to run",
            }
        else:
            schema, key_defs = _schema_with_defs(type_, "")
            defs.update(key_defs)
            top[key] = schema
    all_defs: dict[str, Any] = {**defs, "EnvReference": _ENV_REFERENCE}
    document = {
        "$schema": DIALECT,
        "title": "health-adapter config",
        "type": "object",
        "properties": top,
        "required": ["checks"],
        "additionalProperties": False,
        "$defs": all_defs,
    }
    _allow_env_references(document, all_defs)
    return document


def _check_schema(blocks: dict[str, Any]) -> dict[str, Any]:
    common = _settings_properties(CHECK_KEYS)
    return {
        "type": "object",
        "description": "one check: its settings and exactly one probe block",
        "anyOf": [
            {
                "title": f"{name} check",
                # A copy each: the pass that admits "${VAR}" rewrites schemas in place.
                "properties": {**copy.deepcopy(common), name: block},
                "required": ["name", name],
                "additionalProperties": False,
            }
            for name, block in blocks.items()
        ],
    }


def _settings_object(keys: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": _settings_properties(keys),
        "additionalProperties": False,
    }


def _settings_properties(keys: dict[str, Any]) -> dict[str, Any]:
    defaults = {
        field.name: field.default
        for field in dataclasses.fields(CheckConfig)
        if field.default is not dataclasses.MISSING
    }
    defaults.update(BUILTIN_DEFAULTS)
    properties = {}
    for key, type_ in keys.items():
        schema = msgspec.json.schema(type_, schema_hook=_hook)
        if key in defaults:
            default = defaults[key]
            schema["default"] = list(default) if isinstance(default, tuple) else default
        properties[key] = schema
    return properties


def _allow_env_references(node: Any, defs: dict[str, Any]) -> None:
    """Let every value that a string like "${PORT}" would not fit be written as one."""
    if isinstance(node, list):
        for item in node:
            _allow_env_references(item, defs)
        return
    if not isinstance(node, dict):
        return
    for key in ("properties", "$defs"):
        for name, value in list(node.get(key, {}).items()):
            if key == "properties" and _rejects_references(value, defs):
                node[key][name] = _or_reference(value)
            _allow_env_references(node[key][name], defs)
    for key in ("items", "additionalProperties"):
        value = node.get(key)
        if isinstance(value, dict):
            if _rejects_references(value, defs):
                node[key] = value = _or_reference(value)
            _allow_env_references(value, defs)
    for key in ("anyOf", "allOf", "oneOf"):
        if key in node:
            _allow_env_references(node[key], defs)


def _rejects_references(schema: dict[str, Any], defs: dict[str, Any]) -> bool:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_DEFS):
        target = defs.get(ref[len(_DEFS) :], {})
        return "enum" in target
    if schema.get("type") in ("object", "array") or schema == _ENV_REFERENCE:
        return False
    if schema.get("type") == "string":
        return any(key in schema for key in ("pattern", "enum", "format", "maxLength"))
    return "type" in schema or "anyOf" in schema or "enum" in schema


def _or_reference(schema: dict[str, Any]) -> dict[str, Any]:
    # Annotations stay outside, where editors show them.
    outer: dict[str, Any] = {
        key: schema[key] for key in ("title", "description", "default") if key in schema
    }
    inner = {key: value for key, value in schema.items() if key not in outer}
    return {**outer, "anyOf": [inner, {"$ref": f"{_DEFS}EnvReference"}]}


def render_schema(schema: dict[str, Any]) -> str:
    """`schema` as the shipped file holds it: JSON indented by 2, UTF-8 as is, a final newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


# --- option docs for `health-adapter probes NAME` ------------------------------------


@dataclasses.dataclass(frozen=True)
class OptionDoc:
    """One option as `health-adapter probes NAME` lists it: its key, its type in
    the config's words (`duration`, `list of text`), whether a block must set
    it, its default as it would be written in YAML (None when there is none)
    and its description."""

    name: str
    type: str
    required: bool
    default: str | None
    description: str


def option_docs(probe_class: type[Probe]) -> list[OptionDoc] | None:
    """One entry per option of `probe_class`; None when it declares no options."""
    if probe_class.Options is None:
        return None
    schema, defs = options_schema(probe_class)
    component = _resolve(schema, defs)
    required = set(component.get("required", ()))
    docs = []
    for name, prop in component.get("properties", {}).items():
        default = None
        if "default" in prop and prop["default"] is not None:
            default = _yaml_value(prop["default"])
        docs.append(
            OptionDoc(
                name=name,
                type=describe_type(prop, defs),
                required=name in required,
                default=default,
                description=" ".join(str(prop.get("description", "")).split()),
            )
        )
    return docs


def describe_type(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    """A short reading of a schema: "integer 1-65535", "list of text", "duration"…"""
    schema = _resolve(schema, defs)
    if "enum" in schema:
        return "one of " + ", ".join(str(value) for value in schema["enum"])
    title = schema.get("title")
    if "anyOf" in schema:
        parts = [
            describe_type(item, defs) for item in schema["anyOf"] if item.get("type") != "null"
        ]
        described = " or ".join(dict.fromkeys(parts))
        if isinstance(title, str) and schema.get("properties") is None and len(parts) > 1:
            return title
        return described
    kind = schema.get("type")
    if kind == "string":
        return title if isinstance(title, str) else "text"
    if kind in ("integer", "number"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            return f"{kind} {low}-{high}"
        if low is not None:
            return f"{kind} >= {low}"
        return str(kind)
    if kind == "boolean":
        return "true or false"
    if kind == "array":
        items = schema.get("items")
        if not items:
            return "list"
        described = describe_type(items, defs)
        return f"list of ({described})" if " or " in described else f"list of {described}"
    if kind == "object":
        values = schema.get("additionalProperties")
        if isinstance(values, dict) and values:
            return f"mapping of {describe_type(values, defs)}"
        return "mapping"
    return title if isinstance(title, str) else "any value"


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_DEFS):
        return defs.get(ref[len(_DEFS) :], {})  # type: ignore[no-any-return]
    return schema


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value) if value == "" or value != value.strip() else value
    return json.dumps(value)
