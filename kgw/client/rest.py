"""The gateway's kernel REST API (``/api/kernels``), over the standard library's http.client.

Calls are blocking; the managers run them in a worker thread. Every request has a connect
timeout and a read timeout, so none waits forever. A 404 about a kernel raises
``KernelDied``; every other error status raises ``GatewayHTTPError`` with the gateway's
``reason`` and ``message``.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kgw.client.errors import GatewayError, GatewayHTTPError, KernelDied
from kgw.client.settings import GatewaySettings

Model = dict[str, Any]


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    body: bytes


Transport = Callable[[GatewaySettings, str, str, bytes | None], Response]


def http_transport(
    settings: GatewaySettings, method: str, url: str, body: bytes | None
) -> Response:
    """One request on a fresh connection: connect within ``connect_timeout``, then each read
    within ``request_timeout``."""
    parts = urlsplit(url)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.netloc, timeout=settings.connect_timeout, context=settings.ssl_context
        )
    else:
        connection = http.client.HTTPConnection(parts.netloc, timeout=settings.connect_timeout)
    headers = {"Accept": "application/json", **settings.http_headers()}
    if body is not None:
        headers["Content-Type"] = "application/json"
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        connection.connect()
        assert connection.sock is not None
        connection.sock.settimeout(settings.request_timeout)
        connection.request(method, target, body=body, headers=headers)
        response = connection.getresponse()
        return Response(response.status, response.reason, response.read())
    except (OSError, http.client.HTTPException) as e:
        raise GatewayError(f"{method} {url} failed: {e or type(e).__name__}") from e
    finally:
        connection.close()


class KernelsAPI:
    """``/api/kernels`` of one gateway."""

    def __init__(self, settings: GatewaySettings, transport: Transport = http_transport) -> None:
        self.settings = settings
        self._transport = transport

    def start(self, name: str | None, env: dict[str, str]) -> Model:
        """``POST /api/kernels``: start a kernel and return its model."""
        body: dict[str, Any] = {}
        if name:
            body["name"] = name
        if env:
            body["env"] = env
        return self._json("POST", self.settings.kernels_url(), body)

    def get(self, kernel_id: str) -> Model:
        return self._json("GET", self.settings.kernels_url(kernel_id), None, kernel_id)

    def delete(self, kernel_id: str) -> bool:
        """``DELETE /api/kernels/<id>``; False when the gateway no longer knew the kernel."""
        try:
            self._call("DELETE", self.settings.kernels_url(kernel_id), None, kernel_id)
        except KernelDied:
            return False
        return True

    def interrupt(self, kernel_id: str) -> None:
        self._call("POST", self.settings.kernels_url(kernel_id, "interrupt"), {}, kernel_id)

    def restart(self, kernel_id: str) -> Model:
        return self._json("POST", self.settings.kernels_url(kernel_id, "restart"), {}, kernel_id)

    def _json(self, method: str, url: str, body: Any, kernel_id: str | None = None) -> Model:
        data = self._call(method, url, body, kernel_id)
        try:
            model = json.loads(data)
        except ValueError:
            model = None
        if not isinstance(model, dict):
            raise GatewayError(f"{method} {url}: the gateway's answer is not a JSON object")
        return model

    def _call(self, method: str, url: str, body: Any, kernel_id: str | None) -> bytes:
        payload = None if body is None else json.dumps(body).encode("utf-8")
        response = self._transport(self.settings, method, url, payload)
        if response.status < 400:
            return response.body
        error = GatewayHTTPError.from_response(
            method, url, response.status, response.reason, response.body
        )
        if response.status == 404 and kernel_id is not None:
            raise KernelDied(kernel_id, error.message or "the gateway does not know it") from error
        raise error
