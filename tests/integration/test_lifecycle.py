"""Starting and stopping kgw as an operator does: bad options, signals, no leftovers."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator

import psutil
import pytest
from websockets.exceptions import ConnectionClosed

from tests.integration.harness import TWISTD, Gateway, LoggedProcess


def run_twistd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KG_")}
    return subprocess.run(
        [*TWISTD, "--nodaemon", "--pidfile=", "kernelgateway", *args],
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_documents_every_option_with_its_variable() -> None:
    from kgw.config import SETTINGS

    result = run_twistd("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for setting in SETTINGS:
        assert f"--{setting.name}" in text
        if setting.env:
            assert f"[env {setting.env}]" in text
    assert "--listen" in text


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ((), {"KG_PORT": "eighty"}, "KG_PORT: expected a whole number"),
        (("--port", "70000"), {}, "--port: must be between 0 and 65535"),
        ((), {"KG_LIST_KERNELS": "maybe"}, "KG_LIST_KERNELS: expected true or false"),
        ((), {"KG_MAX_KERNELS": "-1"}, "KG_MAX_KERNELS: must be at least 0"),
        (("--ip", "not-an-ip"), {}, "--ip: not an IP address"),
        (("--listen", "bogus:1"), {}, "--listen 'bogus:1'"),
        (("--ip", "0.0.0.0"), {}, "without --auth-token"),
        (("--listen", "tcp:8888"), {}, "every interface without --auth-token"),
    ],
)
def test_bad_options_stop_startup_with_one_line(
    args: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    result = run_twistd(*args, env=env)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert expected in output
    assert "Traceback" not in output


def test_public_interface_allowed_with_explicit_flag() -> None:
    with Gateway("--listen", "tcp:0:interface=0.0.0.0", "--allow-unauthenticated") as gw:
        assert gw.request("GET", "api").status_code == 200


@pytest.fixture
def busy_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def test_port_in_use_stops_startup_with_one_line(busy_port: int) -> None:
    result = run_twistd("--port", str(busy_port), "--port-retries", "0")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"cannot listen on 'tcp:{busy_port}:interface=127.0.0.1'" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_closes_websockets_and_leaves_no_kernel(sig: int) -> None:
    gw = Gateway()
    try:
        kernels = [gw.start_kernel() for _ in range(2)]
        pids = [p.pid for p in gw.kernel_processes()]
        assert len(pids) >= 2
        ks = gw.connect(kernels[0])
        ks.execute("pass")
        gw.proc.send_signal(sig)
        with pytest.raises(ConnectionClosed) as closed:
            for _ in ks.messages():
                pass
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        # Twisted ends by re-raising the signal, so systemd sees an ordinary stop.
        assert gw.proc.wait(60) in (0, -sig)
        assert "all kernels shut down" in gw.log
        _, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], 30)
        assert alive == []
        assert gw.leftover_kernels() == []
    finally:
        gw.stop()


def test_unknown_default_kernel_name_stops_startup() -> None:
    result = run_twistd("--port", "0", env={"KG_DEFAULT_KERNEL_NAME": "cobol"})
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "--default-kernel-name: no kernelspec named 'cobol'" in output
    assert "Traceback" not in output


def test_taken_port_moves_up_with_port_retries(busy_port: int) -> None:
    """jupyter_kernel_gateway's KG_PORT_RETRIES: the next free port is used."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KG_")}
    gw = LoggedProcess()
    gw.spawn(
        [
            *TWISTD,
            "--nodaemon",
            "--pidfile=",
            "--logfile=-",
            "kernelgateway",
            "--port",
            str(busy_port),
        ],
        {**environ, "KG_PORT_RETRIES": "3", "PYTHONUNBUFFERED": "1"},
    )
    try:
        ready = re.compile(r"kernelgateway listening on http://127.0.0.1:(\d+)/")
        port = int(gw.wait_for_line(ready, 60).group(1))
        assert busy_port < port <= busy_port + 3
    finally:
        gw.terminate()
