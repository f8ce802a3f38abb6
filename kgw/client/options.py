"""Where the gateway is and how to reach it, as traitlets options of the kernel managers.

Configurable like the rest of Jupyter (``GatewayKernelManager.url``, ``--GatewayOptions.url``
for both managers), with defaults from jupyter_server's ``JUPYTER_GATEWAY_*`` variables. The
REST and websocket sides get them as one frozen :class:`GatewaySettings`.
"""

from __future__ import annotations

import os
from typing import Any

from traitlets import Bool, Float, Int, TraitError, Unicode, default, observe, validate
from traitlets import Dict as DictTrait
from traitlets.config import LoggingConfigurable

from kgw.channels.wire import V1_SUBPROTOCOL
from kgw.client.errors import GatewayError
from kgw.client.settings import GatewaySettings, RetryPolicy

_SETTINGS_TRAITS = [
    "url",
    "ws_url",
    "auth_token",
    "headers",
    "ca_certs",
    "client_cert",
    "client_key",
    "validate_cert",
    "connect_timeout",
    "request_timeout",
    "offer_v1",
    "reconnect_attempts",
    "reconnect_interval",
    "reconnect_interval_max",
]


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


class GatewayOptions(LoggingConfigurable):
    """The gateway connection options shared by both kernel managers."""

    url = Unicode(
        None,
        allow_none=True,
        config=True,
        help="The gateway's base URL, http:// or https:// (JUPYTER_GATEWAY_URL).",
    )
    ws_url = Unicode(
        None,
        allow_none=True,
        config=True,
        help="The gateway's websocket base URL; default: url with ws:// or wss:// "
        "(JUPYTER_GATEWAY_WS_URL).",
    )
    auth_token = Unicode(
        None,
        allow_none=True,
        config=True,
        help="The gateway's token, sent as 'Authorization: token <t>' "
        "(JUPYTER_GATEWAY_AUTH_TOKEN).",
    )
    headers = DictTrait(
        value_trait=Unicode(), config=True, help="More HTTP headers for every request."
    )
    ca_certs = Unicode(
        None,
        allow_none=True,
        config=True,
        help="CA bundle to verify the gateway's certificate (JUPYTER_GATEWAY_CA_CERTS).",
    )
    client_cert = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Client certificate for mutual TLS (JUPYTER_GATEWAY_CLIENT_CERT).",
    )
    client_key = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Key of the client certificate (JUPYTER_GATEWAY_CLIENT_KEY).",
    )
    validate_cert = Bool(
        True,
        config=True,
        help="Verify the gateway's TLS certificate (JUPYTER_GATEWAY_VALIDATE_CERT=no: off).",
    )
    connect_timeout = Float(
        40.0,
        config=True,
        help="Seconds to open a connection or websocket (JUPYTER_GATEWAY_CONNECT_TIMEOUT).",
    )
    request_timeout = Float(
        120.0,
        config=True,
        help="Seconds to wait for an HTTP answer; a kernel start can take a while "
        "(JUPYTER_GATEWAY_REQUEST_TIMEOUT).",
    )
    offer_v1 = Bool(
        True,
        config=True,
        help="Offer the v1.kernel.websocket.jupyter.org subprotocol (off: JSON frames only).",
    )
    reconnect_attempts = Int(
        5, config=True, help="Attempts to reopen a dropped channels websocket before giving up."
    )
    reconnect_interval = Float(
        0.5, config=True, help="Seconds before the second attempt; doubles with each one."
    )
    reconnect_interval_max = Float(
        5.0, config=True, help="Longest wait between two reconnection attempts, seconds."
    )

    @default("url")
    def _url_default(self) -> str | None:
        return _env("JUPYTER_GATEWAY_URL")

    @default("ws_url")
    def _ws_url_default(self) -> str | None:
        return _env("JUPYTER_GATEWAY_WS_URL")

    @default("auth_token")
    def _auth_token_default(self) -> str | None:
        return _env("JUPYTER_GATEWAY_AUTH_TOKEN")

    @default("ca_certs")
    def _ca_certs_default(self) -> str | None:
        return _env("JUPYTER_GATEWAY_CA_CERTS")

    @default("client_cert")
    def _client_cert_default(self) -> str | None:
        return _env("JUPYTER_GATEWAY_CLIENT_CERT")

    @default("client_key")
    def _client_key_default(self) -> str | None:
        return _env("JUPYTER_GATEWAY_CLIENT_KEY")

    @default("validate_cert")
    def _validate_cert_default(self) -> bool:
        return (_env("JUPYTER_GATEWAY_VALIDATE_CERT") or "yes").lower() not in ("no", "false")

    @default("connect_timeout")
    def _connect_timeout_default(self) -> float:
        return float(_env("JUPYTER_GATEWAY_CONNECT_TIMEOUT") or 40.0)

    @default("request_timeout")
    def _request_timeout_default(self) -> float:
        return float(_env("JUPYTER_GATEWAY_REQUEST_TIMEOUT") or 120.0)

    @validate("url")
    def _check_url(self, proposal: dict[str, Any]) -> str | None:
        value: str | None = proposal["value"]
        if value and not value.lower().startswith(("http://", "https://")):
            raise TraitError(f"the gateway url must start with http:// or https://: {value!r}")
        return value

    @observe(*_SETTINGS_TRAITS)
    def _settings_changed(self, change: dict[str, Any]) -> None:
        self._settings = None

    _settings: GatewaySettings | None = None

    def gateway_settings(self) -> GatewaySettings:
        """The traits as one value for the REST and websocket sides."""
        if self._settings is None:
            if not self.url:
                raise GatewayError(
                    "no gateway URL: set GatewayKernelManager.url or JUPYTER_GATEWAY_URL"
                )
            self._settings = GatewaySettings(
                url=self.url,
                ws_url=self.ws_url or "",
                auth_token=self.auth_token or "",
                headers=dict(self.headers),
                ca_certs=self.ca_certs,
                client_cert=self.client_cert,
                client_key=self.client_key,
                validate_cert=self.validate_cert,
                connect_timeout=self.connect_timeout,
                request_timeout=self.request_timeout,
                subprotocols=(V1_SUBPROTOCOL,) if self.offer_v1 else (),
                retry=RetryPolicy(
                    attempts=self.reconnect_attempts,
                    interval=self.reconnect_interval,
                    interval_max=self.reconnect_interval_max,
                ),
            )
        return self._settings
