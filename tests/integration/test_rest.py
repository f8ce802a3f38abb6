"""The REST API as jupyter_server's clients use it: paths, status codes, JSON shapes.

Tests taking ``server`` run on kgw and on jupyter_kernel_gateway from PyPI and hold only what
both do alike; tests taking ``gateway`` check what kgw does its own way (docs/compatibility.md).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from tests.integration.harness import Gateway, GatewayServer, stream_text

LAST_ACTIVITY = "%Y-%m-%dT%H:%M:%S.%fZ"
KERNEL_MODEL = {"id", "name", "last_activity", "execution_state", "connections"}
KERNELSPEC = {
    "argv",
    "env",
    "display_name",
    "language",
    "interrupt_mode",
    "metadata",
    "kernel_protocol_version",
}
# A message in a JSON text frame, as jupyter_server writes it.
JSON_FRAME = {
    "header",
    "parent_header",
    "metadata",
    "content",
    "buffers",
    "channel",
    "msg_id",
    "msg_type",
}
# Shaped like a kernel id, so jupyter_kernel_gateway routes it to its kernel handlers.
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def assert_error(response: object, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["Content-Type"] == "application/json"  # type: ignore[attr-defined]
    body: dict[str, str] = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"reason", "message"}
    assert "Traceback" not in body["message"]
    return body


def assert_kernel_model(model: dict[str, object]) -> None:
    """A kernel's model, as jupyter_server writes it: these keys, these types."""
    assert set(model) == KERNEL_MODEL
    assert isinstance(model["id"], str)
    assert isinstance(model["name"], str)
    assert isinstance(model["execution_state"], str)
    assert type(model["connections"]) is int
    datetime.strptime(str(model["last_activity"]), LAST_ACTIVITY)


def assert_json_error(response: object, status: int) -> dict[str, object]:
    """The error both gateways answer: JSON with ``reason`` and a string ``message``."""
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["Content-Type"] == "application/json"  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert {"reason", "message"} <= set(body)
    assert isinstance(body["message"], str)
    return body


def test_api_version(server: GatewayServer) -> None:
    response = server.request("GET", "api")
    assert response.status_code == 200
    assert isinstance(response.json()["version"], str)


def test_kernelspecs_and_resources(server: GatewayServer) -> None:
    specs = server.request("GET", "api/kernelspecs").json()
    assert specs["default"] == "python3"
    python3 = specs["kernelspecs"]["python3"]
    assert set(python3) == {"name", "spec", "resources"}
    assert set(python3["spec"]) == KERNELSPEC
    assert python3["spec"]["language"] == "python"
    assert python3 == server.request("GET", "api/kernelspecs/python3").json()

    logo_url = python3["resources"]["logo-64x64"]
    assert logo_url == "/kernelspecs/python3/logo-64x64.png"
    logo = server.request("GET", logo_url.lstrip("/"))
    assert logo.status_code == 200
    assert logo.headers["Content-Type"] == "image/png"
    assert logo.content.startswith(b"\x89PNG")

    assert_error(server.request("GET", "api/kernelspecs/nope"), 404)
    assert_error(server.request("GET", "kernelspecs/python3/no-such-file"), 404)


@pytest.mark.jkg_differs(
    "jupyter_kernel_gateway answers 403 (tornado's StaticFileHandler, message '%s is not in "
    "root static directory') for a kernelspec file path outside the kernelspec's directory"
)
def test_kernelspec_file_outside_its_directory_is_404(server: GatewayServer) -> None:
    assert_error(server.request("GET", "kernelspecs/python3/..%2F..%2Fkernel.json"), 404)


