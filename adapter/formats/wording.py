"""Counted nouns in every answer: "1 check", "2 checks", "1 process".

A unit that a probe reports in the plural ("processes", "items", "bytes") is
said in the singular for exactly one, on the page and in every other form that
puts a number before it. Abbreviations ("ms", "MiB", "rps", "iops") are left as
they are.
"""

from __future__ import annotations

import re

__all__ = ["counted", "unit_for"]

_IRREGULAR = {"statuses": "status", "caches": "cache", "series": "series"}
#: English plurals this rule undoes: -ies -> -y, -sses/-xes/-ches/-shes -> drop "es", -s.
_PLURAL = re.compile(r"^[a-z]{2,}s$")
_NOT_PLURAL = re.compile(r"(ss|us|is|ps)$")


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`1 check`, `0 checks`, `2 checks` (with `plural` for an irregular noun)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def unit_for(value: float, unit: str) -> str:
    """`unit` in the singular when `value` is exactly one and `unit` is an English plural."""
    if value != 1 or not _PLURAL.match(unit) or _NOT_PLURAL.search(unit):
        return unit
    if unit in _IRREGULAR:
        return _IRREGULAR[unit]
    if unit.endswith("ies"):
        return unit[:-3] + "y"
    if unit.endswith(("sses", "xes", "ches", "shes")):
        return unit[:-2]
    return unit[:-1]
