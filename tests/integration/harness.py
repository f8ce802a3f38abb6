"""Run a real kgw (``twistd kernelgateway``) on a free loopback port and talk to it.

:class:`JupyterKernelGateway` runs jupyter_kernel_gateway from PyPI the same way, behind the
same interface, so a test whose behaviour is meant to be identical runs against both.

Everything waits on events with generous timeouts: a kernel can take several seconds to
start on a loaded 2-core machine. Every process a gateway starts is gone when it stops.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import psutil
import requests
from ipykernel.kernelspec import write_kernel_spec
from websockets.sync.client import ClientConnection, connect

from benchmarks.environment import jkg_executable
from kgw.channels import wire

START_TIMEOUT = 60.0
KERNEL_TIMEOUT = 60.0
MESSAGE_TIMEOUT = 60.0
_READY = re.compile(r"kernelgateway listening on (https?://[^\s\"]+)")
# twistd in this interpreter, and the gateway run in the foreground, logging to stdout.
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
KERNELGATEWAY = [*TWISTD, "--nodaemon", "--pidfile=", "--logfile=-", "kernelgateway"]
_JKG_READY = re.compile(r"Jupyter Kernel Gateway \S+ is available at (https?://\S+?)/?$")


class LoggedProcess:
    """A subprocess whose output (stdout and stderr) is read line by line on a thread."""

    name = "process"

    def spawn(self, command: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        self.lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """Wait for a log line matching ``pattern`` (lines already seen count)."""
        deadline = time.monotonic() + timeout
        for line in list(self.lines):
            if match := pattern.search(line):
                return match
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                raise RuntimeError(f"{self.name} exited:\n" + self.log)
            if match := pattern.search(line):
                return match
        raise TimeoutError(f"no log line matching {pattern.pattern!r}:\n" + self.log)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send ``sig``, wait, kill if need be; return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._reader.join(timeout)
        return self.proc.returncode


class GatewayServer(LoggedProcess):
    """A gateway process on a loopback port: its REST and websocket API, and its kernels.

    kgw (:class:`Gateway`) and jupyter_kernel_gateway (:class:`JupyterKernelGateway`) share
    this interface, so one test body runs against either.
    """

    token: str | None = None

    def listen(self, command: list[str], env: dict[str, str], ready: re.Pattern[str]) -> None:
        """Spawn ``command``; wait for the log line ``ready`` whose group 1 is the URL served."""
        self._known_kernels: set[int] = set()
        self.spawn(command, env)
        try:
            url = self.wait_for_line(ready, START_TIMEOUT).group(1)
        except BaseException:
            self.stop()
            raise
        self.url = url if url.endswith("/") else url + "/"
        self.ws_url = "ws" + self.url[len("http") :]

    # --- HTTP ------------------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.headers(), **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", KERNEL_TIMEOUT)
        return requests.request(method, self.url + path, headers=headers, **kwargs)

    def start_kernel(self, **body: Any) -> str:
        response = self.request("POST", "api/kernels", json=body)
        assert response.status_code == 201, response.text
        self.remember_kernels()
        kernel_id: str = response.json()["id"]
        return kernel_id

    def kernel_processes(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def remember_kernels(self) -> None:
        self._known_kernels |= {p.pid for p in self.kernel_processes()}

    def connect(
        self, kernel_id: str, v1: bool = False, query: str = "", **kwargs: Any
    ) -> KernelSocket:
        headers = {**self.headers(), **kwargs.pop("additional_headers", {})}
        url = f"{self.ws_url}api/kernels/{kernel_id}/channels{query}"
        ws = connect(
            url,
            subprotocols=[wire.V1_SUBPROTOCOL] if v1 else None,  # type: ignore[list-item]
            additional_headers=headers,
            open_timeout=MESSAGE_TIMEOUT,
            max_size=None,
            **kwargs,
        )
        return KernelSocket(ws, v1)

    # --- stopping --------------------------------------------------------------------------

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Stop the gateway with ``sig``; kill the kernels it leaves behind; return its status."""
        self.remember_kernels()
        status = self.terminate(sig, timeout)
        leftovers = []
        for pid in self.leftover_kernels():
            try:
                leftover = psutil.Process(pid)
                leftover.kill()
                leftovers.append(leftover)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(leftovers, timeout)
        return status

    def leftover_kernels(self) -> list[int]:
        alive = []
        for pid in self._known_kernels:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        return alive

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Gateway(GatewayServer):
    """A kgw process listening on 127.0.0.1:<free port>."""

    name = "kgw"

    def __init__(
        self,
        *args: str,
        token: str | None = None,
        env: dict[str, str] | None = None,
        base_url: str = "/",
    ) -> None:
        self.token = token
        environ = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        command = [
            *KERNELGATEWAY,
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--base-url",
            base_url,
            *args,
        ]
        if token:
            command += ["--auth-token", token]
        self.listen(command, environ, _READY)


