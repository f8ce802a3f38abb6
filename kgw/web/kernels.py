"""/api/kernels: kernel CRUD, interrupt, restart, and the channels websocket upgrade."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from autobahn.twisted.websocket import WebSocketServerFactory
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from kgw.channels.protocol import channels_resource
from kgw.errors import BadRequest, Forbidden
from kgw.kernels.registry import KernelRegistry
from kgw.web import auth
from kgw.web.app import GatewayApp, json_body


def parse_start_request(body: bytes) -> tuple[str | None, dict[str, str] | None]:
    """The kernel name and env of a POST /api/kernels body; BadRequest if malformed."""
    if not body.strip():
        return None, None
    try:
        model = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"Request body is not valid JSON: {e}") from None
    if not isinstance(model, dict):
        raise BadRequest("Request body must be a JSON object")
    name = model.get("name")
    if name is not None and not isinstance(name, str):
        raise BadRequest("'name' must be a string")
    env = model.get("env")
    if env is not None:
        if not isinstance(env, dict):
            raise BadRequest("'env' must be an object of strings")
        for key, value in env.items():
            if not isinstance(value, str):
                raise BadRequest(f"'env' value of {key!r} must be a string")
    return name or None, env


def install(app: GatewayApp, registry: KernelRegistry, ws_factory: WebSocketServerFactory) -> None:
    """Add the kernel routes to ``app``."""
    config = app.config

    async def list_kernels(request: IRequest) -> bytes:
        if not config.list_kernels:
            raise Forbidden("Listing kernels is disabled (set KG_LIST_KERNELS=True)")
        return json_body(request, 200, [k.model() for k in registry.list()])

    async def start_kernel(request: IRequest) -> bytes:
        name, env = parse_start_request(request.content.read())
        kernel = await registry.start(name, env)
        request.setHeader(b"Location", f"{app.base_url}api/kernels/{quote(kernel.id)}".encode())
        return json_body(request, 201, kernel.model())

    async def get_kernel(request: IRequest, kernel_id: str) -> bytes:
        return json_body(request, 200, registry.get(kernel_id).model())

    async def delete_kernel(request: IRequest, kernel_id: str) -> bytes:
        await registry.shutdown(kernel_id)
        request.setResponseCode(204)
        return b""

    async def interrupt_kernel(request: IRequest, kernel_id: str) -> bytes:
        await registry.interrupt(kernel_id)
        request.setResponseCode(204)
        return b""

    async def restart_kernel(request: IRequest, kernel_id: str) -> bytes:
        kernel = await registry.restart(kernel_id)
        return json_body(request, 200, kernel.model())

    async def channels(request: IRequest, kernel_id: str) -> Any:
        kernel = registry.get(kernel_id)
        upgrade = request.getHeader(b"Upgrade") or b""
        if upgrade.lower() != b"websocket":
            raise BadRequest("This endpoint is a websocket: send an Upgrade: websocket request")
        origin = request.getHeader(b"Origin")
        host = request.getHeader(b"Host")
        if not auth.origin_allowed(
            origin.decode("utf-8", "replace") if origin is not None else None,
            host.decode("utf-8", "replace") if host is not None else None,
            config.cors.allow_origin,
        ):
            raise Forbidden("Cross-origin websocket refused (see KG_ALLOW_ORIGIN)")
        resource: IResource = channels_resource(ws_factory, kernel.bridge, config.ws_stall_timeout)
        return resource

    app.route("api/kernels", ["GET"], list_kernels)
    app.route("api/kernels", ["POST"], start_kernel)
    app.route("api/kernels/<kernel_id>", ["GET"], get_kernel)
    app.route("api/kernels/<kernel_id>", ["DELETE"], delete_kernel)
    app.route("api/kernels/<kernel_id>/interrupt", ["POST"], interrupt_kernel)
    app.route("api/kernels/<kernel_id>/restart", ["POST"], restart_kernel)
    app.route("api/kernels/<kernel_id>/channels", ["GET"], channels)
