"""The sessions API as jupyter_server serves it (and @jupyterlab/services uses it).

Tests taking ``server`` run on kgw and on jupyter_kernel_gateway from PyPI. Most of the API
runs on kgw alone: jupyter_kernel_gateway 3.0.1 answers GET and PATCH of one session with a
500 and ignores a kernel id (docs/compatibility.md).
"""

from __future__ import annotations

import psutil
import pytest

from tests.integration.harness import Gateway, GatewayServer, stream_text
from tests.integration.test_rest import (
    UNKNOWN_ID,
    assert_error,
    assert_json_error,
    assert_kernel_model,
)


def session_body(path: str, **kernel: str) -> dict[str, object]:
    return {"path": path, "name": path.rsplit("/", 1)[-1], "type": "notebook", "kernel": kernel}


def test_session_starts_and_stops_its_kernel(server: GatewayServer) -> None:
    """POST with a kernelspec name starts a kernel; DELETE shuts it down."""
    others = {p.pid for p in server.kernel_processes()}
    created = server.request(
        "POST", "api/sessions", json=session_body("work/a.ipynb", name="python3")
    )
    assert created.status_code == 201
    session = created.json()
    assert {"id", "notebook", "kernel"} <= set(session)
    assert session["notebook"]["path"] == "work/a.ipynb"
    assert_kernel_model(session["kernel"])
    assert session["kernel"]["name"] == "python3"
    assert created.headers["Location"] == f"/api/sessions/{session['id']}"
    kernel_id = session["kernel"]["id"]
    server.remember_kernels()
    kernel = [p for p in server.kernel_processes() if p.pid not in others]
    assert kernel, "no kernel process for the session"

    listed = server.request("GET", "api/sessions")
    assert listed.status_code == 200
    assert session["id"] in [s["id"] for s in listed.json()]
    assert server.request("GET", f"api/kernels/{kernel_id}").status_code == 200
    with server.connect(kernel_id) as ks:
        _, iopub = ks.execute("print('in session')")
        assert stream_text(iopub) == "in session\n"

    assert server.request("DELETE", f"api/sessions/{session['id']}").status_code == 204
    assert session["id"] not in [s["id"] for s in server.request("GET", "api/sessions").json()]
    assert_error(server.request("GET", f"api/kernels/{kernel_id}"), 404)
    _, alive = psutil.wait_procs(kernel, 30)
    assert not alive, "the session's kernel outlived DELETE"


def test_unknown_session_is_404(server: GatewayServer) -> None:
    assert_json_error(server.request("GET", f"api/sessions/{UNKNOWN_ID}"), 404)


def test_session_lifecycle(gateway: Gateway) -> None:
    created = gateway.request(
        "POST", "api/sessions", json=session_body("work/a.ipynb", name="python3")
    )
    assert created.status_code == 201
    session = created.json()
    assert set(session) >= {"id", "path", "name", "type", "kernel"}
    assert session["path"] == "work/a.ipynb"
    assert session["name"] == "a.ipynb"
    assert session["type"] == "notebook"
    assert session["notebook"] == {"path": "work/a.ipynb", "name": "a.ipynb"}
    assert created.headers["Location"] == f"/api/sessions/{session['id']}"
    kernel_id = session["kernel"]["id"]
    gateway.remember_kernels()

    with gateway.connect(kernel_id) as ks:
        _, iopub = ks.execute("print('in session')")
        assert stream_text(iopub) == "in session\n"

    # The same path gives the same session.
    again = gateway.request("POST", "api/sessions", json=session_body("work/a.ipynb"))
    assert again.json()["id"] == session["id"]
    assert [s["id"] for s in gateway.request("GET", "api/sessions").json()] == [session["id"]]

    renamed = gateway.request(
        "PATCH", f"api/sessions/{session['id']}", json={"path": "work/b.ipynb", "name": "b.ipynb"}
    )
    assert renamed.status_code == 200
    assert renamed.json()["path"] == "work/b.ipynb"
    assert renamed.json()["kernel"]["id"] == kernel_id

    # Switching to a new kernel by name shuts the old one down.
    switched = gateway.request(
        "PATCH", f"api/sessions/{session['id']}", json={"kernel": {"name": "python3"}}
    )
    new_kernel = switched.json()["kernel"]["id"]
    gateway.remember_kernels()
    assert new_kernel != kernel_id
    assert_error(gateway.request("GET", f"api/kernels/{kernel_id}"), 404)

    assert gateway.request("DELETE", f"api/sessions/{session['id']}").status_code == 204
    assert_error(gateway.request("GET", f"api/sessions/{session['id']}"), 404)
    assert_error(gateway.request("GET", f"api/kernels/{new_kernel}"), 404)


def test_session_on_an_existing_kernel(gateway: Gateway) -> None:
    kernel_id = gateway.start_kernel()
    created = gateway.request("POST", "api/sessions", json=session_body("c.ipynb", id=kernel_id))
    assert created.status_code == 201
    assert created.json()["kernel"]["id"] == kernel_id
    # A session whose kernel is shut down is gone too.
    gateway.request("DELETE", f"api/kernels/{kernel_id}")
    assert_error(gateway.request("GET", f"api/sessions/{created.json()['id']}"), 404)


@pytest.mark.parametrize(
    "body",
    [
        b"{bad json",
        b"[]",
        b'{"type": "notebook"}',
        b'{"path": 3}',
        b'{"path": "x.ipynb", "kernel": "python3"}',
        b'{"path": "x.ipynb", "kernel": {"name": 7}}',
    ],
)
def test_bad_session_requests_are_400(gateway: Gateway, body: bytes) -> None:
    assert_error(gateway.request("POST", "api/sessions", data=body), 400)


def test_unknown_session_and_kernel(gateway: Gateway) -> None:
    assert_error(gateway.request("GET", "api/sessions/nope"), 404)
    assert_error(gateway.request("PATCH", "api/sessions/nope", json={}), 404)
    assert_error(gateway.request("DELETE", "api/sessions/nope"), 404)
    body = session_body("d.ipynb", id="no-such-kernel")
    assert_error(gateway.request("POST", "api/sessions", json=body), 404)


def test_session_listing_follows_list_kernels(unlisted_server: GatewayServer) -> None:
    assert_error(unlisted_server.request("GET", "api/sessions"), 403)
