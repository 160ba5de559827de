"""Who may see details: everyone (`server.details: public`), or only callers that
present the bearer token (`server.details: token`).

Anonymous callers always get the verdict, its status code and `{"status": …}`:
that is what kubelet and load balancers need. Outputs, observed values,
history, check names and the per-check endpoints need the token.
"""

from __future__ import annotations

import hmac

from multidict import CIMultiDictProxy

from adapter.config import Config

#: What an anonymous caller is told when it asks for what needs the token.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="health-adapter"'}


def may_see_details(config: Config, headers: CIMultiDictProxy[str]) -> bool:
    """True when details are public, or the request carries the configured token."""
    if config.server.details == "public":
        return True
    expected = config.detail_token
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
