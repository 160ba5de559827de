"""Units of an observed value: the one conversion every renderer uses.

A probe reports a value with the unit it observed (`12.5 ms`, a plugin's
`4838MiB`, `2 processes`). Where a format has units of its own, the value is
converted through one table, so that it means the same quantity everywhere:

- /metrics: the base unit (seconds, bytes, ratio), as Prometheus names them;
- Nagios perfdata: a unit of the plugin guidelines (s, ms, us, %, B, KB, MB,
  TB, c) kept as written; any other that only scales (MiB, GB, min, h, ns)
  converted to s, B or %; a unit of no known scale (processes, items) left off
  the number, which is then a plain count.

health+json and the status page show the value and its unit as observed:
the unit is there to read, so the scale is never lost.
"""

from __future__ import annotations

from adapter.formats.printable import printable
from probes.perfdata import UOMS

#: A unit as written -> (the quantity's base unit, the factor to it).
SCALES: dict[str, tuple[str, float]] = {
    "ns": ("seconds", 1e-9),
    "us": ("seconds", 1e-6),
    "µs": ("seconds", 1e-6),  # MICRO SIGN
    "μs": ("seconds", 1e-6),  # GREEK SMALL LETTER MU
    "ms": ("seconds", 1e-3),
    "s": ("seconds", 1.0),
    "sec": ("seconds", 1.0),
    "secs": ("seconds", 1.0),
    "second": ("seconds", 1.0),
    "seconds": ("seconds", 1.0),
    "m": ("seconds", 60.0),
    "min": ("seconds", 60.0),
    "minutes": ("seconds", 60.0),
    "h": ("seconds", 3600.0),
    "hours": ("seconds", 3600.0),
    "d": ("seconds", 86400.0),
    "days": ("seconds", 86400.0),
    "B": ("bytes", 1.0),
    "bytes": ("bytes", 1.0),
    "KiB": ("bytes", 1024.0),
    "MiB": ("bytes", 1024.0**2),
    "GiB": ("bytes", 1024.0**3),
    "TiB": ("bytes", 1024.0**4),
    "PiB": ("bytes", 1024.0**5),
    "KB": ("bytes", 1e3),
    "kB": ("bytes", 1e3),
    "MB": ("bytes", 1e6),
    "GB": ("bytes", 1e9),
    "TB": ("bytes", 1e12),
    "PB": ("bytes", 1e15),
    "%": ("ratio", 0.01),
    "percent": ("ratio", 0.01),
}

#: Spellings of a guidelines unit that mean exactly it: renamed, the number kept.
_SAME_AS = {
    "µs": "us",
    "μs": "us",
    "sec": "s",
    "secs": "s",
    "second": "s",
    "seconds": "s",
    "bytes": "B",
    "kB": "KB",
    "percent": "%",
}
#: The guidelines unit of each base quantity, and the factor from the base to it.
_NAGIOS_BASE = {"seconds": ("s", 1.0), "bytes": ("B", 1.0), "ratio": ("%", 100.0)}


def base_unit(value: float, unit: str | None) -> tuple[float, str]:
    """The value in its base unit (ms -> seconds, MiB -> bytes, % -> ratio), and that unit.

    A unit of no known scale is kept (made printable), the value unchanged.
    """
    if not unit:
        return value, ""
    scale = SCALES.get(unit)
    if scale is None:
        return value, printable(unit)
    name, factor = scale
    return value * factor, name


def nagios_unit(value: float, unit: str | None) -> tuple[float, str]:
    """The value and a unit of the plugin guidelines for it: `'disk'=5073010688B`.

    A guidelines unit is kept as written (`12.5ms`, `3KB`, `7c`); one that only
    scales is converted (`4838MiB` -> `5073010688B`, `2min` -> `120s`,
    `500ns` -> `0.5us`); one of no known scale is left off ("" : a count).
    """
    if not unit:
        return value, ""
    if unit in UOMS:
        return value, unit
    if unit in _SAME_AS:
        return value, _SAME_AS[unit]
    if unit == "ns":
        return value / 1000, "us"  # in us, a nanosecond keeps three decimals
    scale = SCALES.get(unit)
    if scale is None:
        return value, ""
    base, factor = scale
    uom, to_uom = _NAGIOS_BASE[base]
    return value * factor * to_uom, uom
