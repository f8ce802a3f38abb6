"""The three things measured: kgw, jupyter_kernel_gateway, and ZeroMQ straight to the kernel.

Each target starts kernels and connects a client to them. The gateways are real processes
on a loopback port, reached over HTTP (``requests`` in a thread) and ``websockets``; the
floor is jupyter_client's AsyncKernelManager and AsyncKernelClient in this process.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

import requests
import zmq.asyncio
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.session import Session

from benchmarks.client import Channels, WebsocketChannels, ZmqChannels, parent_id
from benchmarks.environment import KERNEL_NAME, jkg_executable
from benchmarks.processes import GatewayProcess, ProcessTree

START_TIMEOUT = 60.0
KERNEL_TIMEOUT = 120.0
_KGW_READY = re.compile(r"kernelgateway listening on (\S+)")
_JKG_READY = re.compile(r"is available at (http://\S+?)/?$", re.MULTILINE)
_LOG_NUMBERS = itertools.count(1)  # one log file per gateway started, in order


class Target(Protocol):
    """Something that runs kernels and lets a client talk to them."""

    name: str

    @property
    def tree(self) -> ProcessTree | None:
        """The gateway's process tree (None for the floor, which has no gateway)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> list[int]:
        """Shut kernels and gateway down; return the pids of kernels that had to be killed."""
        ...

    async def start_kernel(self) -> str: ...

    async def connect(self, kernel_id: str, v1: bool = False) -> Channels: ...

    async def cold_start(self) -> tuple[str, dict[str, float]]:
        """Start a kernel and wait for its kernel_info_reply; return its id and timings (s)."""
        ...

    async def warm_start(self) -> tuple[str, dict[str, float]]:
        """Like cold_start, once the target's pool of ready kernels is full."""
        ...

    async def shutdown_kernel(self, kernel_id: str) -> None: ...


class Floor:
    """jupyter_client straight to the kernel's ZeroMQ sockets: the floor."""

    name = "floor"
    tree = None

    def __init__(self) -> None:
        self._managers: dict[str, AsyncKernelManager] = {}
        self._context: zmq.asyncio.Context | None = None

    async def start(self) -> None:
        # One context (one ZeroMQ I/O thread) for every client, as a gateway would have.
        self._context = zmq.asyncio.Context()

    async def stop(self) -> list[int]:
        await asyncio.gather(
            *(self.shutdown_kernel(kernel_id) for kernel_id in list(self._managers)),
            return_exceptions=True,
        )
        if self._context is not None:
            self._context.destroy(linger=0)
            self._context = None
        return []

    async def cold_start(self) -> tuple[str, dict[str, float]]:
        start = time.perf_counter()
        manager = AsyncKernelManager(kernel_name=KERNEL_NAME)
        kernel_id = str(uuid.uuid4())
        self._managers[kernel_id] = manager
        await manager.start_kernel()
        client = manager.client(context=self._context)
        client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
        try:
            await client.wait_for_ready(timeout=KERNEL_TIMEOUT)
        finally:
            client.stop_channels()
        return kernel_id, {"ready": time.perf_counter() - start}

    async def warm_start(self) -> tuple[str, dict[str, float]]:
        """The floor of a pool: a kernel started and ready beforehand; time a new client's
        kernel_info request until its reply."""
        kernel_id = await self.start_kernel()
        start = time.perf_counter()
        client = self._managers[kernel_id].client(context=self._context)
        client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        try:
            msg_id = client.kernel_info()
            async with asyncio.timeout(KERNEL_TIMEOUT):
                while parent_id(await client.get_shell_msg()) != msg_id:
                    pass
        finally:
            client.stop_channels()
        return kernel_id, {"ready": time.perf_counter() - start}

    async def start_kernel(self) -> str:
        kernel_id, _ = await self.cold_start()
        return kernel_id

    async def connect(self, kernel_id: str, v1: bool = False) -> Channels:
        manager = self._managers[kernel_id]
        # Clients of one manager would share its Session, whose replay check then rejects
        # the second copy of every iopub message: each client gets a Session of its own.
        session = Session(
            key=manager.session.key, signature_scheme=manager.session.signature_scheme
        )
        client = manager.client(context=self._context, session=session)
        client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
        # wait_for_ready returns once iopub carries messages: the SUB socket has joined.
        await client.wait_for_ready(timeout=KERNEL_TIMEOUT)
        return ZmqChannels(client)

    async def shutdown_kernel(self, kernel_id: str) -> None:
        manager = self._managers.pop(kernel_id)
        await manager.shutdown_kernel(now=True)


