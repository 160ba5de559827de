"""Who may see details: everyone (`server.details: public`), or only callers that
present the bearer token (`server.details: token`).

Anonymous callers always get the verdict, its status code and `{"status": …}`:
that is what kubelet and load balancers need. Outputs, observed values,
history, check names and the per-check endpoints need the token.

A `token_file` is read again at the first request after it changes on disk
(a Secret's symlink swap included), without a reload; a replacement that is
not a valid token keeps the one in use, logged once (probes.material).
"""

from __future__ import annotations

import hmac

from multidict import CIMultiDictProxy

from adapter.config import MAX_TOKEN_BYTES, MIN_TOKEN_LENGTH, Config
from probes.material import Reread

#: What an anonymous caller is told when it asks for what needs the token.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="health-adapter"'}


def may_see_details(config: Config, headers: CIMultiDictProxy[str]) -> bool:
    """True when details are public, or the request carries the configured token."""
    if config.server.details == "public":
        return True
    expected = current_token(config)
    if not expected:
        return False
    scheme, _, presented = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Constant time: the comparison must not tell how much of a guess was right.
    # aiohttp keeps header bytes that are not UTF-8 as surrogates: encode them
    # back as they came, so that any header compares (and fails) quietly.
    return hmac.compare_digest(
        presented.strip().encode("utf-8", "surrogateescape"), expected.encode()
    )


class InvalidToken(Exception):
    """A token file that does not hold one valid token (yet)."""


_token_files: dict[str, Reread[str]] = {}


def current_token(config: Config) -> str | None:
    """The token in force: `token_file` as it is on disk now, else the one read at load."""
    path = config.server.token_file
    if path is None:
        return config.detail_token
    tokens = _token_files.get(path)
    if tokens is None:
        tokens = _token_files[path] = Reread(
            [path], lambda: read_token(path), what=f"token_file {path}", errors=(InvalidToken,)
        )
    try:
        return tokens.get()
    except InvalidToken:
        # Unusable before it was ever read here: the token the config was loaded with.
        return config.detail_token


def read_token(path: str) -> str:
    """The token held in `path`; InvalidToken with the reason (never the content)."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise InvalidToken(f"cannot read {path}: {exc.strerror or exc}") from None
    token = data.decode("utf-8", "replace").strip()
    if (
        len(data) > MAX_TOKEN_BYTES
        or len(token) < MIN_TOKEN_LENGTH
        or any(c.isspace() or not c.isprintable() for c in token)
    ):
        raise InvalidToken(
            f"{path} does not hold one word of at least {MIN_TOKEN_LENGTH} printable characters"
        )
    return token
