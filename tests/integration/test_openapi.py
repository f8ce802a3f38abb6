"""The shipped OpenAPI document: valid, complete, and true of real responses."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

import pytest
import requests
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate
from twisted.internet.testing import MemoryReactorClock
from txzmq import ZmqFactory

from kgw.config import GatewayConfig
from kgw.kernels.registry import KernelRegistry
from kgw.kernels.sessions import SessionManager
from kgw.web import api, kernels, sessions
from kgw.web.app import GatewayApp
from tests.integration.harness import Gateway

DOCUMENT: dict[str, Any] = json.loads((files("kgw") / "openapi.json").read_text())
TOKEN = "openapi-t0ken"


def test_the_document_is_valid_openapi_3() -> None:
    validate(DOCUMENT)  # raises with the first error


def served_routes() -> set[tuple[str, str]]:
    """(path template, method) of every route the gateway's app serves."""
    config = GatewayConfig()
    factory = ZmqFactory()
    try:
        registry = KernelRegistry(config, MemoryReactorClock(), factory, {})
        app = GatewayApp(config)
        api.install(app, registry)
        sessions.install(app, SessionManager(registry))
        kernels.install(app, registry, lambda: None)  # type: ignore[arg-type,return-value]
        routes = set()
        for rule in app.app.url_map.iter_rules():
            # werkzeug's /api/kernels/<kernel_id> is OpenAPI's /api/kernels/{kernel_id}
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule).rstrip("/") or "/"
            for method in rule.methods or ():
                if method != "HEAD":
                    routes.add((path, method.lower()))
        return routes
    finally:
        factory.shutdown()


def documented_routes() -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch", "options")
    }


def _template(path: str) -> str:
    # The document names kernelspec parameters {kernel_name}; the app's rules say {name}.
    return path.replace("{name}", "{kernel_name}")


def test_every_served_route_is_documented_and_every_documented_one_served() -> None:
    served = {(_template(path), method) for path, method in served_routes()}
    # The catch-all OPTIONS route (CORS preflight) answers every path under the base URL.
    served -= {("/", "options"), ("/{__rest__}", "options")}
    documented = {(path, method) for path, method in documented_routes() if method != "options"}
    assert served == documented
    for path, _ in documented:
        assert "options" in DOCUMENT["paths"][path], f"{path}: OPTIONS (preflight) missing"


# --- real responses against the document ------------------------------------------------------


def _resolve(node: Any) -> Any:
    """``node`` with every local $ref replaced by what it points to (none is recursive)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = DOCUMENT
            for key in node["$ref"].removeprefix("#/").split("/"):
                target = target[key.replace("~1", "/").replace("~0", "~")]
            return _resolve(target)
        return {key: _resolve(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(item) for item in node]
    return node


def check(response: requests.Response, template: str, method: str) -> None:
    """The status is documented for this operation, and a JSON body matches its schema."""
    operation = DOCUMENT["paths"][template][method]
    documented = operation["responses"]
    status = str(response.status_code)
    assert status in documented, f"{method.upper()} {template}: {status} is not documented"
    content = _resolve(documented[status]).get("content", {})
    if response.status_code in (101, 204):
        assert not response.content
        return
    kind = response.headers["Content-Type"].split(";")[0]
    if "*/*" in content:  # any type (kernelspec files)
        return
    assert kind in content, f"{method.upper()} {template} {status}: {kind} is not documented"
    if kind == "application/json":
        schema = content[kind]["schema"]
        OAS30Validator(schema).validate(response.json())


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with Gateway("--list-kernels", token=TOKEN) as gw:
        yield gw


def test_real_responses_match_the_document(gateway: Gateway) -> None:
    calls: list[tuple[str, str, str, dict[str, Any]]] = []

    def call(method: str, path: str, template: str, **kwargs: Any) -> requests.Response:
        response = gateway.request(method.upper(), path, **kwargs)
        check(response, template, method)
        calls.append((method, path, template, kwargs))
        return response

    for path in ("api", "api/status", "metrics", "api/kernelspecs", "api/swagger.json"):
        call("get", path, "/" + path)
    call("get", "api/kernelspecs/python3", "/api/kernelspecs/{kernel_name}")
    call("get", "api/kernelspecs/cobol", "/api/kernelspecs/{kernel_name}")
    call("get", "kernelspecs/python3/kernel.json", "/kernelspecs/{kernel_name}/{resource}")
    call("get", "api", "/api", headers={"Authorization": "token wrong"})
    call("post", "api/kernels", "/api/kernels", json={"name": "cobol"})
    call("post", "api/kernels", "/api/kernels", data="not json")

    kernel_id = call("post", "api/kernels", "/api/kernels", json={}).json()["id"]
    gateway.remember_kernels()
    one = "/api/kernels/{kernel_id}"
    call("get", "api/kernels", "/api/kernels")
    call("get", f"api/kernels/{kernel_id}", one)
    call("get", "api/kernels/00000000-0000-0000-0000-000000000000", one)
    call("post", f"api/kernels/{kernel_id}/interrupt", one + "/interrupt")
    call("post", f"api/kernels/{kernel_id}/restart", one + "/restart")

    body = {"path": "a.ipynb", "name": "a", "type": "notebook", "kernel": {"id": kernel_id}}
    session = call("post", "api/sessions", "/api/sessions", json=body).json()
    gateway.remember_kernels()
    one_session = "/api/sessions/{session_id}"
    call("get", "api/sessions", "/api/sessions")
    call("get", f"api/sessions/{session['id']}", one_session)
    call("patch", f"api/sessions/{session['id']}", one_session, json={"path": "b.ipynb"})
    call("delete", f"api/sessions/{session['id']}", one_session)
    call("get", f"api/sessions/{session['id']}", one_session)
    call("delete", f"api/kernels/{kernel_id}", one)
    call("delete", f"api/kernels/{kernel_id}", one)
    assert len(calls) >= 20