class GatewayTarget:
    """A gateway process reached over HTTP and websockets."""

    name = "gateway"

    def __init__(self, workdir: Path, pool: int = 0) -> None:
        self._workdir = workdir
        self.pool = pool  # kernels the gateway is told to prespawn
        self.process: GatewayProcess | None = None
        self.url = ""

    @property
    def tree(self) -> ProcessTree | None:
        return self.process.tree if self.process else None

    def command(self) -> list[str]:
        raise NotImplementedError

    async def wait_ready(self, process: GatewayProcess) -> str:
        raise NotImplementedError

    async def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        log = self._workdir / f"{next(_LOG_NUMBERS):03d}-{self.name}.log"
        self.process = GatewayProcess(self.name, self.command(), env, log)
        try:
            self.url = (await self.wait_ready(self.process)).rstrip("/") + "/"
        except BaseException:
            await self.process.stop()
            raise

    async def stop(self) -> list[int]:
        if self.process is None:
            return []
        try:
            if self.process.proc.poll() is None:
                kernels = await self.request("GET", "api/kernels")
                await asyncio.gather(
                    *(self.shutdown_kernel(k["id"]) for k in kernels.json()),
                    return_exceptions=True,
                )
        except (requests.RequestException, ValueError):
            pass
        finally:
            leftovers = await self.process.stop()
        return leftovers

    async def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", KERNEL_TIMEOUT)
        return await asyncio.to_thread(requests.request, method, self.url + path, **kwargs)

    async def start_kernel(self) -> str:
        response = await self.request("POST", "api/kernels", json={"name": KERNEL_NAME})
        if response.status_code != 201:
            raise RuntimeError(f"POST /api/kernels: {response.status_code} {response.text}")
        assert self.process is not None
        self.process.remember_kernels()
        kernel_id: str = response.json()["id"]
        return kernel_id

    async def shutdown_kernel(self, kernel_id: str) -> None:
        await self.request("DELETE", f"api/kernels/{kernel_id}")

    async def connect(self, kernel_id: str, v1: bool = False) -> Channels:
        url = "ws" + self.url[len("http") :] + f"api/kernels/{kernel_id}/channels"
        return await WebsocketChannels.open(url, v1, KERNEL_TIMEOUT)

    async def cold_start(self) -> tuple[str, dict[str, float]]:
        start = time.perf_counter()
        kernel_id = await self.start_kernel()
        created = time.perf_counter()
        channels = await self.connect(kernel_id)
        try:
            msg_id = await channels.send("kernel_info_request", {})
            async with asyncio.timeout(KERNEL_TIMEOUT):
                while True:
                    message = await channels.recv()
                    if message["msg_type"] == "kernel_info_reply" and parent_id(message) == msg_id:
                        break
        finally:
            await channels.close()
        ready = time.perf_counter()
        return kernel_id, {"post": created - start, "ready": ready - start}

    async def warm_start(self) -> tuple[str, dict[str, float]]:
        await self.wait_pool_full()
        return await self.cold_start()

    async def wait_pool_full(self) -> None:
        raise NotImplementedError


class Kgw(GatewayTarget):
    """kgw under twistd, default settings plus --list-kernels (to find kernels to clean up)."""

    name = "kgw"
    _pooled = re.compile(r"pool: kernel \S+ \(\S+\) ready")

    def __init__(self, workdir: Path, pool: int = 0) -> None:
        super().__init__(workdir, pool)
        self._handed_out = 0

    def command(self) -> list[str]:
        pool = ["--prespawn-count", str(self.pool)] if self.pool else []
        return [
            sys.executable,
            "-c",
            "from twisted.scripts.twistd import run; run()",
            "--nodaemon",
            "--pidfile=",
            "--logfile=-",
            "kernelgateway",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--list-kernels",
            *pool,
        ]

    async def wait_ready(self, process: GatewayProcess) -> str:
        return (await process.wait_for_log(_KGW_READY, START_TIMEOUT)).group(1)

    async def wait_pool_full(self) -> None:
        # Every kernel handed out is replaced in the background; wait for the replacement.
        assert self.process is not None
        await self.process.wait_for_log_count(
            self._pooled, self.pool + self._handed_out, KERNEL_TIMEOUT
        )

    async def warm_start(self) -> tuple[str, dict[str, float]]:
        result = await super().warm_start()
        self._handed_out += 1
        return result


class Jkg(GatewayTarget):
    """jupyter_kernel_gateway 3.x from its own virtualenv, default settings."""

    name = "jkg"

    def command(self) -> list[str]:
        return [
            str(jkg_executable()),
            "kernelgateway",
            "--KernelGatewayApp.ip=127.0.0.1",
            f"--KernelGatewayApp.port={_free_port()}",
            # jupyter_kernel_gateway 3 ignores --KernelGatewayApp.list_kernels (it warns that
            # the option is not recognized); listing belongs to the websocket personality.
            "--JupyterWebsocketPersonality.list_kernels=True",
            *([f"--KernelGatewayApp.prespawn_count={self.pool}"] if self.pool else []),
        ]

    async def wait_pool_full(self) -> None:
        # jupyter_kernel_gateway starts its prespawned kernels at startup and lists them; a
        # POST /api/kernels never takes one of them (they are there to be found by listing).
        deadline = time.monotonic() + KERNEL_TIMEOUT
        while len((await self.request("GET", "api/kernels")).json()) < self.pool:
            if time.monotonic() > deadline:
                raise TimeoutError(f"jkg did not list its {self.pool} prespawned kernels")
            await asyncio.sleep(0.1)

    async def wait_ready(self, process: GatewayProcess) -> str:
        url = (await process.wait_for_log(_JKG_READY, START_TIMEOUT)).group(1)
        self.url = url.rstrip("/") + "/"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            process.check_alive()
            try:
                if (await self.request("GET", "api", timeout=5)).status_code == 200:
                    return url
            except requests.RequestException:
                pass
            await asyncio.sleep(0.1)
        raise TimeoutError(f"jkg does not answer GET /api:\n{process.log_tail()}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_target(name: str, workdir: Path, pool: int = 0) -> Target:
    """A target by name; gateways are told to keep ``pool`` kernels prespawned."""
    if name == "floor":
        return Floor()
    if name == "kgw":
        return Kgw(workdir, pool)
    if name == "jkg":
        return Jkg(workdir, pool)
    raise ValueError(f"unknown target {name!r}")


TARGET_NAMES = ("floor", "kgw", "jkg")
