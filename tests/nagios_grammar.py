"""The monitoring-plugins output grammar, to hold the adapter's Nagios answers against.

    HEALTH <STATE> - <summary>[ | <perfdata> <perfdata> …]
    <long output line>
    …

perfdata: `'label'=value[UOM];[warn];[crit];[min];[max]`, value in [-0-9.], UOM one
of s, ms, us, %, B, KB, MB, TB, c (or none), a quote in a label written twice.
The whole answer within 8 KiB.
"""

from __future__ import annotations

import dataclasses
import re

STATES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}
FIRST_LINE = re.compile(r"^HEALTH (OK|WARNING|CRITICAL|UNKNOWN) - ([^|]+?)(?: \| (.*))?$")
PERFDATA = re.compile(
    r"^(?P<label>'(?:[^']|'')+'|[^ '=]+)=(?P<value>-?[0-9.]+)(?P<uom>s|ms|us|%|B|KB|MB|TB|c)?"
    r"(?:;(?P<thresholds>[-0-9.:~@]*(?:;[-0-9.:~@]*){0,3}))?$"
)


@dataclasses.dataclass
class PluginOutput:
    state: str
    summary: str
    perfdata: dict[str, tuple[float, str]]  # label -> (value, UOM)
    long_output: list[str]

    @property
    def exit_code(self) -> int:
        return STATES[self.state]


def parse(text: str) -> PluginOutput:
    """Parse a plugin's output, failing the test on anything the guidelines do not allow."""
    assert len(text.encode()) <= 8192, f"{len(text.encode())} bytes: more than 8 KiB"
    lines = text.rstrip("\n").split("\n")
    match = FIRST_LINE.match(lines[0])
    assert match, f"first line does not follow the guidelines: {lines[0]!r}"
    perfdata: dict[str, tuple[float, str]] = {}
    for item in (match[3] or "").split():
        entry = PERFDATA.match(item)
        assert entry, f"malformed performance data {item!r}"
        label = entry["label"]
        if label.startswith("'"):
            label = label[1:-1].replace("''", "'")
        assert float(entry["value"]) is not None
        perfdata[label] = (float(entry["value"]), entry["uom"] or "")
    for line in lines[1:]:
        assert "|" not in line, f"a '|' in the long output starts performance data: {line!r}"
    return PluginOutput(match[1], match[2], perfdata, lines[1:])
