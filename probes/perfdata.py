"""Nagios performance data: one grammar, read by the exec probe and written by `?format=nagios`.

After the monitoring-plugins development guidelines:

    TEXT | 'label'=value[UOM];[warn];[crit];[min];[max] …
    LONG TEXT …
    LONG TEXT | more perfdata …

A label is quoted with single quotes when it holds spaces or `=`, a quote in
it written twice; the value is a number or `U` (undetermined); the UOM is one
of `s ms us % B KB MB TB c` in the guidelines, though plugins write others
(`MiB`, `GB`, `min`, `µs`), which are read as written.
"""

from __future__ import annotations

import dataclasses
import math
import re

__all__ = [
    "UOMS",
    "PerfValue",
    "PluginOutput",
    "format_item",
    "number",
    "parse_perfdata",
    "parse_plugin_output",
]

#: The units of measurement the guidelines allow.
UOMS = frozenset({"s", "ms", "us", "%", "B", "KB", "MB", "TB", "c"})


@dataclasses.dataclass(frozen=True, slots=True)
class PerfValue:
    """One performance-data item: `'label'=value[UOM];warn;crit;min;max`.

    `value` is None when the plugin wrote `U` (undetermined) or something that
    is not a number; the item keeps its place among the others all the same.
    """

    label: str
    value: int | float | None
    unit: str
    raw: str  # as the plugin wrote it
    warn: str = ""
    crit: str = ""
    min: str = ""
    max: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class PluginOutput:
    """A plugin's output split into its text and its performance data."""

    text: str
    perfdata: tuple[PerfValue, ...]

    @property
    def observed(self) -> PerfValue | None:
        """The first item, whose value (when readable) is the check's observed value.

        Always the first as written: an unreadable first value means no observed
        value, never the next item's in its place.
        """
        return self.perfdata[0] if self.perfdata else None


def parse_plugin_output(output: str) -> PluginOutput:
    """Split Nagios plugin output into text and perfdata.

    The first line is `TEXT | PERFDATA`; later lines are long text, until one
    holds a `|`: what follows it, and every line after, is more perfdata.
    """
    first, _, rest = output.partition("\n")
    text, _, perfdata = first.partition("|")
    texts = [text.rstrip()]
    long_text, bar, long_perfdata = rest.partition("|")
    texts.append(long_text.rstrip())
    items = parse_perfdata(perfdata)
    if bar:
        items += parse_perfdata(long_perfdata)
    return PluginOutput("\n".join(t for t in texts if t), tuple(items))


#: One item: a quoted label may hold spaces; anything else runs to the next space.
_ITEM = re.compile(r"'(?:[^']|'')*'=\S*|\S+")
_READABLE = re.compile(
    r"^(?P<label>'(?:[^']|'')+'|[^'=]+)=(?P<value>[^;]*)(?P<thresholds>;.*)?$", re.DOTALL
)
_VALUE = re.compile(
    r"^(?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)(?P<unit>[^\d\s;.,+-]*)$"
)


def parse_perfdata(text: str) -> list[PerfValue]:
    """Every item of a perfdata string, in order, each as written.

    An item that does not read as `label=value` is kept with value None and
    its raw text as label, so that it still holds its place.
    """
    values = []
    for raw in _ITEM.findall(text):
        item = _READABLE.match(raw)
        if item is None:
            values.append(PerfValue(raw, None, "", raw))
            continue
        label = item["label"]
        if label.startswith("'"):
            label = label[1:-1].replace("''", "'")
        value, unit = _value(item["value"])
        limits = (item["thresholds"] or "").split(";")[1:] + ["", "", "", ""]
        values.append(PerfValue(label, value, unit, raw, *limits[:4]))
    return values


def _value(text: str) -> tuple[int | float | None, str]:
    if text == "U":
        return None, ""
    match = _VALUE.match(text)
    if match is None:
        return None, ""
    try:
        value = float(match["number"])
    except ValueError:
        return None, ""
    if not math.isfinite(value):
        return None, ""
    if re.fullmatch(r"[-+]?\d+", match["number"]):
        return int(match["number"]), match["unit"]
    return value, match["unit"]


def format_item(label: str, value: float, uom: str = "") -> str:
    """`'label'=value[UOM];;;;`: no thresholds, since the verdict is already decided."""
    quoted = "'" + label.replace("'", "''") + "'"
    return f"{quoted}={number(value)}{uom};;;;"


def number(value: float) -> str:
    """A value in the guidelines' character class [-0-9.]: no exponent, no locale."""
    if isinstance(value, int):
        return str(value)
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
