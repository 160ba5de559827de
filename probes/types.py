"""Value types shared by the config file and probe options: durations and regexes.

Declare a field as `Duration` or `re.Pattern` in an `Options` struct and the
config loader parses it ("250ms", "10s", "2m", "14d", a bare number of seconds;
a regular expression compiled once) with a located error when it is invalid.

Any other class can be an option type too: give it a `from_config(value)`
classmethod that returns the parsed value or raises ValueError with a message
naming the bad value, and optionally a `json_schema()` classmethod.
"""

from __future__ import annotations

import math
import re
import typing
from typing import Any

__all__ = ["Duration", "format_duration", "option_error", "parse_duration"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")
_DURATION_HINT = "write it like 250ms, 10s, 2m, 1h or a number of seconds"
_SECONDS_PER_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class Duration(float):
    """A length of time in seconds, written "250ms", "10s", "2m", "1h", "14d" or 30."""

    def __repr__(self) -> str:
        return f"Duration({format_duration(self)!r})"

    def __str__(self) -> str:
        return format_duration(self)


def parse_duration(value: Any) -> Duration:
    """Parse a duration; raise ValueError naming the bad value."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"invalid duration {value!r}: must be a finite number >= 0")
        return Duration(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return Duration(float(match[1]) * _SECONDS_PER_UNIT[match[2]])
        raise ValueError(f"invalid duration {value!r} ({_DURATION_HINT})")
    # As the YAML was written: `true`, `null`, not Python's True and None.
    written = (
        {True: "true", False: "false", None: "null"}.get(value, repr(value))
        if isinstance(value, bool | None)
        else type(value).__name__
    )
    raise ValueError(f"invalid duration {written} ({_DURATION_HINT})")


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of `seconds`: 0.25 -> "250ms", 90 -> "90s", 120 -> "2m",
    1209600 -> "14d"."""
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def decode_custom(type_: type, value: Any) -> Any:
    """msgspec `dec_hook`: build the custom value types from config values."""
    if type_ is Duration:
        return parse_duration(value)
    if type_ is re.Pattern or typing.get_origin(type_) is re.Pattern:
        if not isinstance(value, str):
            raise ValueError(f"expected a regular expression string, got {value!r}")
        try:
            return re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    from_config = getattr(type_, "from_config", None)
    if from_config is not None:
        return from_config(value)
    raise NotImplementedError(f"no decoder for {type_!r}")


def json_schema_of_custom(type_: type) -> dict[str, Any] | None:
    """msgspec `schema_hook`: describe the custom types in JSON Schema."""
    if type_ is Duration:
        return {
            "title": "duration",
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": _DURATION.pattern},
            ],
            "description": "a duration: 250ms, 10s, 2m, 1h, 14d, or a number of seconds",
        }
    if type_ is re.Pattern or typing.get_origin(type_) is re.Pattern:
        return {"title": "regular expression", "type": "string", "format": "regex"}
    json_schema = getattr(type_, "json_schema", None)
    return json_schema() if json_schema is not None else None


def option_error(key: str, message: str) -> ValueError:
    """An error about one option, raised from an Options `__post_init__`.

    It carries the same "- at `$.key`" suffix msgspec gives field errors, so
    the config loader reports it at that key: `checks[0] (x).file.max_age: …`.
    """
    return ValueError(f"{message} - at `$.{key}`")
