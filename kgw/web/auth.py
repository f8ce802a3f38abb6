"""Sans-I/O authorization decisions: the shared token and the websocket origin policy."""

from __future__ import annotations

import hmac
from urllib.parse import unquote_plus, urlsplit

_SCHEMES = ("token", "bearer")


def presented_token(authorization: str | None, query_token: str | None) -> str | None:
    """The token a request carries: ``Authorization: token <t>`` first, then ``?token=``."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() in _SCHEMES and value.strip():
            return value.strip()
    return query_token


def token_matches(expected: str, presented: str | None) -> bool:
    """True when no token is configured, or the presented one equals it (constant time)."""
    if not expected:
        return True
    if presented is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), presented.encode("utf-8"))


def origin_allowed(origin: str | None, host: str | None, allow_origin: str) -> bool:
    """jupyter_server's websocket origin rule, with KG_ALLOW_ORIGIN as the allowed origin.

    Non-browser clients send no Origin and are allowed; '*' allows every origin; otherwise
    the origin must be the configured one or the same host the request was sent to.
    """
    if origin is None or allow_origin == "*":
        return True
    if allow_origin and origin == allow_origin:
        return True
    origin_host = urlsplit(origin.lower()).netloc
    return bool(host) and origin_host == (host or "").lower()


def redact_token(uri: str) -> str:
    """A request URI with the value of any token query argument replaced by [secret]."""
    path, sep, query = uri.partition("?")
    if not sep:
        return uri
    fields = []
    for field in query.split("&"):
        name, eq, _ = field.partition("=")
        # Twisted decodes argument names, so ?tok%65n= is a token too.
        secret = eq and unquote_plus(name).lower() == "token"
        fields.append(f"{name}=[secret]" if secret else field)
    return f"{path}?{'&'.join(fields)}"
