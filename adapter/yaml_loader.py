"""YAML parsing for config files: safe types only, duplicate keys refused.

PyYAML keeps the last of two equal keys without a word; in a health config
that silently drops a setting, so a duplicate is an error with its line.
"""

from __future__ import annotations

from typing import Any

import yaml


class YamlError(Exception):
    """The text is not valid YAML; the message names the line and column."""


class _StrictLoader(yaml.SafeLoader):
    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, IndexError, OverflowError) as exc:
            # PyYAML's own constructors raise these for an explicit tag on a value
            # it does not fit (`!!int ""`, `!!float x`, `!!timestamp 2020-99-99`).
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            value = node.value if isinstance(node, yaml.ScalarNode) else "…"
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"{value!r} is not a valid {tag} ({type(exc).__name__})",
                node.start_mark,
            ) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)  # resolves `<<:` merge keys before duplicates are looked for
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                ) from None
            if key in seen and not _from_merge(seen[key], node):
                first = seen[key].start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _from_merge(key_node: yaml.Node, mapping: yaml.MappingNode) -> bool:
    # Keys that came in through `<<:` sit before the mapping's own keys and may
    # be overridden by them; that is the point of a merge.
    return bool(key_node.start_mark.index < mapping.start_mark.index)


def load_yaml(text: str) -> Any:
    """The document in `text`, with duplicate keys, anchors and documents refused;
    a YAMLError names the line and column and says what to do.
    """
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        unclosed = problem.startswith("found unexpected end of stream")
        if unclosed and "quoted scalar" in (exc.context or "") and exc.context_mark:
            # The end of the file is where the parser gave up, not where the mistake is.
            mark = exc.context_mark
            problem = "this quoted value is never closed"
        elif problem.startswith("could not find expected ':'") and exc.context_mark:
            mark = exc.context_mark  # the line of the key, not the next one
        elif exc.context and problem.startswith("but found"):
            problem = f"{exc.context}, {problem}"  # the problem finishes the context's sentence
        elif exc.context and problem == "second occurrence" and exc.context_mark:
            first = exc.context_mark.line + 1
            problem = f"{exc.context.split(';')[0]} (first at line {first})"
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        hint = advice(problem)
        raise YamlError(f"{where}{problem}" + (f"; {hint}" if hint else "")) from None
    except yaml.reader.ReaderError as exc:
        # A character YAML does not allow (a control character, say): it carries
        # only an offset, which is turned into the line and column.
        before = text[: exc.position]
        line, column = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        char = exc.character
        code = char if isinstance(char, int) else ord(char) if char else 0
        raise YamlError(
            f"line {line}, column {column}: character U+{code:04X} is not "
            f"allowed in YAML ({exc.reason})"
        ) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"invalid YAML: {exc}") from None
    except RecursionError:
        raise YamlError("invalid YAML: nested too deeply") from None


#: What a person should do about PyYAML's commonest complaints, by the start of
#: its words; its own words stay, since they are what a search finds.
_ADVICE: tuple[tuple[str, str], ...] = (
    ("found character '\\t'", "YAML indents with spaces only: replace the tab with spaces"),
    (
        "expected <block end>, but found ']'",
        "a ']' closes a list that was never opened",
    ),
    (
        "expected <block end>, but found '}'",
        "a '}' closes a mapping that was never opened",
    ),
    (
        "expected <block end>",
        "this line is indented differently from the lines before it at the same "
        "level: align it with its siblings",
    ),
    (
        "expected a single document in the stream",
        "the config is one document: remove the '---' line and merge what follows it",
    ),
    (
        "found duplicate anchor",
        "give the second anchor (&name) another name",
    ),
    (
        "expected alphabetic or numeric character",
        "a value that starts with '*' or '&' is read as an alias or anchor: put it in quotes",
    ),
    (
        "this quoted value is never closed",
        "close the quote on the same line, or quote nothing and write the value plain",
    ),
    (
        "mapping values are not allowed here",
        "a value holds ': ', so put it in quotes, or a key above lacks the space "
        "after its colon ('key: value')",
    ),
    (
        "could not find expected ':'",
        "a key lacks its colon or the space after it ('key: value'), or the line is "
        "not indented as meant",
    ),
    ("expected ',' or '}'", "a {...} mapping lacks a comma between items or its closing '}'"),
    ("expected ',' or ']'", "a [...] list lacks a comma between items or its closing ']'"),
    ("found undefined alias", "define the anchor (&name) before its use (*name)"),
    ("duplicate key", "keep one of the two: YAML would silently use the last"),
    (
        "found unknown escape character",
        "in double quotes a backslash starts an escape: write '\\\\' or use single quotes",
    ),
    (
        "found character",
        "a plain value cannot start with this character: put the value in quotes",
    ),
)


def advice(problem: str) -> str | None:
    """What to do about a YAML complaint, or None when there is nothing to add."""
    return next((hint for start, hint in _ADVICE if problem.startswith(start)), None)
