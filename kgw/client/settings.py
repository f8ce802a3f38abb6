"""Where the gateway is and how to talk to it: one value for the REST and websocket sides."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import quote, urlencode, urlsplit

from kgw.channels.wire import V1_SUBPROTOCOL


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try reopening a dropped channels websocket before giving up.

    Attempt 1 is immediate, then the delay doubles from ``interval`` up to ``interval_max``.
    The count starts again once a connection has stayed open ``stable_after`` seconds.
    """

    attempts: int = 5
    interval: float = 0.5
    interval_max: float = 5.0
    stable_after: float = 10.0


@dataclass(frozen=True)
class GatewaySettings:
    """A gateway's URLs, credentials, TLS options and timeouts (seconds)."""

    url: str
    ws_url: str = ""
    auth_token: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    ca_certs: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    validate_cert: bool = True
    connect_timeout: float = 40.0
    request_timeout: float = 120.0
    subprotocols: tuple[str, ...] = (V1_SUBPROTOCOL,)
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        url = _with_slash(self.url)
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise ValueError(f"the gateway URL must be http:// or https://, not {self.url!r}")
        ws_url = _with_slash(self.ws_url) if self.ws_url else "ws" + url[len("http") :]
        if urlsplit(ws_url).scheme not in ("ws", "wss"):
            raise ValueError(f"the gateway websocket URL must be ws:// or wss://, not {ws_url!r}")
        object.__setattr__(self, "url", url)
        object.__setattr__(self, "ws_url", ws_url)

    def http_headers(self) -> dict[str, str]:
        """Headers for every request and websocket handshake: the token, then ``headers``."""
        headers = {"Authorization": f"token {self.auth_token}"} if self.auth_token else {}
        headers.update(self.headers)
        return headers

    def kernels_url(self, kernel_id: str = "", action: str = "") -> str:
        """``<url>api/kernels[/<id>[/<action>]]``."""
        path = "api/kernels"
        if kernel_id:
            path += "/" + quote(kernel_id, safe="")
        if action:
            path += "/" + action
        return self.url + path

    def channels_url(self, kernel_id: str, session_id: str) -> str:
        query = urlencode({"session_id": session_id})
        return f"{self.ws_url}api/kernels/{quote(kernel_id, safe='')}/channels?{query}"

    @cached_property
    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context for https:// and wss://: verification on unless switched off."""
        context = ssl.create_default_context(cafile=self.ca_certs)
        if self.client_cert:
            context.load_cert_chain(self.client_cert, self.client_key)
        if not self.validate_cert:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
