"""systemd: Type=notify readiness, the shipped units, and socket activation."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import psutil
import pytest
import requests
from websockets.sync.client import connect

from tests.integration.harness import (
    KERNELGATEWAY,
    Gateway,
    KernelSocket,
    LoggedProcess,
    stream_text,
)


def test_ready_and_stopping_notifications(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(120)
        gw = Gateway("--prespawn-count", "1", env={"NOTIFY_SOCKET": path})
        try:
            assert sock.recv(256) == b"READY=1"
            # READY comes once the pool is warm: a kernel is ready to hand out.
            gw.wait_for_line(re.compile("pool: 1 kernels ready"), 30)
            assert gw.request("GET", "api").status_code == 200
        finally:
            gw.stop()
        assert sock.recv(256) == b"STOPPING=1"


UNITS = Path(__file__).parents[2] / "docs" / "systemd"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not here")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    # The unit runs twistd from the virtualenv the deployment guide makes in /opt/kgw;
    # systemd-analyze checks that the command exists, so point it at this machine's twistd.
    twistd = shutil.which("twistd")
    assert twistd, "twistd is not on PATH"
    service = (UNITS / "kgw.service").read_text().replace("/opt/kgw/bin/twistd", twistd)
    (tmp_path / "kgw.service").write_text(service)
    shutil.copy(UNITS / "kgw.socket", tmp_path / "kgw.socket")
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "./kgw.socket", "./kgw.service"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Warnings (an unknown key, a bad value) do not change the status: there must be none.
    assert result.stdout + result.stderr == ""


class Activated(LoggedProcess):
    name = "systemd-socket-activate"


@pytest.mark.skipif(
    not shutil.which("systemd-socket-activate"), reason="systemd-socket-activate is not here"
)
def test_socket_activation_serves_on_the_inherited_socket() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    activator = Activated()
    # systemd-socket-activate listens, and on the first connection execs kgw with the
    # listening socket as fd 3 and LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES set, as systemd does
    # for kgw.socket (whose FileDescriptorName is kgw).
    activator.spawn(
        [
            "systemd-socket-activate",
            "--listen",
            f"127.0.0.1:{port}",
            "--fdname=kgw",
            "-E",
            "PYTHONUNBUFFERED=1",
            *KERNELGATEWAY,
            "--listen",
            "systemd:domain=INET:name=kgw",
        ],
        {k: v for k, v in os.environ.items() if not k.startswith("KG_")},
    )
    kernels: list[psutil.Process] = []
    try:
        activator.wait_for_line(re.compile(f"Listening on 127.0.0.1:{port}"), 30)
        url = f"http://127.0.0.1:{port}/"
        # This first connection waits in the socket's backlog while kgw starts.
        assert requests.get(url + "api", timeout=120).status_code == 200
        activator.wait_for_line(re.compile(f"kernelgateway listening on {url}"), 30)
        kernel_id = requests.post(url + "api/kernels", json={}, timeout=120).json()["id"]
        kernels = psutil.Process(activator.proc.pid).children(recursive=True)
        ws_url = f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels"
        with KernelSocket(connect(ws_url, open_timeout=60), v1=False) as ws:
            reply, iopub = ws.execute("print('activated')")
        assert reply["content"]["status"] == "ok"
        assert stream_text(iopub) == "activated\n"
    finally:
        status = activator.terminate()
        for process in kernels:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
    # Twisted ends by re-raising SIGTERM, which systemd counts as a clean stop.
    assert status in (0, -signal.SIGTERM), activator.log
    assert "kernelgateway listening" in activator.log
    assert not [p for p in kernels if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
