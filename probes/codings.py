"""Content codings of an HTTP body, decoded only when a check reads the body.

The http probe asks aiohttp for the body as sent (`auto_decompress=False`):
a status-only check then never depends on whether the server's
`Content-Encoding` could be decoded, even when the server uses one that was
not offered. A body check decodes here: gzip, x-gzip, deflate (zlib-wrapped
or raw, as browsers and curl accept both), br (Brotli, through the `Brotli`
or `brotlicffi` package) and zstd (through `backports.zstd` before Python
3.14), the codings real servers send and aiohttp's own decompressors handle.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Protocol

from aiohttp import compression_utils

__all__ = ["Decoder", "UndecodableBody", "accept_encoding", "decoder_for"]


class UndecodableBody(Exception):
    """The body cannot be decoded; the message says which coding and why."""


class Decoder(Protocol):
    """Turns the next piece of a coded body into at most `max_length` decoded bytes."""

    def decompress_sync(self, data: bytes, max_length: int = 0) -> bytes:
        """The decoded bytes of `data`, at most `max_length` (0: no limit);
        UndecodableBody when `data` is not of the coding."""
        ...


class _Identity:
    def decompress_sync(self, data: bytes, max_length: int = 0) -> bytes:
        return data


class _Deflate:
    """`deflate` as servers send it: zlib-wrapped (RFC 9110) or, often, raw."""

    def __init__(self) -> None:
        self._inner: zlib._Decompress | None = None

    def decompress_sync(self, data: bytes, max_length: int = 0) -> bytes:
        if self._inner is None:
            if not data:
                return b""
            # A zlib stream starts with a header whose first byte names deflate
            # (low nibble 8) and whose first two bytes are a multiple of 31.
            wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return self._inner.decompress(data, max_length)


def _gzip() -> Decoder:
    return compression_utils.ZLibDecompressor(encoding="gzip", max_sync_chunk_size=None)


def _brotli() -> Decoder:
    return compression_utils.BrotliDecompressor(max_sync_chunk_size=None)


def _zstd() -> Decoder:
    return compression_utils.ZSTDDecompressor(max_sync_chunk_size=None)


# The coding's decoder, and the flag of aiohttp's that tells whether its package is there.
_DECODERS: dict[str, tuple[Callable[[], Decoder], str | None]] = {
    "identity": (_Identity, None),
    "gzip": (_gzip, None),
    "x-gzip": (_gzip, None),
    "deflate": (_Deflate, None),
    "br": (_brotli, "HAS_BROTLI"),
    "zstd": (_zstd, "HAS_ZSTD"),
}
_MISSING_PACKAGE = {
    "br": "the Brotli package (pip install 'health-adapter[codings]')",
    "zstd": "the backports.zstd package (pip install 'health-adapter[codings]')",
}


def _available(flag: str | None) -> bool:
    return flag is None or bool(getattr(compression_utils, flag))


def accept_encoding() -> str:
    """The Accept-Encoding to send: every coding this module can decode."""
    return ", ".join(
        name
        for name, (_, flag) in _DECODERS.items()
        if _available(flag) and name not in ("identity", "x-gzip")
    )


class _Chain:
    """Codings applied in order by the server are undone in reverse."""

    def __init__(self, stages: list[tuple[str, Decoder]]) -> None:
        self._stages = stages

    def decompress_sync(self, data: bytes, max_length: int = 0) -> bytes:
        for coding, stage in reversed(self._stages):
            try:
                data = stage.decompress_sync(data, max_length)
            except Exception as exc:  # zlib.error, brotli.error, ZstdError share no base
                raise UndecodableBody(f"cannot decode the {coding} body: {_why(exc)}") from exc
        return data


def decoder_for(content_encoding: str | None) -> Decoder:
    """A decoder for a body labelled with `content_encoding` (the header's value).

    Raises UndecodableBody naming a coding that is unknown, or known but
    without its package installed.
    """
    names = [name.strip().lower() for name in (content_encoding or "").split(",") if name.strip()]
    stages: list[tuple[str, Decoder]] = []
    for name in names:
        entry = _DECODERS.get(name)
        if entry is None:
            raise UndecodableBody(f"cannot decode the {name} body: unknown content coding")
        factory, flag = entry
        if not _available(flag):
            raise UndecodableBody(
                f"cannot decode the {name} body: {_MISSING_PACKAGE[name]} is not installed"
            )
        stages.append((name, factory()))
    return _Chain(stages)


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:120] if text else type(exc).__name__
