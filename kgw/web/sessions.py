"""/api/sessions: jupyter_server's sessions API over the kernel registry."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from twisted.web.iweb import IRequest

from kgw.errors import BadRequest, Forbidden
from kgw.kernels.sessions import SessionManager
from kgw.web.app import GatewayApp, json_body


def _object(body: bytes) -> dict[str, Any]:
    try:
        model = json.loads(body) if body.strip() else {}
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"Request body is not valid JSON: {e}") from None
    if not isinstance(model, dict):
        raise BadRequest("Request body must be a JSON object")
    return model


def _text(model: dict[str, Any], key: str) -> str | None:
    value = model.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"'{key}' must be a string")
    return value


def _kernel_choice(model: dict[str, Any]) -> tuple[str | None, str | None]:
    kernel = model.get("kernel")
    if kernel is None:
        return None, None
    if not isinstance(kernel, dict):
        raise BadRequest("'kernel' must be an object with 'id' or 'name'")
    return _text(kernel, "id"), _text(kernel, "name")


def _path(model: dict[str, Any]) -> str | None:
    """``path``, or the notebook-4 shape ``notebook.path`` older clients send."""
    path = _text(model, "path")
    notebook = model.get("notebook")
    if path is None and isinstance(notebook, dict):
        path = _text(notebook, "path")
    return path


def install(app: GatewayApp, sessions: SessionManager) -> None:
    """Add the session routes to ``app``."""
    config = app.config

    async def list_sessions(request: IRequest) -> bytes:
        if not config.list_kernels:
            raise Forbidden("Listing sessions is disabled (set KG_LIST_KERNELS=True)")
        return json_body(request, 200, [sessions.model(s) for s in sessions.list()])

    async def create_session(request: IRequest) -> bytes:
        model = _object(request.content.read())
        path = _path(model)
        if not path:
            raise BadRequest("Missing field in JSON data: path")
        kernel_id, kernel_name = _kernel_choice(model)
        session = sessions.find_by_path(path)
        if session is None:
            session = await sessions.create(
                path,
                _text(model, "name") or "",
                _text(model, "type") or "notebook",
                kernel_id,
                kernel_name,
            )
        location = f"{app.base_url}api/sessions/{quote(session.id)}"
        request.setHeader(b"Location", location.encode())
        return json_body(request, 201, sessions.model(session))

    async def get_session(request: IRequest, session_id: str) -> bytes:
        return json_body(request, 200, sessions.model(sessions.get(session_id)))

    async def patch_session(request: IRequest, session_id: str) -> bytes:
        model = _object(request.content.read())
        kernel_id, kernel_name = _kernel_choice(model)
        session = await sessions.update(
            session_id,
            _path(model),
            _text(model, "name"),
            _text(model, "type"),
            kernel_id,
            kernel_name,
        )
        return json_body(request, 200, sessions.model(session))

    async def delete_session(request: IRequest, session_id: str) -> bytes:
        await sessions.delete(session_id)
        request.setResponseCode(204)
        return b""

    app.route("api/sessions", ["GET"], list_sessions)
    app.route("api/sessions", ["POST"], create_session)
    app.route("api/sessions/<session_id>", ["GET"], get_session)
    app.route("api/sessions/<session_id>", ["PATCH"], patch_session)
    app.route("api/sessions/<session_id>", ["DELETE"], delete_session)
