"""Each rule that rewrites a msgspec message, with msgspec's own wording pinned.

The rules match msgspec's messages by their words. If a msgspec release
rewords one, its row fails here on the first assertion, instead of the
message reaching operators unrewritten (or not located at all).
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, ClassVar

import msgspec
import pytest

from adapter.config import ConfigError, parse_probe_options
from adapter.config.messages import (
    CONSTRAINT,
    IN_LIST,
    IN_MAPPING,
    INVALID_ENUM,
    MISSING_FIELD,
    MSGSPEC_ERROR,
    UNKNOWN_FIELD,
    WRONG_TYPE,
    located_message,
)
from probes import Probe, Result


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Block(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    port: int = 80
    retries: Annotated[int, msgspec.Meta(ge=1)] = 1
    hosts: Annotated[list[str], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["a"]
    )
    weights: dict[str, int] = {}
    ports: list[int] = []
    color: Color = Color.RED


class Colored(Probe):
    Options: ClassVar[type[Block]] = Block

    async def check(self) -> Result:
        return Result("pass")


WHERE = "checks[0] (t).plugin"


def option_type(key: str) -> Any:
    return next(field.type for field in msgspec.structs.fields(Block) if field.name == key)


def msgspec_says(value: Any) -> str:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert(value, Block, strict=False)
    return str(caught.value)


@pytest.mark.parametrize(
    ("value", "msgspec_wording", "rule", "rewritten"),
    [
        pytest.param(
            {"url": "x", "bogus": 1},
            "Object contains unknown field `bogus`",
            UNKNOWN_FIELD,
            f"{WHERE}.bogus: unknown key (valid keys: port, url)",
            id="unknown-field",
        ),
        pytest.param(
            {},
            "Object missing required field `url`",
            MISSING_FIELD,
            f"{WHERE}.url: required",
            id="missing-field",
        ),
        pytest.param(
            {"url": "x", "port": "eighty"},
            "Expected `int`, got `str` - at `$.port`",
            WRONG_TYPE,
            f"{WHERE}.port: expected an integer, got 'eighty'",
            id="wrong-type",
        ),
        pytest.param(
            {"url": 8080},
            "Expected `str`, got `int` - at `$.url`",
            WRONG_TYPE,
            f"{WHERE}.url: expected text, got an integer 8080 (quote it to make it text)",
            id="wrong-type-text",
        ),
        pytest.param(
            {"url": "x", "retries": 0},
            "Expected `int` >= 1 - at `$.retries`",
            CONSTRAINT,
            f"{WHERE}.retries: expected an integer >= 1, got an integer 0",
            id="constraint",
        ),
        pytest.param(
            {"url": "x", "hosts": []},
            "Expected `array` of length >= 1 - at `$.hosts`",
            CONSTRAINT,
            f"{WHERE}.hosts: must not be empty",
            id="constraint-empty",
        ),
    ],
)
def test_a_msgspec_message_is_rewritten_by_its_rule(
    value: dict[str, Any], msgspec_wording: str, rule: Any, rewritten: str
) -> None:
    error = msgspec_says(value)
    assert error == msgspec_wording
    match = MSGSPEC_ERROR.fullmatch(error)
    assert match is not None and rule.fullmatch(match["message"])
    assert located_message(error, WHERE, value, ["port", "url"]) == rewritten


@pytest.mark.parametrize(
    ("value", "msgspec_wording", "marker", "errors"),
    [
        pytest.param(
            {"url": "x", "weights": {"a": 1, "b": "heavy", "c": "light"}},
            "Expected `int`, got `str` - at `$[...]`",
            IN_MAPPING,
            [
                f"{WHERE}.weights.b: expected an integer, got 'heavy'",
                f"{WHERE}.weights.c: expected an integer, got 'light'",
            ],
            id="value-in-a-mapping",
        ),
        pytest.param(
            {"url": "x", "ports": [1, "two", "three"]},
            "Expected `int`, got `str` - at `$[1]`",
            IN_LIST.pattern,
            [
                f"{WHERE}.ports[1]: expected an integer, got 'two'",
                f"{WHERE}.ports[2]: expected an integer, got 'three'",
            ],
            id="item-of-a-list",
        ),
        pytest.param(
            {"url": "x", "color": "green"},
            "Invalid enum value 'green'",
            INVALID_ENUM,
            [f"{WHERE}.color: Invalid enum value 'green' (one of: red, blue)"],
            id="enum-member",
        ),
    ],
)
def test_a_msgspec_message_about_one_value_among_many_is_located_on_each(
    value: dict[str, Any], msgspec_wording: str, marker: str, errors: list[str]
) -> None:
    # Each option is validated on its own, against its own type.
    [(key, option)] = [(key, option) for key, option in value.items() if key != "url"]
    with pytest.raises(msgspec.ValidationError) as caught_by_msgspec:
        msgspec.convert(option, option_type(key), strict=False)
    error = str(caught_by_msgspec.value)
    assert error == msgspec_wording
    if marker == IN_LIST.pattern:
        assert IN_LIST.search(error)
    else:
        assert marker in error
    with pytest.raises(ConfigError) as caught:
        parse_probe_options(Colored, value, WHERE)
    assert caught.value.errors == errors


def test_a_message_no_rule_knows_is_passed_through_located() -> None:
    assert located_message("Something new - at `$.port`", WHERE, {"port": 1}) == (
        f"{WHERE}.port: Something new"
    )
