"""Starting and stopping kgw as an operator does: bad options, signals, no leftovers."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from websockets.exceptions import ConnectionClosed

from tests.integration.harness import TWISTD, Gateway, LoggedProcess


def run_twistd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("KG_", "KGW_"))}
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
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"kernelgateway: cannot listen on 'tcp:{busy_port}:interface=127.0.0.1'")
    assert "[stderr#error]" not in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_unknown_flag_is_one_line_and_a_hint() -> None:
    result = run_twistd("--bogus")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "kernelgateway: option --bogus not recognized; see twistd kernelgateway --help\n"
    )


def test_version_is_kgw_version() -> None:
    import kgw

    result = run_twistd("--version")
    assert result.returncode == 0
    assert result.stdout.startswith(f"kgw {kgw.__version__} ")


def test_unknown_pool_kernelspec_stops_startup_before_listening() -> None:
    for args, env, named in [
        (("--pool", "cobol=1"), {}, "--pool"),
        ((), {"KGW_POOL": "cobol=1"}, "KGW_POOL"),
    ]:
        result = run_twistd("--port", "0", *args, env=env)
        assert result.returncode == 1
        assert result.stderr.startswith(f"kernelgateway: {named}: no kernelspec named 'cobol'")
        assert result.stderr.count("\n") == 1
        assert "listening" not in result.stdout
        assert "Traceback" not in result.stdout


def test_pool_kernel_that_cannot_start_stops_startup_in_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "kernels" / "broken"
    spec.mkdir(parents=True)
    argv = ["/nonexistent/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Broken", "language": "python"})
    )
    result = run_twistd("--port", "0", "--pool", "broken=1", env={"JUPYTER_PATH": str(tmp_path)})
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("kernelgateway: --pool broken: Kernel broken failed to start")
    assert "listening" not in result.stdout
    assert "retrying" not in result.stdout
    assert "Traceback" not in result.stdout


def test_readme_first_command_starts_twice_in_the_same_folder(tmp_path: Path) -> None:
    """``twistd -n kernelgateway`` without --pidfile= leaves no twistd.pid behind."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("KG_", "KGW_"))}
    for _ in range(2):
        gw = LoggedProcess()
        gw.spawn(
            [*TWISTD, "-n", "kernelgateway", "--port", "0"],
            {**environ, "PYTHONUNBUFFERED": "1"},
            cwd=tmp_path,
        )
        try:
            gw.wait_for_line(re.compile(r"kernelgateway listening on "), 60)
            assert not (tmp_path / "twistd.pid").exists()
        finally:
            assert gw.terminate() in (0, -signal.SIGTERM)
    assert list(tmp_path.iterdir()) == []


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
    assert "KG_DEFAULT_KERNEL_NAME: no kernelspec named 'cobol'" in output
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


def test_env_pool_of_a_non_python_kernelspec_stops_startup_in_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "kernels" / "rlang"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps({"argv": ["R", "{connection_file}"], "display_name": "R", "language": "R"})
    )
    result = run_twistd(
        "--port", "0", env={"JUPYTER_PATH": str(tmp_path), "KGW_ENV_POOL": "rlang=1"}
    )
    assert result.returncode == 1
    assert result.stderr == (
        "kernelgateway: KGW_ENV_POOL: 'rlang' is a R kernelspec; kgw can set a request's "
        "variables only in Python kernels\n"
    )
