"""The Klein application: routes under the base URL, auth, CORS and JSON error rendering."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from werkzeug.exceptions import MethodNotAllowed as WerkzeugMethodNotAllowed
from werkzeug.exceptions import NotFound as WerkzeugNotFound

from kgw.config import GatewayConfig
from kgw.errors import GatewayError, MethodNotAllowed, NotFound, Unauthorized, error_body
from kgw.web import auth

log = Logger()

Handler = Callable[..., Awaitable[Any]]


def json_body(request: IRequest, status: int, body: Any) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(body).encode("utf-8")


def render_error(request: IRequest, error: GatewayError) -> bytes:
    """The one place a domain error becomes an HTTP response."""
    request.setResponseCode(error.status)
    request.setHeader(b"Content-Type", b"application/json")
    return error_body(error.reason, error.message)


class GatewayApp:
    """Routes every request under the base URL to a thin handler; errors become JSON."""

    def __init__(self, config: GatewayConfig) -> None:
        self.app = Klein()
        self.config = config
        self.base_url = config.base_url
        self._cors = {k.encode(): v.encode() for k, v in config.cors.headers().items()}

        @self.app.handle_errors(WerkzeugNotFound)
        def not_found(request: IRequest, failure: Any) -> bytes:
            self._add_cors(request)
            return render_error(request, NotFound(f"No such resource: {request.path.decode()}"))

        @self.app.handle_errors(WerkzeugMethodNotAllowed)
        def not_allowed(request: IRequest, failure: Any) -> bytes:
            self._add_cors(request)
            # Every path answers OPTIONS (the CORS preflight), so a path that answers nothing
            # else does not exist.
            allowed = set(failure.value.valid_methods or ()) - {"OPTIONS"}
            if not allowed:
                return render_error(request, NotFound(f"No such resource: {request.path.decode()}"))
            request.setHeader(b"Allow", ", ".join(sorted(allowed | {"OPTIONS"})).encode())
            return render_error(
                request, MethodNotAllowed(f"{request.method.decode()} is not allowed here")
            )

        @self.app.route(self.base_url, branch=True, methods=["OPTIONS"])
        def preflight(request: IRequest) -> bytes:
            # A CORS preflight carries no credentials, so it is answered without a token.
            self._add_cors(request)
            request.setResponseCode(200)
            return b""

    def route(
        self, path: str, methods: list[str], handler: Handler, auth_required: bool = True
    ) -> None:
        """Serve ``handler`` at base_url + path; it returns a JSON-able value, bytes or a
        resource, or raises a GatewayError."""

        def endpoint(request: IRequest, **kwargs: Any) -> Deferred[Any]:
            return Deferred.fromCoroutine(self._call(handler, request, auth_required, kwargs))

        endpoint.__name__ = f"{handler.__name__}_{'_'.join(methods)}"
        self.app.route(self.base_url + path, methods=methods)(endpoint)

    async def _call(
        self, handler: Handler, request: IRequest, auth_required: bool, kwargs: dict[str, Any]
    ) -> Any:
        self._add_cors(request)
        try:
            if auth_required:
                self.check_token(request)
            return await handler(request, **kwargs)
        except GatewayError as e:
            return render_error(request, e)
        except Exception:
            log.failure(
                "{method} {path} failed",
                method=request.method.decode(),
                path=auth.redact_token(request.uri.decode("utf-8", "replace")),
            )
            return render_error(request, GatewayError("The gateway failed; see its log"))

    def check_token(self, request: IRequest) -> None:
        header = request.getHeader(b"Authorization")
        query = request.args.get(b"token")
        presented = auth.presented_token(
            header.decode("utf-8", "replace") if header else None,
            query[0].decode("utf-8", "replace") if query else None,
        )
        if not auth.token_matches(self.config.auth_token, presented):
            raise Unauthorized("A valid token is required (Authorization: token <token>)")

    def _add_cors(self, request: IRequest) -> None:
        for name, value in self._cors.items():
            request.setHeader(name, value)

    def resource(self) -> IResource:
        resource: IResource = self.app.resource()
        return resource