class JupyterKernelGateway(GatewayServer):
    """jupyter_kernel_gateway 3 from PyPI, in its own virtualenv, on a free loopback port.

    Its python3 kernelspec runs this interpreter's ipykernel, as kgw's does; its Jupyter
    directories (kernelspecs, runtime, config, data) are a temporary directory of its own.
    """

    name = "jupyter_kernel_gateway"

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        jupyter = jkg_jupyter()
        self._home = tempfile.TemporaryDirectory(prefix="kgw-jkg-", ignore_cleanup_errors=True)
        home = Path(self._home.name)
        write_kernel_spec(home / "path" / "kernels" / "python3")
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("KG_", "JUPYTER_"))}
        environ.update(
            JUPYTER_PATH=str(home / "path"),
            JUPYTER_RUNTIME_DIR=str(home / "runtime"),
            JUPYTER_CONFIG_DIR=str(home / "config"),
            JUPYTER_DATA_DIR=str(home / "data"),
            PYTHONUNBUFFERED="1",
            **(env or {}),
        )
        command = [
            str(jupyter),
            "kernelgateway",
            "--KernelGatewayApp.ip=127.0.0.1",
            # It logs the port it binds (after retrying the next ones if this one is taken).
            f"--KernelGatewayApp.port={free_port()}",
            *args,
        ]
        self.listen(command, environ, _JKG_READY)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        status = super().stop(sig, timeout)
        self._home.cleanup()
        return status


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def jkg_jupyter() -> Path:
    """``jupyter`` of jupyter_kernel_gateway's virtualenv (the benchmarks' one), made if missing."""
    return jkg_executable(log=lambda line: None)


class KernelSocket:
    """A client websocket on a kernel's channels, in the JSON or the v1 format."""

    def __init__(self, ws: ClientConnection, v1: bool) -> None:
        self.ws = ws
        self.v1 = v1
        self.session = uuid.uuid4().hex

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> KernelSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(
        self,
        msg_type: str,
        content: dict[str, Any],
        channel: str = "shell",
        buffers: list[bytes] | None = None,
    ) -> str:
        msg_id = uuid.uuid4().hex
        message = {
            "header": {
                "msg_id": msg_id,
                "msg_type": msg_type,
                "session": self.session,
                "username": "test",
                "version": "5.3",
                "date": "2026-01-01T00:00:00.000000Z",
            },
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": channel,
            "buffers": buffers or [],
        }
        if self.v1:
            self.ws.send(wire.parts_to_v1(wire.message_to_parts(message)))
        else:
            payload, binary = wire.message_to_legacy(message)
            self.ws.send(payload if binary else payload.decode("utf-8"))
        return msg_id

    def recv(self, timeout: float = MESSAGE_TIMEOUT) -> dict[str, Any]:
        frame = self.ws.recv(timeout=timeout)
        if self.v1:
            assert isinstance(frame, bytes), "v1 frames are binary"
            return wire.parts_to_message(wire.v1_to_parts(frame))
        if isinstance(frame, str):
            message: dict[str, Any] = json.loads(frame)
            return message
        return wire.legacy_to_message(frame, True)

    def messages(self, timeout: float = MESSAGE_TIMEOUT) -> Iterator[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            yield self.recv(remaining)
        raise TimeoutError("no message in time")

    def execute(
        self, code: str, allow_stdin: bool = False, **kwargs: Any
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Run code; return its execute_reply and the iopub messages it caused, in order."""
        msg_id = self.send_execute(code, allow_stdin, **kwargs)
        return self.collect(msg_id)

    def send_execute(self, code: str, allow_stdin: bool = False, **kwargs: Any) -> str:
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": allow_stdin,
            "stop_on_error": True,
            **kwargs,
        }
        return self.send("execute_request", content)

    def collect(
        self, msg_id: str, timeout: float = MESSAGE_TIMEOUT
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Read until ``msg_id`` has its reply and its idle status."""
        reply: dict[str, Any] | None = None
        iopub: list[dict[str, Any]] = []
        idle = False
        for message in self.messages(timeout):
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            if message["channel"] == "iopub":
                if message["msg_type"] == "status":
                    idle = message["content"]["execution_state"] == "idle"
                else:
                    iopub.append(message)
            elif message["msg_type"].endswith("_reply"):
                reply = message
            if reply is not None and idle:
                return reply, iopub
        raise AssertionError("unreachable")

    def reply_to(self, msg_id: str, timeout: float = MESSAGE_TIMEOUT) -> dict[str, Any]:
        for message in self.messages(timeout):
            if message["parent_header"].get("msg_id") == msg_id and message["channel"] != "iopub":
                return message
        raise AssertionError("unreachable")

    def wait_for_iopub(self, timeout: float = MESSAGE_TIMEOUT) -> None:
        """Send kernel_info requests until iopub brings a message caused by one of them.

        jupyter_server does this when a websocket opens; after a restart its iopub can miss
        the new process's first messages (kgw's does not, see test_output_right_after_restart).
        """
        deadline = time.monotonic() + timeout
        sent: set[str] = set()
        while time.monotonic() < deadline:
            nudge = self.send("kernel_info_request", {})
            sent.add(nudge)
            for message in self.messages(deadline - time.monotonic()):
                parent = message["parent_header"].get("msg_id")
                if message["channel"] == "iopub" and parent in sent:
                    return
                if message["channel"] == "shell" and parent == nudge:
                    break  # its iopub status may still come; nudge again meanwhile
        raise TimeoutError("iopub brought nothing in time")


def stream_text(iopub: list[dict[str, Any]]) -> str:
    return "".join(m["content"]["text"] for m in iopub if m["msg_type"] == "stream")
