"""Domain errors: raised where the fact is known, rendered as JSON in one place (web/app.py)."""

from __future__ import annotations

import json


class GatewayError(Exception):
    """An error a client can be told about: an HTTP status, a short reason and a message."""

    status = 500
    reason = "Internal Server Error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def error_body(reason: str, message: str) -> bytes:
    """The JSON body of every error response: ``{"reason": ..., "message": ...}``."""
    return json.dumps({"reason": reason, "message": message}).encode("utf-8")


class BadRequest(GatewayError):
    status = 400
    reason = "Bad Request"


class Unauthorized(GatewayError):
    status = 401
    reason = "Unauthorized"


class Forbidden(GatewayError):
    status = 403
    reason = "Forbidden"


class NotFound(GatewayError):
    status = 404
    reason = "Not Found"


class MethodNotAllowed(GatewayError):
    status = 405
    reason = "Method Not Allowed"


class Conflict(GatewayError):
    status = 409
    reason = "Conflict"


class NoSuchKernel(NotFound):
    def __init__(self, kernel_id: str) -> None:
        super().__init__(f"Kernel does not exist: {kernel_id}")
        self.kernel_id = kernel_id


class NoSuchKernelSpec(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"Kernel spec does not exist: {name}")
        self.name = name


class KernelLimitReached(Forbidden):
    reason = "Resource Limit"

    def __init__(self, limit: int) -> None:
        super().__init__(f"Maximum number of kernels reached ({limit}); shut one down first")
        self.limit = limit


class KernelStartFailed(GatewayError):
    status = 500
    reason = "Kernel Start Failed"


class ConfigError(Exception):
    """A bad option value; the message is the one line an operator sees at startup."""
