"""Gateway processes: start one, read its log, measure it, and leave nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil

# Every process the benchmark started, so an error or Ctrl-C still ends them all.
_SPAWNED: set[int] = set()


def is_kernel(process: psutil.Process) -> bool:
    try:
        return any("ipykernel" in part for part in process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def kill_tree(pids: set[int]) -> None:
    """Kill these processes and everything below them that is still alive."""
    victims: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            process = psutil.Process(pid)
            victims[pid] = process
            for child in process.children(recursive=True):
                victims[child.pid] = child
        except psutil.NoSuchProcess:
            continue
    for process in victims.values():
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(list(victims.values()), timeout=10)


def kill_everything_spawned() -> None:
    """Last resort (finally / Ctrl-C): kill every process the benchmark started, and its kernels."""
    kill_tree(set(_SPAWNED) | {p.pid for p in psutil.Process().children(recursive=True)})
    _SPAWNED.clear()


class ProcessTree:
    """A gateway process and its helpers, measured without the kernels it started."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)

    def kernels(self) -> list[psutil.Process]:
        try:
            return [p for p in self.root.children(recursive=True) if is_kernel(p)]
        except psutil.NoSuchProcess:
            return []

    def gateway_processes(self) -> list[psutil.Process]:
        """The gateway and its non-kernel descendants (none of a kernel's own children)."""
        found = [self.root]
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in self.root.children():
                if not is_kernel(child):
                    found.extend(ProcessTree(child.pid).gateway_processes())
        return found

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self.gateway_processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def rss(self) -> int:
        total = 0
        for process in self.gateway_processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
        return total

    def fds(self) -> int:
        fds: int = self.root.num_fds()
        return fds

    def kernel_connections(self) -> int:
        """TCP connections from the gateway to ports its kernels listen on (ZeroMQ sockets)."""
        ports: set[int] = set()
        for kernel in self.kernels():
            with contextlib.suppress(psutil.NoSuchProcess):
                for conn in kernel.net_connections(kind="tcp"):
                    if conn.status == psutil.CONN_LISTEN:
                        ports.add(conn.laddr.port)
        count = 0
        for process in self.gateway_processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                for conn in process.net_connections(kind="tcp"):
                    if conn.raddr and conn.raddr.port in ports:
                        count += 1
        return count


class GatewayProcess:
    """A gateway started in its own session, logging to a file."""

    def __init__(self, name: str, command: Sequence[str], env: dict[str, str], log: Path):
        self.name = name
        self.log_path = log
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        _SPAWNED.add(self.proc.pid)
        self.tree = ProcessTree(self.proc.pid)
        self._kernel_pids: set[int] = set()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    async def wait_for_log(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """Wait for a log line matching ``pattern``; fail if the gateway exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if match := pattern.search(self.log_text()):
                return match
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.proc.returncode}):\n{self.log_tail()}"
                )
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{self.name} did not log {pattern.pattern!r}:\n{self.log_tail()}")

    async def wait_for_log_count(
        self, pattern: re.Pattern[str], count: int, timeout: float
    ) -> None:
        """Wait until ``count`` log lines match ``pattern``; fail if the gateway exits first."""
        deadline = time.monotonic() + timeout
        while len(pattern.findall(self.log_text())) < count:
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.name} did not log {pattern.pattern!r} {count} times:\n"
                    + self.log_tail()
                )
            await asyncio.sleep(0.05)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.log_tail()}")

    def remember_kernels(self) -> None:
        self._kernel_pids |= {p.pid for p in self.tree.kernels()}

    async def stop(self, timeout: float = 20.0) -> list[int]:
        """SIGTERM, then SIGKILL; kill kernels it left behind; return their pids."""
        self.remember_kernels()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        leftovers = list(_alive(self._kernel_pids))
        kill_tree(set(leftovers))
        _SPAWNED.discard(self.proc.pid)
        self._log.close()
        return leftovers


def _alive(pids: set[int]) -> Iterator[int]:
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                yield pid
        except psutil.NoSuchProcess:
            pass
