"""A probe block validated against its probe's `Options`, every mistake located.

msgspec stops at a block's first mistake; here each key (and each item of a
mapping or list option) is validated on its own first, so that one run
reports them all, and then the whole block, for the rules between options.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import enum
import types
import typing
from collections.abc import Mapping
from typing import Any

import msgspec

from adapter.config.messages import (
    IN_LIST,
    IN_MAPPING,
    INVALID_ENUM,
    located_message,
    unknown_key_message,
)
from adapter.config.model import CHECK_KEYS, ConfigError
from adapter.config.places import is_about, key_label
from probes import Probe
from probes.types import decode_custom


def parse_probe_options(probe_class: type[Probe], options: Mapping[str, Any], where: str) -> Any:
    """A probe block validated by its class, or ConfigError with every located mistake.

    `where` is the block's place, like `checks[0] (api).http`. Each key is
    checked on its own first, so that one run reports every mistake of the
    block; then the whole block, for the rules that tie options together.
    Returns what `probe_class.parse_options` returns: the `Options` instance,
    or the block as a read-only mapping when the class declares none. The ConfigError's `errors` may be
    empty when the only mistakes were unset variables, already reported.
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
            if not any(is_about(error, f"{where}.{key_label(key)}") for error in errors)
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


@dataclasses.dataclass(frozen=True, slots=True)
class OptionField:
    """One option of a probe: the type its value is validated against, and
    whether a block must set it."""

    type: Any
    required: bool


def option_fields(options_type: type | None) -> dict[str, OptionField] | None:
    """The keys of an Options struct or dataclass, as written in a config; None
    when `options_type` is None or neither (its keys are then not checked one
    by one)."""
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
    # A check setting written inside the probe block is a common slip.
    if not difflib.get_close_matches(str(key), list(declared), n=1):
        setting = difflib.get_close_matches(str(key), list(CHECK_KEYS), n=1)
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
    if item_type is not None and isinstance(value, dict) and IN_MAPPING in error:
        items = [(f"{where}.{key_label(key)}", item) for key, item in value.items()]
    else:
        item_type = _list_item_type(type_)
        if item_type is not None and isinstance(value, list) and IN_LIST.search(error):
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
    if choices is not None and INVALID_ENUM in message:
        message += f" (one of: {', '.join(str(member.value) for member in choices)})"
    return [message], 0


def _list_item_type(type_: Any) -> Any:
    """The item type of a list (or homogeneous tuple) type, else None."""
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
    """The value type of a mapping type, else None."""
    for candidate in _unwrapped(type_):
        if typing.get_origin(candidate) in (dict, collections.abc.Mapping):
            return typing.get_args(candidate)[1]
    return None


def _enum_type(type_: Any) -> type[enum.Enum] | None:
    """The enum a value of `type_` may be, else None."""
    for candidate in _unwrapped(type_):
        if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
            return candidate
    return None


def _option_names(probe_class: type[Probe]) -> list[str] | None:
    """The option names of `probe_class`, listed after an unknown key."""
    options = probe_class.Options
    if options is None:
        return None
    if dataclasses.is_dataclass(options):
        return [field.name for field in dataclasses.fields(options)]
    struct_fields = getattr(options, "__struct_fields__", None)
    return list(struct_fields) if struct_fields is not None else None
