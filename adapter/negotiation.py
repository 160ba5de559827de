"""Which renderer answers a request: `?format=` first, then the Accept header.

Every endpoint asks `choose()` with its own default (`/` is a page, `/metrics`
is Prometheus text, the rest are health+json), so one result set reaches each
consumer in its own format.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import NamedTuple


class Format(enum.Enum):
    """The renderers a request can ask for; each has an entry in adapter.formats.outputs."""

    JSON = "json"
    TEXT = "text"
    NAGIOS = "nagios"
    HTML = "html"
    PROMETHEUS = "prometheus"
    OPENMETRICS = "openmetrics"

    # Members are singletons compared by identity; Enum's own __hash__ is Python
    # code, and a Choice is hashed on every request (it keys the kept answers).
    __hash__ = object.__hash__


class Choice(NamedTuple):
    """The format a request gets, and the media type it asked for it by."""

    format: Format
    media_type: str  # the type asked for (application/json or application/health+json)


class UnknownFormat(ValueError):
    """A `?format=` value that names no renderer."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Offer:
    format: Format
    media_type: str
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)


# Preference order breaks ties between equally acceptable types; the endpoint's
# default goes first. Nagios output has no media type: only `?format=nagios`.
_OFFERS = (
    _Offer(Format.JSON, "application/health+json"),
    _Offer(Format.JSON, "application/json"),
    _Offer(Format.TEXT, "text/plain"),
    _Offer(Format.HTML, "text/html"),
    _Offer(Format.HTML, "application/xhtml+xml"),
    _Offer(Format.OPENMETRICS, "application/openmetrics-text", {"version": "1.0.0"}),
    _Offer(Format.PROMETHEUS, "text/plain", {"version": "0.0.4"}),
)
_DEFAULT_MEDIA = {
    Format.JSON: "application/health+json",
    Format.TEXT: "text/plain",
    Format.NAGIOS: "text/plain",
    Format.HTML: "text/html",
    Format.PROMETHEUS: "text/plain",
    Format.OPENMETRICS: "application/openmetrics-text",
}
_DEFAULT_CHOICES = {format_: Choice(format_, media) for format_, media in _DEFAULT_MEDIA.items()}
#: The only media-type parameter that selects anything (the exposition format version).
_MATCHED_PARAMS = frozenset({"version"})


def default_choice(default: Format) -> Choice:
    """What a request that asks for nothing in particular gets."""
    return _DEFAULT_CHOICES[default]


def choose(query: Mapping[str, str], accept: str | None, default: Format) -> Choice:
    """The renderer for a request; raises UnknownFormat for a bad `?format=`."""
    asked = query.get("format")
    if asked is not None:
        try:
            chosen = Format(asked.strip().lower())
        except ValueError:
            names = ", ".join(f.value for f in Format)
            raise UnknownFormat(f"unknown format {asked!r}; use one of: {names}") from None
        return Choice(chosen, _DEFAULT_MEDIA[chosen])
    if "verbose" in query:  # kube-apiserver's spelling of "text, please"
        return Choice(Format.TEXT, "text/plain")
    return negotiate(accept, default)


def negotiate(accept: str | None, default: Format) -> Choice:
    """The most acceptable offer for an Accept header; `default` when none is acceptable."""
    ranges = parse_accept(accept or "")
    if not ranges:
        return Choice(default, _DEFAULT_MEDIA[default])
    # Between equal qualities, a type the client named beats one it only
    # admits through a wildcard (Consul's `text/plain, text/*, */*` wants text);
    # then the earlier offer wins: the default's first, then the order of _OFFERS.
    offers = sorted(_OFFERS, key=lambda offer: offer.format is not default)
    best: tuple[float, int, _Offer] | None = None
    for offer in offers:
        quality, specificity = _quality(offer, ranges)
        if quality > 0 and (best is None or (quality, specificity) > best[:2]):
            best = (quality, specificity, offer)
    if best is None:
        return Choice(default, _DEFAULT_MEDIA[default])
    return Choice(best[2].format, best[2].media_type)


@dataclasses.dataclass(frozen=True, slots=True)
class MediaRange:
    """One media range of an Accept header (RFC 9110 §12.5.1), `quality` from 0 to 1."""

    type: str
    subtype: str
    params: Mapping[str, str]
    quality: float


def parse_accept(header: str) -> list[MediaRange]:
    """The media ranges of an Accept header; malformed parts are skipped."""
    ranges = []
    for part in header.split(","):
        pieces = [piece.strip() for piece in part.split(";")]
        kind, _, subtype = pieces[0].lower().partition("/")
        if not kind or not subtype:
            continue
        params: dict[str, str] = {}
        quality = 1.0
        for piece in pieces[1:]:
            key, _, value = piece.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "q":
                try:
                    quality = min(1.0, max(0.0, float(value)))
                except ValueError:
                    quality = 0.0
            elif key in _MATCHED_PARAMS:
                params[key] = value
        ranges.append(MediaRange(kind, subtype, params, quality))
    return ranges


def _quality(offer: _Offer, ranges: list[MediaRange]) -> tuple[float, int]:
    """The quality of the most specific range that matches the offer (RFC 9110,
    12.5.1), and how specific that range is (0 for */*)."""
    kind, _, subtype = offer.media_type.partition("/")
    best_specificity, quality = -1, 0.0
    for media in ranges:
        if media.type not in ("*", kind) or media.subtype not in ("*", subtype):
            continue
        if any(offer.params.get(key) != value for key, value in media.params.items()):
            continue
        specificity = (media.type != "*") + (media.subtype != "*") + len(media.params)
        if specificity > best_specificity:
            best_specificity, quality = specificity, media.quality
    return quality, max(best_specificity, 0)
