"""The kernel REST handlers over the real Klein resource, in memory: treq's StubTreq as the
client, a registry with fake kernel managers (see test_registry_lifecycle.py) behind it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import Deferred

from kgw.channels.protocol import make_factory
from kgw.config import GatewayConfig
from kgw.kernels.registry import KernelRegistry
from kgw.kernels.sessions import SessionManager
from kgw.web import api, kernels, sessions
from kgw.web.app import GatewayApp
from tests.unit.test_registry_lifecycle import Script, die, make_registry

TOKEN = "s3cret"
BASE = "http://kgw.test"


def client(registry: KernelRegistry, **settings: Any) -> StubTreq:
    app = GatewayApp(GatewayConfig(**settings))
    api.install(app, registry)
    sessions.install(app, SessionManager(registry))
    kernels.install(app, registry, make_factory())
    return StubTreq(app.resource())


def call(treq: StubTreq, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    """One request; its status and decoded JSON body (None when empty)."""
    headers = {"Authorization": f"token {TOKEN}", **kwargs.pop("headers", {})}
    done: Deferred[Any] = treq.request(method, BASE + path, headers=headers, **kwargs)
    treq.flush()
    response = done.result
    body = treq.content(response)
    treq.flush()
    data = body.result
    return response.code, json.loads(data) if data else None


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def registry(script: Script) -> KernelRegistry:
    return make_registry(script, auth_token=TOKEN, list_kernels=True)


def test_start_get_list_and_delete(registry: KernelRegistry, script: Script) -> None:
    treq = client(registry, auth_token=TOKEN, list_kernels=True)
    status, model = call(treq, "POST", "/api/kernels", json={"name": "python3"})
    assert status == 201
    assert set(model) == {"id", "name", "last_activity", "execution_state", "connections"}
    kernel_id = model["id"]
    assert call(treq, "GET", f"/api/kernels/{kernel_id}")[1]["id"] == kernel_id
    assert [k["id"] for k in call(treq, "GET", "/api/kernels")[1]] == [kernel_id]
    assert call(treq, "DELETE", f"/api/kernels/{kernel_id}") == (204, None)
    status, error = call(treq, "GET", f"/api/kernels/{kernel_id}")
    assert (status, error["reason"]) == (404, "Not Found")


def test_bad_bodies_are_400_with_a_reason(registry: KernelRegistry) -> None:
    treq = client(registry, auth_token=TOKEN)
    for body in (b"not json", b"[1]", b'{"name": 7}', b'{"env": {"A": 1}}'):
        status, error = call(treq, "POST", "/api/kernels", data=body)
        assert (status, error["reason"]) == (400, "Bad Request"), body
        assert error["message"]


def test_interrupt_and_restart_answer_as_the_lifecycle_allows(
    registry: KernelRegistry, script: Script
) -> None:
    treq = client(registry, auth_token=TOKEN)
    kernel_id = call(treq, "POST", "/api/kernels", json={})[1]["id"]
    assert call(treq, "POST", f"/api/kernels/{kernel_id}/interrupt")[0] == 204
    auth = {"Authorization": f"token {TOKEN}"}
    restarted = treq.request("POST", f"{BASE}/api/kernels/{kernel_id}/restart", headers=auth)
    treq.flush()
    assert registry.get(kernel_id).lifecycle.state.value == "restarting"
    status, error = call(treq, "POST", f"/api/kernels/{kernel_id}/interrupt")
    assert (status, error["reason"]) == (409, "Conflict")
    status, error = call(treq, "POST", f"/api/kernels/{kernel_id}/restart")
    assert status == 409 and "restarting" in error["message"]
    script.restarts[0].callback(None)
    treq.flush()
    assert restarted.result.code == 200
    kernel = registry.get(kernel_id)
    die(kernel)
    assert call(treq, "POST", f"/api/kernels/{kernel_id}/interrupt")[0] == 409


def test_without_the_token_everything_is_401(registry: KernelRegistry) -> None:
    treq = client(registry, auth_token=TOKEN)
    status, error = call(treq, "GET", "/api/kernels", headers={"Authorization": "token wrong"})
    assert (status, error["reason"]) == (401, "Unauthorized")


def test_listing_is_403_unless_enabled(registry: KernelRegistry) -> None:
    treq = client(registry, auth_token=TOKEN)
    assert call(treq, "GET", "/api/kernels")[0] == 403


def test_sessions_over_rest(registry: KernelRegistry) -> None:
    treq = client(registry, auth_token=TOKEN, list_kernels=True)
    body = {"path": "a.ipynb", "type": "notebook", "name": "", "kernel": {"name": "python3"}}
    status, session = call(treq, "POST", "/api/sessions", json=body)
    assert status == 201, session
    assert session["kernel"]["name"] == "python3"
    assert [s["id"] for s in call(treq, "GET", "/api/sessions")[1]] == [session["id"]]
    assert call(treq, "DELETE", f"/api/sessions/{session['id']}")[0] == 204
    assert registry.list() == []
