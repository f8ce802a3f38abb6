"""The live kernels: start, find, list, interrupt, restart and shut them down."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from typing import Any

import attrs
from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager
from jupyter_client.kernelspec import NoSuchKernel as JupyterNoSuchKernel
from jupyter_client.manager import AsyncKernelManager
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from txzmq import ZmqFactory

from kgw.aio import as_deferred
from kgw.channels.bridge import ChannelBridge
from kgw.config import GatewayConfig
from kgw.errors import (
    BadRequest,
    ConfigError,
    KernelLimitReached,
    KernelStartFailed,
    NoSuchKernel,
    NoSuchKernelSpec,
)

log = Logger()

# How long a kernel may take to answer its first kernel_info, and to shut down politely.
READY_TIMEOUT = 60.0
LAST_ACTIVITY_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@attrs.define(eq=False)
class Kernel:
    """One running kernel: its jupyter_client manager and its channel bridge."""

    id: str
    name: str
    manager: AsyncKernelManager
    bridge: ChannelBridge

    def model(self) -> dict[str, Any]:
        """The kernel model of jupyter_server's REST API."""
        return {
            "id": self.id,
            "name": self.name,
            "last_activity": self.bridge.last_activity.strftime(LAST_ACTIVITY_FORMAT),
            "execution_state": self.bridge.execution_state,
            "connections": self.bridge.connection_count,
        }


