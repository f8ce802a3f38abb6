"""A notebook server run far from its compute: jupyter_server with --gateway-url on kgw.

A real ``jupyter server`` keeps no kernels of its own: it lists kernelspecs, starts and
deletes kernels and relays every kernel websocket through kgw, as JupyterLab would use it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from websockets.sync.client import connect

from tests.integration.harness import (
    KERNEL_TIMEOUT,
    MESSAGE_TIMEOUT,
    START_TIMEOUT,
    Gateway,
    KernelSocket,
    LoggedProcess,
    stream_text,
)

pytestmark = pytest.mark.timeout(240)

SPEC_NAME = "kgw-python"
DISPLAY_NAME = "Python on kgw"
# kgw serves kernelspec files as they are; these bytes only need to come back unchanged.
LOGO = b"\x89PNG\r\n\x1a\nkgw-logo"
_RUNNING_AT = re.compile(r"(http://127\.0\.0\.1:\d+/)\?token=")
# jupyter_server logs its URL before it listens: the bind is the IO loop's first callback.
# The first line logged from inside the loop (at debug level) is an extension starting.
_LISTENING = re.compile(r"jupyter_server_terminals \| extension was successfully started")


class JupyterServer(LoggedProcess):
    """A ``jupyter server`` on 127.0.0.1 whose kernels live on a gateway, reading no user config."""

    name = "jupyter server"

    def __init__(
        self, gateway: Gateway, home: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        self.token = secrets.token_hex(16)
        dirs = {name: home / name for name in ("home", "root", "runtime", "config", "data")}
        for path in dirs.values():
            path.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_", "KERNEL_"))}
        env.update(
            # HOME too: jupyter also reads config from the user site (~/.local/etc/jupyter).
            HOME=str(dirs["home"]),
            JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
            JUPYTER_CONFIG_DIR=str(dirs["config"]),
            JUPYTER_DATA_DIR=str(dirs["data"]),
            # In the environment, as an operator would pass it: not in the process list.
            JUPYTER_GATEWAY_AUTH_TOKEN=gateway.token or "",
        )
        env.update(extra_env or {})
        command = [
            sys.executable,
            "-m",
            "jupyter_server",
            f"--gateway-url={gateway.url}",
            f"--GatewayClient.request_timeout={KERNEL_TIMEOUT}",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.open_browser=False",
            "--ip=127.0.0.1",
            # jupyter_server binds port 0, reads the port back and logs it in its URL.
            "--port=0",
            "--port-retries=0",
            f"--ServerApp.root_dir={dirs['root']}",
            # For the _LISTENING line: a debug line from an extension jupyter_server requires.
            "--ServerApp.log_level=DEBUG",
            "--ServerApp.jpserver_extensions=jupyter_server_terminals=True",
        ]
        if os.geteuid() == 0:  # jupyter_server refuses root, which CI containers often are
            command.append("--allow-root")
        self.spawn(command, env)
        try:
            self.url = self.wait_for_line(_RUNNING_AT, START_TIMEOUT).group(1)
            self.wait_for_line(_LISTENING, START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        self.ws_url = "ws" + self.url[len("http") :]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", KERNEL_TIMEOUT)
        return requests.request(method, self.url + path, headers=self.headers(), **kwargs)

    def connect(self, kernel_id: str) -> KernelSocket:
        """The kernel's channels on jupyter_server, in the JSON format a gateway relays."""
        session = uuid.uuid4().hex
        ws = connect(
            f"{self.ws_url}api/kernels/{kernel_id}/channels?session_id={session}",
            additional_headers=self.headers(),
            open_timeout=MESSAGE_TIMEOUT,
            max_size=None,
        )
        socket = KernelSocket(ws, v1=False)
        socket.session = session
        return socket

    def stop(self, timeout: float = 60.0) -> None:
        self.terminate(timeout=timeout)


def write_spec(tmp_path: Path) -> Path:
    """A Jupyter data directory with a kernelspec (and logo) only kgw has."""
    share = tmp_path / "kgw-share"
    spec_dir = share / "kernels" / SPEC_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": DISPLAY_NAME,
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    (spec_dir / "logo-64x64.png").write_bytes(LOGO)
    return share


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    """kgw with a token, kernel listing on, and a kernelspec only it has."""
    share = write_spec(tmp_path)
    token = secrets.token_hex(16)
    with Gateway("--list-kernels", token=token, env={"JUPYTER_PATH": str(share)}) as gw:
        yield gw
    assert gw.leftover_kernels() == []


@pytest.fixture
def notebook_server(gateway: Gateway, tmp_path: Path) -> Iterator[JupyterServer]:
    home = tmp_path / "jupyter-server"
    home.mkdir()
    server = JupyterServer(gateway, home)
    try:
        yield server
    finally:
        server.stop()


