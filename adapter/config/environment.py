"""`${VAR}` expansion: environment variables in the config's string values.

Three forms, written as docker compose and POSIX shells write them:
`${NAME}`, `${NAME:-default}` (the default when NAME is unset) and `$$` for a
literal `$`. Keys are never expanded, nor are values that are not strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from adapter.config.places import can_label, key_label

_REFERENCE = re.compile(r"\$\$|\$\{(?P<body>[^}]*)\}")
_VARIABLE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?$", re.DOTALL)
#: Values in the document once aliases are expanded: far above any real
#: config, far below what exhausts memory.
MAX_NODES = 100_000


class UnsetVariable(str):
    """Stands for a value whose variable is unset; the error is reported once, here,
    and the builder does not report the value again as invalid."""


def expand_env(document: Any, environ: Mapping[str, str], errors: list[str]) -> Any:
    """Expand `${VAR}` and `${VAR:-default}` in every string value (`$$` is a literal `$`).

    Walking also bounds the document's size after YAML aliases are resolved,
    which is what stops an alias bomb. Each mistake is appended to `errors`,
    located (`checks[0] (api).http.url: environment variable HOST is not set`);
    a value that used an unset variable comes back as an `UnsetVariable`. None
    when the document has more than `MAX_NODES` values or nests too deeply.
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
    if where == "checks" and isinstance(item, dict) and can_label(item.get("name")):
        label += f" ({item['name']})"
    return label


def holds_unset(value: Any) -> bool:
    """Whether `value` is, or holds somewhere inside it, an `UnsetVariable`."""
    if isinstance(value, dict):
        return any(holds_unset(v) for v in value.values())
    if isinstance(value, list):
        return any(holds_unset(v) for v in value)
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
