"""Text from a target made safe to print: the one escaping rule of every answer and log line.

A check's output comes from what the adapter watches (a command's stdout, a
plugin, a file): it may hold anything. Printed as it is, an ESC sequence
rewrites the operator's terminal line, a NUL ends the answer for a reader in C
(a Nagios core), a bidirectional override (U+202E) reverses what follows, a
line separator (U+2028) starts a line of its own, and a byte that was not
UTF-8 (a lone surrogate, U+DC80-U+DCFF) cannot be encoded at all.

So every character that is not printable (`str.isprintable`: Unicode's
"Other" and "Separator" categories, the ASCII space excepted: C0 and C1
controls, DEL, format characters such as the bidi controls, line and
paragraph separators, surrogates, unassigned code points) is written as an
escape: `\\x1b`, `\\x00`, `\\x7f`, `\\u202e`, `\\u2028`, `\\udcff`, `\\U000e0001`. A
backslash itself is left as it is: these forms have no quoting syntax to keep.
"""

from __future__ import annotations

import re

__all__ = ["escape_char", "json_escaped", "one_line", "printable"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: The white space a one-line form folds into a single space; anything else is escaped.
_FOLDED = re.compile(r"[ \t\n\r\v\f]+")
#: A line break (with the blanks around it) becomes " / ", so that where one line of a
#: plugin's output ended stays visible once the lines are run together.
_LINE_BREAK = re.compile(r"[ \t]*[\n\r\v\f][ \t\n\r\v\f]*")


def escape_char(char: str) -> str:
    """The escape of one character that is not printable (`\\n`, `\\x1b`, `\\u202e`)."""
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str, keep: str = "") -> str:
    """`text` with every character that is not printable escaped, except those in `keep`."""
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() or char in keep else escape_char(char) for char in text
    )


def one_line(text: str) -> str:
    """`text` on one line: line breaks shown as " / ", other runs of ASCII white space
    folded to one space, the rest escaped.

    For the forms read line by line (`?verbose`, Nagios, `check`); "no details" when empty.
    """
    folded = _FOLDED.sub(" ", _LINE_BREAK.sub(" / ", text.strip()))
    return printable(folded) or "no details"


def json_escaped(text: str) -> str:
    """JSON text with every character that is not printable written as a `\\uXXXX` escape.

    JSON encoders write DEL, C1 controls, bidi overrides and U+2028/2029 raw; as
    escapes the decoded value is the same, and the line is safe on a terminal.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _json_escape(char) for char in text)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
