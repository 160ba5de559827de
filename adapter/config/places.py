"""Places in a config document, as errors name them: `checks[1] (db).tcp.port`.

A place is the path of keys and list indexes from the top of the document,
joined by dots; a check's index is followed by its name when it has a usable
one. Errors are sorted by the places they name, so they read in file order.
"""

from __future__ import annotations

import re
import sys
from typing import Any


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
    """The positions, in `document`, of the keys and items `error` names."""
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


def can_label(value: Any) -> bool:
    """Whether a check's name can label its errors, as `checks[1] (name)`: even an
    invalid name helps the reader, unless it would make the label ambiguous."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= 64
        and value.isprintable()
        and not any(c in value for c in "()")
        and "${" not in value
    )


def is_about(error: str, place: str) -> bool:
    """Whether `error` is about `place` or something inside it."""
    return error.startswith(place) and error[len(place) : len(place) + 1] in (".", ":", "[")