def test_notebook_server_runs_its_kernels_on_kgw(
    gateway: Gateway, notebook_server: JupyterServer
) -> None:
    # The kernelspecs are kgw's, logo included, with resource URLs on jupyter_server.
    specs = notebook_server.request("GET", "api/kernelspecs")
    assert specs.status_code == 200, notebook_server.log
    listed = specs.json()["kernelspecs"]
    own = gateway.request("GET", "api/kernelspecs").json()["kernelspecs"]
    assert listed.keys() == own.keys()
    assert listed[SPEC_NAME]["spec"]["display_name"] == DISPLAY_NAME
    logo_url = listed[SPEC_NAME]["resources"]["logo-64x64"]
    assert logo_url == f"/kernelspecs/{SPEC_NAME}/logo-64x64.png"
    logo = notebook_server.request("GET", logo_url.lstrip("/"))
    assert logo.status_code == 200, notebook_server.log
    assert logo.content == LOGO

    started = notebook_server.request("POST", "api/kernels", json={"name": SPEC_NAME})
    assert started.status_code == 201, started.text + notebook_server.log
    kernel_id = started.json()["id"]
    gateway.remember_kernels()
    kernel_processes = gateway.kernel_processes()
    assert kernel_processes, gateway.log

    with notebook_server.connect(kernel_id) as ks:
        reply, iopub = ks.execute("print(6*7)")
        assert reply["msg_type"] == "execute_reply"
        assert reply["content"]["status"] == "ok"
        assert stream_text(iopub) == "42\n"
        on_gateway = {k["id"]: k for k in gateway.request("GET", "api/kernels").json()}
        assert on_gateway[kernel_id]["name"] == SPEC_NAME
        assert on_gateway[kernel_id]["connections"] == 1  # jupyter_server's relay
        # jupyter_server refreshes its models from kgw's list (strict last_activity format).
        on_server = notebook_server.request("GET", "api/kernels")
        assert on_server.status_code == 200, notebook_server.log
        assert [k["id"] for k in on_server.json()] == [kernel_id]

    deleted = notebook_server.request("DELETE", f"api/kernels/{kernel_id}")
    assert deleted.status_code == 204, deleted.text + notebook_server.log
    assert gateway.request("GET", "api/kernels").json() == []
    _gone, alive = psutil.wait_procs(kernel_processes, timeout=KERNEL_TIMEOUT)
    assert alive == [], gateway.log
    assert notebook_server.request("GET", "api/kernels").json() == []


ENV_PROBE = (
    "import os, json; print(json.dumps({k: os.environ.get(k) for k in "
    "('KERNEL_USERNAME', 'KERNEL_WORKING_DIR', 'KGW_TEST_SHARED', 'KGW_TEST_PRIVATE')}))"
)


def test_a_notebook_server_gets_a_warm_kernel_from_the_env_pool(tmp_path: Path) -> None:
    """jupyter_server's GatewayClient always sends env; --env-pool serves it a ready kernel
    that has the variables a kernel started for that request would have."""
    share = write_spec(tmp_path)
    env = {
        "JUPYTER_PATH": str(share),
        "KGW_TEST_SHARED": "shared",  # passed on: KG_ENV_PROCESS_WHITELIST
        "KGW_TEST_PRIVATE": "private",  # not passed to kernels started with an env
        "KG_ENV_PROCESS_WHITELIST": "KGW_TEST_SHARED",
    }
    args = ("--list-kernels", "--env-pool", f"{SPEC_NAME}=1")
    with Gateway(*args, token=secrets.token_hex(16), env=env) as gateway:
        gateway.wait_for_line(re.compile(r"env pool: 1 kernels ready"), START_TIMEOUT)
        home = tmp_path / "jupyter-server"
        home.mkdir()
        server = JupyterServer(gateway, home, extra_env={"KERNEL_USERNAME": "erin"})
        try:
            body = {"name": SPEC_NAME, "path": "notebook.ipynb"}
            started = server.request("POST", "api/kernels", json=body)
            assert started.status_code == 201, started.text + server.log
            kernel_id = started.json()["id"]
            gateway.remember_kernels()
            gateway.wait_for_line(
                re.compile(rf"kernel {kernel_id} \({SPEC_NAME}\) handed out from the env pool"),
                MESSAGE_TIMEOUT,
            )
            expected = {
                "KERNEL_USERNAME": "erin",
                "KGW_TEST_SHARED": "shared",
                "KGW_TEST_PRIVATE": None,
            }
            with server.connect(kernel_id) as ks:
                _, iopub = ks.execute(ENV_PROBE)
                seen = json.loads(stream_text(iopub))
                assert {k: seen[k] for k in expected} == expected
                # jupyter_server sends the notebook's directory (its root directory here).
                assert seen["KERNEL_WORKING_DIR"] == str(home / "root")
            # A restart starts the new process with the request's variables too.
            restarted = server.request("POST", f"api/kernels/{kernel_id}/restart")
            assert restarted.status_code == 200, restarted.text + server.log
            with server.connect(kernel_id) as ks:
                _, iopub = ks.execute(ENV_PROBE)
                seen = json.loads(stream_text(iopub))
                assert {k: seen[k] for k in expected} == expected
            deleted = server.request("DELETE", f"api/kernels/{kernel_id}")
            assert deleted.status_code == 204, server.log
        finally:
            server.stop()
    assert gateway.leftover_kernels() == []