def test_kernel_lifecycle(server: GatewayServer) -> None:
    """Start, list, run code over JSON frames, interrupt, restart in place, delete."""
    others = {p.pid for p in server.kernel_processes()}
    response = server.request("POST", "api/kernels", json={"name": "python3"})
    assert response.status_code == 201
    model = response.json()
    assert_kernel_model(model)
    assert model["name"] == "python3"
    assert model["connections"] == 0
    assert response.headers["Location"] == f"/api/kernels/{model['id']}"
    kernel_id = model["id"]
    server.remember_kernels()

    got = server.request("GET", f"api/kernels/{kernel_id}").json()
    assert_kernel_model(got)
    assert got["id"] == kernel_id
    [listed] = [k for k in server.request("GET", "api/kernels").json() if k["id"] == kernel_id]
    assert_kernel_model(listed)

    with server.connect(kernel_id) as ks:
        reply, iopub = ks.execute("import os; survivor = 1; print(os.environ['KERNEL_GATEWAY'])")
        assert set(reply) == JSON_FRAME
        assert (reply["channel"], reply["msg_type"]) == ("shell", "execute_reply")
        assert reply["content"]["status"] == "ok"
        assert stream_text(iopub) == "1\n"
        assert server.request("GET", f"api/kernels/{kernel_id}").json()["connections"] == 1
        interrupted = server.request("POST", f"api/kernels/{kernel_id}/interrupt", json={})
        assert interrupted.status_code == 204
        restarted = server.request("POST", f"api/kernels/{kernel_id}/restart", json={})
        assert restarted.status_code == 200
        assert_kernel_model(restarted.json())
        assert restarted.json()["id"] == kernel_id
        # The websocket stays open across the restart and talks to the new process.
        ks.wait_for_iopub()
        _, iopub = ks.execute("print('survivor' in dir())")
        assert stream_text(iopub) == "False\n"

    server.remember_kernels()
    kernel = [p for p in server.kernel_processes() if p.pid not in others]
    assert kernel, "no kernel process after the restart"
    deleted = server.request("DELETE", f"api/kernels/{kernel_id}")
    assert deleted.status_code == 204
    assert_error(server.request("GET", f"api/kernels/{kernel_id}"), 404)
    assert kernel_id not in [k["id"] for k in server.request("GET", "api/kernels").json()]
    _, alive = psutil.wait_procs(kernel, 30)
    assert not alive, "the kernel process outlived DELETE"


def test_output_right_after_restart(gateway: Gateway, kernel_id: str) -> None:
    """The first request after a restart has its output on the websocket open across it."""
    with gateway.connect(kernel_id) as ks:
        ks.execute("survivor = 1")
        restarted = gateway.request("POST", f"api/kernels/{kernel_id}/restart", json={})
        assert restarted.status_code == 200
        _, iopub = ks.execute("print('survivor' in dir())")
        assert stream_text(iopub) == "False\n"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"api/kernels/{UNKNOWN_ID}"),
        ("DELETE", f"api/kernels/{UNKNOWN_ID}"),
        ("POST", f"api/kernels/{UNKNOWN_ID}/interrupt"),
        ("GET", "api/nothing-here"),
    ],
)
def test_unknown_kernel_or_path_is_404(server: GatewayServer, method: str, path: str) -> None:
    assert_json_error(server.request(method, path), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "api/kernels/nope"),
        ("DELETE", "api/kernels/nope"),
        ("POST", "api/kernels/nope/interrupt"),
        ("POST", "api/kernels/nope/restart"),
        ("GET", "api/nothing-here"),
    ],
)
def test_unknown_things_are_404(gateway: Gateway, method: str, path: str) -> None:
    assert_error(gateway.request(method, path), 404)


def test_wrong_method_is_405(server: GatewayServer) -> None:
    assert_error(server.request("PUT", "api/kernels"), 405)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        b'{"name": 3}',
        b'{"env": "PATH=/"}',
        b'{"env": {"KERNEL_X": 1}}',
        b"\xff\xfe",
    ],
)
def test_bad_start_requests_are_400(gateway: Gateway, body: bytes) -> None:
    assert_error(gateway.request("POST", "api/kernels", data=body), 400)


def test_unknown_kernelspec_is_404(gateway: Gateway) -> None:
    body = assert_error(gateway.request("POST", "api/kernels", json={"name": "cobol"}), 404)
    assert "cobol" in body["message"]


def test_listing_is_forbidden_by_default(unlisted_server: GatewayServer) -> None:
    assert_error(unlisted_server.request("GET", "api/kernels"), 403)


def test_kernel_limit_is_403() -> None:
    with Gateway("--max-kernels", "1") as gw:
        gw.start_kernel()
        body = assert_error(gw.request("POST", "api/kernels", json={}), 403)
        assert "1" in body["message"]


