"""What can go wrong between a client and a gateway, as exceptions a caller can catch."""

from __future__ import annotations

import json


class GatewayError(Exception):
    """Base class of every error ``kgw.client`` raises about the gateway or its kernels."""


class GatewayHTTPError(GatewayError):
    """The gateway answered an HTTP request (or a websocket handshake) with an error status.

    ``reason`` and ``message`` are the ones in the gateway's JSON error body when it sent one
    (``{"reason": ..., "message": ...}``), else the HTTP reason phrase and the body's text.
    """

    def __init__(self, method: str, url: str, status: int, reason: str, message: str) -> None:
        super().__init__(f"{method} {url}: HTTP {status} {reason}: {message}".rstrip(": "))
        self.method = method
        self.url = url
        self.status = status
        self.reason = reason
        self.message = message

    @classmethod
    def from_response(
        cls, method: str, url: str, status: int, phrase: str, body: bytes
    ) -> GatewayHTTPError:
        """Read ``reason`` and ``message`` from a JSON error body, or fall back to the text."""
        reason, message = phrase, body.decode("utf-8", "replace").strip()[:500]
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict):
            reason = str(data.get("reason") or phrase)
            message = str(data.get("message") or "")
        return cls(method, url, status, reason, message)


class KernelDied(GatewayError):
    """The kernel is gone: the gateway does not know it (404) or reports it dead."""

    def __init__(self, kernel_id: str | None, detail: str) -> None:
        super().__init__(f"kernel {kernel_id} is gone: {detail}")
        self.kernel_id = kernel_id
        self.detail = detail


class ConnectionLost(GatewayError):
    """The channels websocket dropped and could not be opened again within the retry budget."""


class ChannelsStopped(GatewayError):
    """The client's channels were stopped (``stop_channels``); start them again to go on."""
