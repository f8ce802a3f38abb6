"""The sessions API as jupyter_server serves it (and @jupyterlab/services uses it)."""

from __future__ import annotations

import pytest

from tests.integration.harness import Gateway, stream_text
from tests.integration.test_rest import assert_error


def session_body(path: str, **kernel: str) -> dict[str, object]:
    return {"path": path, "name": path.rsplit("/", 1)[-1], "type": "notebook", "kernel": kernel}


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


def test_session_listing_follows_list_kernels() -> None:
    with Gateway() as gw:
        assert_error(gw.request("GET", "api/sessions"), 403)