def test_kernel_environment() -> None:
    env = {
        "KGW_TEST_SECRET": "gateway-only",
        "KGW_TEST_SHARED": "shared",
        "KG_ENV_PROCESS_WHITELIST": "KGW_TEST_SHARED",
        "KG_ENV_WHITELIST": "CLIENT_ALLOWED",
        "KG_AUTH_TOKEN": "s3cret-token",
    }
    with Gateway("--list-kernels", env=env) as gw:
        gw.token = "s3cret-token"
        probe = (
            "import os; print(sorted((k, v) for k, v in os.environ.items() "
            "if k.startswith(('KGW_TEST', 'KERNEL_', 'KG_', 'CLIENT_'))))"
        )
        client_env = {"KERNEL_USERNAME": "ada", "CLIENT_OTHER": "no", "CLIENT_ALLOWED": "yes"}
        with_env = gw.start_kernel(env=client_env)
        with gw.connect(with_env) as ks:
            _, iopub = ks.execute(probe)
        assert stream_text(iopub).strip() == str(
            [
                ("CLIENT_ALLOWED", "yes"),
                ("KERNEL_GATEWAY", "1"),
                ("KERNEL_USERNAME", "ada"),
                ("KGW_TEST_SHARED", "shared"),
            ]
        )
        inherited = gw.start_kernel()
        with gw.connect(inherited) as ks:
            _, iopub = ks.execute(probe)
        seen = stream_text(iopub)
        assert "('KGW_TEST_SECRET', 'gateway-only')" in seen
        assert "s3cret-token" not in seen


@pytest.fixture
def extra_kernelspec(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A second kernelspec, 'other', on a private JUPYTER_PATH."""
    spec_dir = tmp_path / "kernels" / "other"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Other Python",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    yield {"JUPYTER_PATH": str(tmp_path) + os.pathsep + os.environ.get("JUPYTER_PATH", "")}
    shutil.rmtree(spec_dir)


def test_default_kernel_name(extra_kernelspec: dict[str, str]) -> None:
    with Gateway(env={**extra_kernelspec, "KG_DEFAULT_KERNEL_NAME": "other"}) as gw:
        assert gw.request("GET", "api/kernelspecs").json()["default"] == "other"
        started = gw.request("POST", "api/kernels", json={}).json()
        gw.remember_kernels()
        assert started["name"] == "other"
        named = gw.request("POST", "api/kernels", json={"name": "python3"}).json()
        gw.remember_kernels()
        assert named["name"] == "python3"


def test_force_kernel_name(extra_kernelspec: dict[str, str]) -> None:
    with Gateway("--force-kernel-name", "other", env=extra_kernelspec) as gw:
        specs = gw.request("GET", "api/kernelspecs").json()
        assert specs["default"] == "other"
        assert list(specs["kernelspecs"]) == ["other"]
        started = gw.request("POST", "api/kernels", json={"name": "python3"}).json()
        gw.remember_kernels()
        assert started["name"] == "other"


def test_channels_without_upgrade_is_400(server: GatewayServer, server_kernel: str) -> None:
    assert server.request("GET", f"api/kernels/{server_kernel}/channels").status_code == 400


def test_channels_without_upgrade_error_is_json(gateway: Gateway, kernel_id: str) -> None:
    assert_error(gateway.request("GET", f"api/kernels/{kernel_id}/channels"), 400)


def test_wrong_method_names_the_allowed_ones(gateway: Gateway) -> None:
    response = gateway.request("PATCH", "api/kernels")
    assert_error(response, 405)
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS, POST"


def test_kernel_is_idle_once_started(gateway: Gateway) -> None:
    response = gateway.request("POST", "api/kernels", json={})
    gateway.remember_kernels()
    assert response.json()["execution_state"] == "idle"
    gateway.request("DELETE", f"api/kernels/{response.json()['id']}")


def test_openapi_document(gateway: Gateway) -> None:
    """The API description, public as in jupyter_kernel_gateway, under all three names."""
    documents = []
    for path in ("api/swagger.json", "api/swagger.yaml", "api/spec.yaml"):
        response = gateway.request("GET", path, headers={"Authorization": "token wrong"})
        assert response.status_code == 200
        documents.append(response.json())
    assert documents[0] == documents[1] == documents[2]
    assert documents[0]["openapi"].startswith("3.")
    assert "/api/kernels/{kernel_id}/restart" in documents[0]["paths"]
