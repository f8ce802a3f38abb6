"""The REST API as jupyter_server's clients use it: paths, status codes, JSON shapes."""

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

from tests.integration.harness import Gateway, stream_text

LAST_ACTIVITY = "%Y-%m-%dT%H:%M:%S.%fZ"


def assert_error(response: object, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["Content-Type"] == "application/json"  # type: ignore[attr-defined]
    body: dict[str, str] = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"reason", "message"}
    assert "Traceback" not in body["message"]
    return body


def test_api_version(gateway: Gateway) -> None:
    response = gateway.request("GET", "api")
    assert response.status_code == 200
    assert isinstance(response.json()["version"], str)


def test_kernelspecs_and_resources(gateway: Gateway) -> None:
    specs = gateway.request("GET", "api/kernelspecs").json()
    assert specs["default"] == "python3"
    python3 = specs["kernelspecs"]["python3"]
    assert python3["spec"]["language"] == "python"
    assert python3 == gateway.request("GET", "api/kernelspecs/python3").json()

    logo_url = python3["resources"]["logo-64x64"]
    assert logo_url == "/kernelspecs/python3/logo-64x64.png"
    logo = gateway.request("GET", logo_url.lstrip("/"))
    assert logo.status_code == 200
    assert logo.headers["Content-Type"] == "image/png"
    assert logo.content.startswith(b"\x89PNG")

    assert_error(gateway.request("GET", "api/kernelspecs/nope"), 404)
    assert_error(gateway.request("GET", "kernelspecs/python3/no-such-file"), 404)
    assert_error(gateway.request("GET", "kernelspecs/python3/..%2F..%2Fkernel.json"), 404)


def test_kernel_lifecycle(gateway: Gateway) -> None:
    response = gateway.request("POST", "api/kernels", json={"name": "python3"})
    assert response.status_code == 201
    model = response.json()
    assert set(model) == {"id", "name", "last_activity", "execution_state", "connections"}
    assert model["name"] == "python3"
    assert model["connections"] == 0
    datetime.strptime(model["last_activity"], LAST_ACTIVITY)
    assert response.headers["Location"] == f"/api/kernels/{model['id']}"
    kernel_id = model["id"]
    gateway.remember_kernels()
    pids = {p.pid for p in gateway.kernel_processes()}

    assert gateway.request("GET", f"api/kernels/{kernel_id}").json()["id"] == kernel_id
    listed = gateway.request("GET", "api/kernels").json()
    assert kernel_id in [k["id"] for k in listed]

    with gateway.connect(kernel_id) as ks:
        ks.execute("survivor = 1")
        interrupted = gateway.request("POST", f"api/kernels/{kernel_id}/interrupt", json={})
        assert interrupted.status_code == 204
        restarted = gateway.request("POST", f"api/kernels/{kernel_id}/restart", json={})
        assert restarted.status_code == 200
        assert restarted.json()["id"] == kernel_id
        # The websocket stays open across the restart and talks to the new process.
        _, iopub = ks.execute("print('survivor' in dir())")
        assert stream_text(iopub) == "False\n"

    gateway.remember_kernels()
    deleted = gateway.request("DELETE", f"api/kernels/{kernel_id}")
    assert deleted.status_code == 204
    assert_error(gateway.request("GET", f"api/kernels/{kernel_id}"), 404)
    gone = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], 30)
    assert not gone[1], "the kernel process outlived DELETE"


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


def test_wrong_method_is_405(gateway: Gateway) -> None:
    assert_error(gateway.request("PUT", "api/kernels"), 405)


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


def test_listing_is_forbidden_by_default() -> None:
    with Gateway() as gw:
        assert_error(gw.request("GET", "api/kernels"), 403)


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


def test_channels_without_upgrade_is_400(gateway: Gateway, kernel_id: str) -> None:
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
