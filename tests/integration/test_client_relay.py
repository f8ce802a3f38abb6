"""Tools that only know kernelspecs run gateway kernels through the kernelspec relay.

A kgw with a token, and the relay's kernelspec installed into a temporary JUPYTER_PATH by
``python -m kgw.client.relay install``. Then ``jupyter execute`` runs a notebook on the gateway,
jupyter_client's own KernelManager drives a kernel (output, input, interrupt, shutdown), and
each other way the relay can end (SIGTERM, its kernel deleted, its launcher killed) leaves no
kernel on the gateway and no relay process behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
from jupyter_client import BlockingKernelClient, KernelManager
from jupyter_client.kernelspec import KernelSpecManager

from tests.integration.harness import KERNEL_TIMEOUT, Gateway, LoggedProcess
from tests.integration.test_client_imports import SERVER_ONLY

TOKEN = "relay-token"
SPEC = "gateway-python3"
RUN_TIMEOUT = 300
CELLS = [
    "import os\nprint(os.environ.get('KERNEL_GATEWAY'), os.getppid())",
    "from IPython.display import HTML, display\ndisplay(HTML('<b>bold</b>'))\n6 * 7",
    "1 / 0",
    "print('after the error')",
]
# A launcher (jupyter_client's KernelManager) whose relay comes back to a reaper when the
# test kills it: the reaper says how each of its descendants ended.
LAUNCHER = """
import ctypes, os, sys, threading
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
if os.fork() == 0:
    from jupyter_client import KernelManager
    km = KernelManager(kernel_name=sys.argv[1])
    km.start_kernel()
    pid = km.provisioner.process.pid
    print("relay", pid, km.connection_file, os.getpid(), flush=True)
    threading.Event().wait()
while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        break
    print("reaped", pid, os.waitstatus_to_exitcode(status), flush=True)
"""


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with Gateway("--list-kernels", token=TOKEN) as gw:
        yield gw
    assert gw.leftover_kernels() == []


@pytest.fixture(scope="module")
def data_dir(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jupyter data directory holding the relay's kernelspec, as the install command wrote it."""
    prefix = tmp_path_factory.mktemp("relay-prefix")
    command = [sys.executable, "-m", "kgw.client.relay", "install", "--name", SPEC]
    command += ["--gateway-url", gateway.url, "--kernel-name", "python3", "--prefix", str(prefix)]
    subprocess.run(command, check=True, timeout=RUN_TIMEOUT, capture_output=True)
    return prefix / "share" / "jupyter"


@pytest.fixture
def env(data_dir: Path, tmp_path: Path) -> dict[str, str]:
    """The environment of a tool that launches the relay: the token, but no gateway URL."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_")}
    environ.update(
        JUPYTER_PATH=str(data_dir),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_GATEWAY_AUTH_TOKEN=TOKEN,
    )
    return environ


def gateway_kernels(gateway: Gateway) -> list[dict[str, Any]]:
    kernels: list[dict[str, Any]] = gateway.request("GET", "api/kernels").json()
    return kernels


def stop(process: subprocess.Popen[Any] | psutil.Process) -> None:
    """End a relay the test may have left running: politely, so it deletes its kernel."""
    try:
        if isinstance(process, psutil.Process) or process.poll() is None:
            process.terminate()
        process.wait(KERNEL_TIMEOUT)
    except (psutil.NoSuchProcess, ProcessLookupError):
        pass
    except (psutil.TimeoutExpired, subprocess.TimeoutExpired):
        process.kill()
        process.wait(KERNEL_TIMEOUT)


@contextmanager
def relay_kernel(
    data_dir: Path, env: dict[str, str], **launch: Any
) -> Iterator[tuple[KernelManager, BlockingKernelClient, subprocess.Popen[Any]]]:
    """A kernel of the relay kernelspec from jupyter_client's KernelManager, ready to use."""
    km = KernelManager(
        kernel_name=SPEC,
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(data_dir / "kernels")]),
    )
    km.start_kernel(env=env, **launch)
    process = km.provisioner.process
    kc = km.client()
    try:
        kc.start_channels()
        kc.wait_for_ready(timeout=KERNEL_TIMEOUT)
        yield km, kc, process
    finally:
        kc.stop_channels()
        stop(process)
        if km.has_kernel:
            km.shutdown_kernel(now=True)  # the relay has ended: this only cleans up