class KernelRegistry:
    """Starts kernels through jupyter_client and keeps the ones that are running."""

    def __init__(
        self,
        config: GatewayConfig,
        clock: IReactorTime,
        zmq_factory: ZmqFactory,
        environ: Mapping[str, str],
        kernel_spec_manager: KernelSpecManager | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._zmq = zmq_factory
        self._environ = dict(environ)
        self.kernel_spec_manager = kernel_spec_manager or KernelSpecManager()
        self._kernels: dict[str, Kernel] = {}
        self._starting = 0

    # --- kernelspecs -----------------------------------------------------------------------

    @property
    def default_kernel_name(self) -> str:
        return (
            self._config.force_kernel_name or self._config.default_kernel_name or NATIVE_KERNEL_NAME
        )

    def check_kernel_names(self) -> None:
        """Raise ConfigError if the default or forced kernelspec is not installed."""
        for flag, name in (
            ("--default-kernel-name", self._config.default_kernel_name),
            ("--force-kernel-name", self._config.force_kernel_name),
        ):
            if name:
                try:
                    self.kernel_spec(name)
                except NoSuchKernelSpec:
                    known = ", ".join(sorted(self.kernel_spec_manager.find_kernel_specs()))
                    raise ConfigError(
                        f"{flag}: no kernelspec named {name!r} (installed: {known})"
                    ) from None

    def kernel_spec(self, name: str) -> Any:
        try:
            return self.kernel_spec_manager.get_kernel_spec(name)
        except JupyterNoSuchKernel:
            raise NoSuchKernelSpec(name) from None

    # --- lookup ----------------------------------------------------------------------------

    def get(self, kernel_id: str) -> Kernel:
        try:
            return self._kernels[kernel_id]
        except KeyError:
            raise NoSuchKernel(kernel_id) from None

    def list(self) -> list[Kernel]:
        return list(self._kernels.values())

    # --- lifecycle -------------------------------------------------------------------------

    def kernel_env(self, client_env: Mapping[str, str] | None) -> dict[str, str]:
        """The environment a new kernel gets (jupyter_kernel_gateway's rules).

        Without a client ``env`` the kernel inherits the gateway's environment; with one it
        gets PATH, the gateway variables in KG_ENV_PROCESS_WHITELIST, and the client's
        KERNEL_* variables and those named in KG_ENV_WHITELIST. Never the token.
        """
        if client_env is None:
            env = dict(self._environ)
        else:
            env = {"PATH": self._environ.get("PATH", os.defpath)}
            for name in self._config.env_process_whitelist:
                if name in self._environ:
                    env[name] = self._environ[name]
            for name, value in client_env.items():
                if name.startswith("KERNEL_") or name in self._config.env_whitelist:
                    env[name] = value
        env.pop("KG_AUTH_TOKEN", None)
        return env

    async def start(self, name: str | None, client_env: Mapping[str, str] | None) -> Kernel:
        """Start a kernel and wait until it answers; raise a domain error if it cannot."""
        name = self._config.force_kernel_name or name or self.default_kernel_name
        self.kernel_spec(name)
        limit = self._config.max_kernels
        if limit and len(self._kernels) + self._starting >= limit:
            raise KernelLimitReached(limit)
        if client_env is not None:
            for key, value in client_env.items():
                if not isinstance(value, str):
                    raise BadRequest(f"env value of {key!r} must be a string")
        kernel_id = str(uuid.uuid4())
        manager = AsyncKernelManager(kernel_name=name, kernel_spec_manager=self.kernel_spec_manager)
        self._starting += 1
        try:
            await as_deferred(
                manager.start_kernel(env=self.kernel_env(client_env), kernel_id=kernel_id)
            )
        except Exception as e:
            log.failure(
                "kernel {kernel_id} ({name}) failed to start", kernel_id=kernel_id, name=name
            )
            raise KernelStartFailed(f"Kernel {name} failed to start: {e}") from None
        finally:
            self._starting -= 1
        bridge = ChannelBridge(kernel_id, manager.get_connection_info(), self._zmq, self._clock)
        kernel = Kernel(kernel_id, name, manager, bridge)
        self._kernels[kernel_id] = kernel
        try:
            await bridge.wait_ready(READY_TIMEOUT)
        except Exception as e:
            log.error(
                "kernel {kernel_id} ({name}) did not become ready: {error}",
                kernel_id=kernel_id,
                name=name,
                error=str(e),
            )
            await self.shutdown(kernel_id, now=True)
            raise KernelStartFailed(f"Kernel {name} did not become ready: {e}") from None
        log.info("kernel {kernel_id} ({name}) started", kernel_id=kernel_id, name=name)
        return kernel

    async def interrupt(self, kernel_id: str) -> None:
        kernel = self.get(kernel_id)
        await as_deferred(kernel.manager.interrupt_kernel())
        log.info("kernel {kernel_id} interrupted", kernel_id=kernel_id)

    async def restart(self, kernel_id: str) -> Kernel:
        kernel = self.get(kernel_id)
        kernel.bridge.execution_state = "restarting"
        try:
            await as_deferred(kernel.manager.restart_kernel(now=False))
        except Exception as e:
            log.failure("kernel {kernel_id} failed to restart", kernel_id=kernel_id)
            raise KernelStartFailed(f"Kernel {kernel_id} failed to restart: {e}") from None
        kernel.bridge.connect(kernel.manager.get_connection_info())
        try:
            await kernel.bridge.wait_ready(READY_TIMEOUT)
        except Exception as e:
            raise KernelStartFailed(f"Kernel {kernel_id} did not come back: {e}") from None
        log.info("kernel {kernel_id} restarted", kernel_id=kernel_id)
        return kernel

    async def shutdown(self, kernel_id: str, now: bool = False) -> None:
        kernel = self._kernels.pop(kernel_id, None)
        if kernel is None:
            raise NoSuchKernel(kernel_id)
        kernel.bridge.close(1001, "kernel shut down")
        try:
            await as_deferred(kernel.manager.shutdown_kernel(now=now))
        except Exception:
            log.failure("kernel {kernel_id} did not shut down cleanly", kernel_id=kernel_id)
        log.info("kernel {kernel_id} shut down", kernel_id=kernel_id)

    async def shutdown_all(self) -> None:
        """Shut every kernel down at once (politely, then by force)."""
        await defer.gatherResults(
            [Deferred.fromCoroutine(self.shutdown(kernel_id)) for kernel_id in list(self._kernels)]
        )
