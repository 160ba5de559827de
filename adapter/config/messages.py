"""How config mistakes are worded: msgspec's messages rewritten, and our own.

msgspec says ``Expected `int`, got `str` - at `$.port` ``; an operator reads
`checks[0] (db).tcp.port: expected an integer, got 'x' `. Each
rewriting rule below matches one of msgspec's messages by its wording.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from adapter.config.environment import UnsetVariable, holds_unset
from adapter.config.model import ENDPOINT_GROUPS
from adapter.config.places import key_label

# msgspec's wording, which the rewriting rules below depend on; a test pins
# each one (tests/adapter/config/test_messages.py), so that a msgspec release
# that rewords one fails there instead of passing its text through.

#: Any msgspec error: the message, then where the bad value is (`$.a[0].b`).
MSGSPEC_ERROR = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
#: A key that the struct does not declare.
UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(.*)`")
#: A required key left out.
MISSING_FIELD = re.compile(r"Object missing required field `(.*)`")
#: A value of the wrong type: the expected type(s), the type found.
WRONG_TYPE = re.compile(r"Expected `(.*?)`, got `(.*?)`")
#: A value out of a constraint: its type, the constraint (`>= 1`, `of length >= 1`).
CONSTRAINT = re.compile(r"Expected `(.*?)` (.*)")
#: A value that is no member of an enum (the members are not named).
INVALID_ENUM = "Invalid enum value"
#: The path of a bad value in a mapping, whose key msgspec does not name.
IN_MAPPING = "[...]"
#: The path of a bad item of a list, in a message.
IN_LIST = re.compile(r"`\$\[\d+\]")

_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def located_message(
    error: str, where: str, value: Any, valid_keys: list[str] | None = None
) -> str | None:
    """Rewrite a msgspec error as `where.path: message <bad value>`.

    `error` is `str()` of a `msgspec.ValidationError` raised on `value`, which
    stands at `where` (like `checks[0] (api).http`); `valid_keys` are listed
    after an unknown key at the top of `value`. Returns None when the bad
    value is an unset variable, which was reported already. A message that
    matches no rule is passed through, located.
    """
    match = MSGSPEC_ERROR.match(error)
    assert match is not None  # the pattern matches any text
    message, path = match["message"], match["path"] or ""
    bad = _lookup(value, path)
    if isinstance(bad, UnsetVariable) or (not path and holds_unset(value)):
        return None
    unknown = UNKNOWN_FIELD.fullmatch(message)
    missing = MISSING_FIELD.fullmatch(message)
    if unknown:
        key = unknown[1]
        keys = valid_keys if not path else None
        return f"{where}{path}.{key_label(key)}: {unknown_key_message(key, keys)}"
    if missing:
        return f"{where}{path}.{key_label(missing[1])}: required"
    expected = WRONG_TYPE.fullmatch(message)
    if expected:
        hint = " (quote it to make it text)" if expected[1] == "str" else ""
        return f"{where}{path}: expected {_type_name(expected[1])}, got {_show(bad)}{hint}"
    constraint = CONSTRAINT.fullmatch(message)
    if constraint and constraint[2] == "of length >= 1" and isinstance(bad, list | dict | str):
        return f"{where}{path}: must not be empty"
    if constraint:
        return (
            f"{where}{path}: expected {_type_name(constraint[1])} {constraint[2]}, got {_show(bad)}"
        )
    return f"{where}{path}: {message}"


#: Group names that mean an endpoint; a near miss of one is taken for a typo.
MEANT_GROUPS = (*ENDPOINT_GROUPS, "startup")


def meant_group(group: str) -> str | None:
    """The endpoint group (`live`, `ready`, `startup`) that `group` is a near miss
    of (`Ready`, `redy`), or None when it is one or is nothing like one."""
    if group in MEANT_GROUPS:
        return None
    folded = group.lower()
    if folded in _GROUP_SYNONYMS:
        return _GROUP_SYNONYMS[folded]
    close = difflib.get_close_matches(folded, MEANT_GROUPS, n=1, cutoff=0.75)
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
    """What to say of a `group` that `meant_group` takes for `meant`."""
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
    """What to say of an unknown `key` among the keys `valid` (any iterable, or None):
    the closest valid key if one is close, else the list of valid keys."""
    names = sorted(str(k) for k in valid) if valid else []
    close = difflib.get_close_matches(str(key), names, n=1)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    if names:
        return f"unknown key (valid keys: {', '.join(names)})"
    return "unknown key"


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
    kind = value_kind(value)
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


def value_kind(value: Any) -> str:
    """What `value` is, in the config's words: `a mapping`, `text`, `nothing (null)`."""
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