def outputs(kc: BlockingKernelClient, code: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Run ``code``; return the content of its iopub messages other than status."""
    seen: list[dict[str, Any]] = []

    def keep(msg: dict[str, Any]) -> None:
        if msg["msg_type"] not in ("status", "execute_input"):
            seen.append({"msg_type": msg["msg_type"], **msg["content"]})

    reply = kc.execute_interactive(code, output_hook=keep, timeout=KERNEL_TIMEOUT, **kwargs)
    assert reply["content"]["status"] == "ok", reply["content"]
    return seen


def test_jupyter_execute_runs_a_notebook_on_the_gateway(
    gateway: Gateway, env: dict[str, str], tmp_path: Path
) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "analysis.ipynb")
    command = [str(Path(sys.executable).parent / "jupyter"), "execute", "--allow-errors"]
    command += [f"--kernel_name={SPEC}", "--output=executed", "analysis.ipynb"]
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    assert result.returncode == 0, result.stderr
    assert "[kgw relay]" not in result.stderr  # it ended on the shutdown_reply, quietly

    executed = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    where, display_cell, error, after = (cell.outputs for cell in executed.cells)
    # The code ran in a kernel that kgw started (its child, with KERNEL_GATEWAY=1).
    assert [o.text for o in where] == [f"1 {gateway.proc.pid}\n"]
    html, answer = display_cell
    assert (html.output_type, html.data["text/html"]) == ("display_data", "<b>bold</b>")
    assert (answer.output_type, answer.data["text/plain"]) == ("execute_result", "42")
    [raised] = error
    assert (raised.output_type, raised.ename) == ("error", "ZeroDivisionError")
    assert [o.text for o in after] == ["after the error\n"]
    assert executed.metadata.language_info.name == "python"
    assert gateway_kernels(gateway) == []


def test_kernel_manager_drives_a_gateway_kernel(
    gateway: Gateway, data_dir: Path, env: dict[str, str]
) -> None:
    with relay_kernel(data_dir, env) as (km, kc, process):
        relay = psutil.Process(process.pid)
        assert "kgw.client.relay" in relay.cmdline()
        assert not any("ipykernel" in part for part in relay.cmdline())
        [kernel] = gateway_kernels(gateway)
        [where] = outputs(kc, "import os\nprint(os.getpid(), os.getppid())")
        pid, parent = map(int, where["text"].split())
        assert parent == gateway.proc.pid
        assert pid in {p.pid for p in gateway.kernel_processes()}

        asked: list[str] = []

        def answer(msg: dict[str, Any]) -> None:
            asked.append(msg["content"]["prompt"])
            kc.input("Ada")

        code = "name = input('who? ')\nprint('hello', name)"
        said = outputs(kc, code, allow_stdin=True, stdin_hook=answer)
        assert (asked, [o["text"] for o in said]) == (["who? "], ["hello Ada\n"])

        # stop_on_error=False: ipykernel would otherwise abort requests that reach it right
        # after the interrupted one (its stop_on_error window), and the next check is one.
        msg_id = kc.execute("print('looping', flush=True)\nwhile True: pass", stop_on_error=False)
        while kc.get_iopub_msg(timeout=KERNEL_TIMEOUT)["msg_type"] != "stream":
            pass
        km.interrupt_kernel()  # interrupt_mode "message": an interrupt_request on control
        reply = kc.get_shell_msg(timeout=KERNEL_TIMEOUT)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert (reply["content"]["status"], reply["content"]["ename"]) == (
            "error",
            "KeyboardInterrupt",
        )
        assert outputs(kc, "6 * 7")[0]["data"]["text/plain"] == "42"

        # A restart is a shutdown_request(restart=True), then a new relay: a new gateway kernel.
        km.restart_kernel()
        kc.wait_for_ready(timeout=KERNEL_TIMEOUT)
        # The old relay ended by itself after relaying the shutdown_reply (not by SIGTERM).
        assert process.returncode == 0
        assert [k["id"] for k in gateway_kernels(gateway)] != [kernel["id"]]
        assert outputs(kc, "print('name' in dir())")[0]["text"] == "False\n"
        process = km.provisioner.process

        kc.stop_channels()
        km.shutdown_kernel()
        assert process.returncode == 0
        assert gateway_kernels(gateway) == []


def test_sigterm_deletes_the_gateway_kernel(
    gateway: Gateway, data_dir: Path, env: dict[str, str]
) -> None:
    with relay_kernel(data_dir, env) as (_, _, process):
        assert len(gateway_kernels(gateway)) == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(KERNEL_TIMEOUT) == 128 + signal.SIGTERM
        assert gateway_kernels(gateway) == []


@pytest.mark.parametrize("how", ["deleted", "died"])
def test_a_kernel_gone_from_the_gateway_ends_the_relay(
    gateway: Gateway, data_dir: Path, env: dict[str, str], how: str
) -> None:
    with relay_kernel(data_dir, env, stderr=subprocess.PIPE) as (km, kc, process):
        [kernel] = gateway_kernels(gateway)
        if how == "deleted":
            response = gateway.request("DELETE", f"api/kernels/{kernel['id']}")
            assert response.status_code == 204
            why = "channels websocket ended: .* is gone: .*"
        else:
            kc.execute("import os\nos._exit(1)")
            why = "died on the gateway .*"
        assert process.wait(KERNEL_TIMEOUT) == 1
        [line] = process.stderr.read().decode().splitlines()
        assert re.fullmatch(rf"\[kgw relay\] kernel {kernel['id']}:? {why}", line), line
        assert not km.is_alive()
        assert gateway_kernels(gateway) == []


@pytest.mark.skipif(sys.platform != "linux", reason="the launcher script uses prctl")
def test_a_relay_whose_launcher_dies_deletes_its_kernel(
    gateway: Gateway, env: dict[str, str]
) -> None:
    reaper = LoggedProcess()
    reaper.spawn([sys.executable, "-c", LAUNCHER, SPEC], env)
    try:
        started = reaper.wait_for_line(re.compile(r"^relay (\d+) (\S+) (\d+)$"), KERNEL_TIMEOUT)
        relay, connection_file, launcher = started.groups()
        kc = BlockingKernelClient(connection_file=connection_file)
        kc.load_connection_file()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=KERNEL_TIMEOUT)
        finally:
            kc.stop_channels()
        assert len(gateway_kernels(gateway)) == 1
        os.kill(int(launcher), signal.SIGKILL)
        ended = reaper.wait_for_line(re.compile(rf"^reaped {relay} (-?\d+)$"), KERNEL_TIMEOUT)
        assert ended.group(1) == "0"
        assert gateway_kernels(gateway) == []
    finally:
        end_family(reaper)


def end_family(reaper: LoggedProcess) -> None:
    """SIGTERM every process under the reaper (a relay then deletes its kernel), then it."""
    try:
        family = psutil.Process(reaper.proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    for process in family:
        with suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(family, KERNEL_TIMEOUT)  # the reaper reaps them
    for process in alive:
        with suppress(psutil.NoSuchProcess):
            process.kill()
    reaper.terminate()


def test_the_relay_imports_no_twisted() -> None:
    code = "import json, sys, kgw.client.relay; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    modules = json.loads(result.stdout)
    assert [m for m in modules if m.split(".")[0] in SERVER_ONLY] == []
