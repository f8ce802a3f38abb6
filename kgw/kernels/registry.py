"""The live kernels: start (from a pool or cold), find, list, interrupt and shut them down.

Starting and stopping processes is processes.py's, restarting them restarts.py's (both
bases of KernelRegistry); the pools are pool.py's, the states lifecycle.py's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager
from jupyter_client.kernelspec import NoSuchKernel as JupyterNoSuchKernel
from jupyter_client.manager import AsyncKernelManager
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from txzmq import ZmqFactory

from kgw.aio import as_deferred
from kgw.channels import spill
from kgw.channels.backlog import BacklogSettings
from kgw.channels.bridge import ChannelBridge
from kgw.config import GatewayConfig
from kgw.errors import (
    BadRequest,
    ConfigError,
    Conflict,
    KernelStartFailed,
    NoSuchKernel,
    NoSuchKernelSpec,
)
from kgw.kernels import handout
from kgw.kernels.kernel import Kernel
from kgw.kernels.lifecycle import Event, State
from kgw.kernels.output import KernelOutput
from kgw.kernels.pool import KernelPool
from kgw.kernels.pools import KernelPools
from kgw.kernels.seed import NO_SEED, SeedFailed, load_seed
from kgw.metrics import GatewayMetrics

log = Logger()


class KernelRegistry(KernelPools):
    """Starts kernels through jupyter_client and keeps the ones that are running."""

    def __init__(
        self,
        config: GatewayConfig,
        clock: IReactorTime,
        zmq_factory: ZmqFactory,
        environ: Mapping[str, str],
        kernel_spec_manager: KernelSpecManager | None = None,
        metrics: GatewayMetrics | None = None,
        manager_factory: Callable[..., Any] = AsyncKernelManager,
        bridge_factory: Callable[..., Any] = ChannelBridge,
        output_factory: Callable[[str, str, Any], Any] = KernelOutput,
    ) -> None:
        # The factories are jupyter_client's manager, the ZeroMQ bridge and the output pipes;
        # unit tests pass in-memory doubles.
        self._manager_factory = manager_factory
        self._bridge_factory = bridge_factory
        self._output_factory = output_factory
        self._config = config
        self._backlog = BacklogSettings(
            config.ws_backlog_memory, config.ws_backlog_limit, config.ws_backlog_dir or None
        )
        self.metrics = metrics or GatewayMetrics()
        self.metrics.watch(self)
        self._clock = clock
        self._zmq = zmq_factory
        self._environ = dict(environ)
        self.kernel_spec_manager = kernel_spec_manager or KernelSpecManager()
        self._kernels: dict[str, Kernel] = {}
        self._leaving: dict[str, Kernel] = {}  # asked to shut down, not yet gone
        self._outputs: dict[str, KernelOutput] = {}  # each kernel's stdout/stderr pipes
        self._starting = 0
        self.seed = (
            load_seed(config.seed_uri, config.source("seed-uri")) if config.seed_uri else NO_SEED
        )
        sizes = dict(config.pool)
        if config.prespawn_count:
            default = self.default_kernel_name
            sizes[default] = sizes.get(default, 0) + config.prespawn_count
        self.pool = KernelPool(sizes, self._launch_for_pool, self._has_room, clock)
        # For requests with an env: started with the environment an empty env gives.
        self.env_pool = KernelPool(
            dict(config.env_pool), self._launch_for_env_pool, self._has_room, clock, "env pool"
        )
        self.pools = (self.pool, self.env_pool)

    # --- kernelspecs -----------------------------------------------------------------------

    @property
    def default_kernel_name(self) -> str:
        return (
            self._config.force_kernel_name or self._config.default_kernel_name or NATIVE_KERNEL_NAME
        )

    def check_kernel_names(self) -> None:
        """Raise ConfigError if a kernelspec the settings name is not installed."""
        # Finding the kernelspec directories imports IPython (for its profile directory):
        # half a second, paid here at startup rather than by the first client's request.
        known = self.kernel_spec_manager.find_kernel_specs()
        wanted = [
            (self._config.source("default-kernel-name"), self._config.default_kernel_name),
            (self._config.source("force-kernel-name"), self._config.force_kernel_name),
            *((self._config.source("pool"), name) for name, _ in self._config.pool),
            *((self._config.source("env-pool"), name) for name, _ in self._config.env_pool),
        ]
        if self.seed.kernel_name:
            named = f"{self._config.source('seed-uri')} {self._config.seed_uri!r}"
            wanted.append((f"{named}: the notebook's kernelspec", self.seed.kernel_name))
        for source, name in wanted:
            if name and name not in known:
                try:  # the spec manager may know kernelspecs it does not list
                    self.kernel_spec(name)
                except NoSuchKernelSpec:
                    installed = ", ".join(sorted(known))
                    raise ConfigError(
                        f"{source}: no kernelspec named {name!r} (installed: {installed})"
                    ) from None
        for name, _ in self._config.env_pool:
            language = self.kernel_spec(name).language or ""
            if not handout.can_apply(language):
                raise ConfigError(
                    f"{self._config.source('env-pool')}: {name!r} is a {language or 'unknown'}"
                    " kernelspec; kgw can set a request's variables only in Python kernels"
                )

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
        env["KERNEL_GATEWAY"] = "1"  # as jupyter_kernel_gateway sets it
        return env

    async def start(self, name: str | None, client_env: Mapping[str, str] | None) -> Kernel:
        """A ready kernel for a client: from the pool when one fits, else a new one."""
        requested = time.monotonic()
        name = self._config.force_kernel_name or name or self.default_kernel_name
        self.kernel_spec(name)
        if client_env is not None:
            for key, value in client_env.items():
                if not isinstance(value, str):
                    raise BadRequest(f"env value of {key!r} must be a string")
        # A kernel of the pool inherited the gateway's environment: it suits requests without
        # env; one of the env pool gets the request's variables set as it is handed out.
        if client_env is None:
            kernel, pool = await self._take_alive(self.pool, name), "pool"
        else:
            kernel, pool = await self._from_env_pool(name, client_env), "env pool"
        if kernel is not None:
            log.info(
                "kernel {kernel_id} ({name}) handed out from the {pool}",
                kernel_id=kernel.id,
                name=name,
                pool=pool,
            )
            self.metrics.observe_start("pool", requested)
        else:
            await self._make_room()
            self._starting += 1
            try:
                kernel = await self.launch(name, self.kernel_env(client_env))
            finally:
                self._starting -= 1
            log.info("kernel {kernel_id} ({name}) started", kernel_id=kernel.id, name=name)
            self.metrics.observe_start("cold", requested)
        kernel.lifecycle.fire(Event.SERVE)
        self.watch_for_death(kernel)
        self._kernels[kernel.id] = kernel
        self.refill()
        return kernel

    async def interrupt(self, kernel_id: str) -> None:
        kernel = self.get(kernel_id)
        kernel.lifecycle.check_interrupt()  # 409 while restarting, dead or shutting down
        try:
            await as_deferred(kernel.manager.interrupt_kernel())
        except RuntimeError as e:  # the process ended a moment ago: supervision will see it
            raise Conflict(f"Kernel {kernel_id} is not running: {e}") from None
        log.info("kernel {kernel_id} ({name}) interrupted", kernel_id=kernel_id, name=kernel.name)

    async def shutdown(self, kernel_id: str, now: bool = False, reason: str = "requested") -> None:
        """Shut a client's kernel down. During a restart the shutdown waits for it to end,
        whatever its outcome, and nothing restarts the kernel afterwards."""
        kernel = self._kernels.pop(kernel_id, None)
        if kernel is None:
            raise NoSuchKernel(kernel_id)
        self._leaving[kernel_id] = kernel  # still stopped by shutdown_all() if it comes now
        kernel.stop_reason = reason
        was_dead = kernel.lifecycle.state is State.DEAD  # its process is gone already
        state = kernel.lifecycle.fire(Event.ASK_SHUTDOWN)
        if state is State.STOPPING:
            await self._finish_shutdown(kernel, now, process_gone=was_dead)
        else:  # SHUTDOWN_PENDING: the restart under way stops it when it ends
            await kernel.lifecycle.reached(State.GONE)

    async def _finish_shutdown(self, kernel: Kernel, now: bool, process_gone: bool = False) -> None:
        """A STOPPING client kernel: stop its process, forget it, log why."""
        await self._stop_process(kernel, now, process_gone)
        self._leaving.pop(kernel.id, None)
        log.info(
            "kernel {kernel_id} ({name}) shut down ({reason})",
            kernel_id=kernel.id,
            name=kernel.name,
            reason=kernel.stop_reason,
        )
        self.refill()

    async def startup_check(self) -> None:
        """Fill the pool; without one, start a kernel to try the seed.

        Raise ConfigError naming the setting whose kernel could not start, or the backlog
        directory if no file can be written there.
        """
        try:
            spill.check_directory(self._backlog.directory)
        except OSError as e:
            where = self._backlog.directory or "the temporary directory"
            raise ConfigError(
                f"{self._config.source('ws-backlog-dir')}: cannot write backlog files in "
                f"{where}: {e.strerror or e}"
            ) from None
        self.refill()
        failures = [*await self.pool.first_fill(), *await self.env_pool.first_fill()]
        if failures:
            name, error = failures[0]
            raise ConfigError(f"{self._startup_source(name, error)}: {error}")
        if self.seed.cells and not self.pool.sizes and not self.env_pool.sizes:
            name = self.seed.kernel_name or self.default_kernel_name
            try:
                kernel = await self.launch(name, self.kernel_env(None))
            except KernelStartFailed as e:
                raise ConfigError(f"{self._startup_source(name, e)}: {e}") from None
            await self._stop_process(kernel, now=True)

    def _startup_source(self, name: str, error: Exception) -> str:
        """The setting to blame for a kernel that did not start at startup."""
        if isinstance(error, SeedFailed):
            return f"{self._config.source('seed-uri')} {self._config.seed_uri!r}"
        if name in dict(self._config.pool):
            return f"{self._config.source('pool')} {name}"
        if name in dict(self._config.env_pool):
            return f"{self._config.source('env-pool')} {name}"
        if self._config.prespawn_count:
            return f"{self._config.source('prespawn-count')} ({name})"
        return f"kernelspec {name!r}"

    async def shutdown_all(self) -> None:
        """Shut every kernel down at once, pooled ones too (politely, then by force)."""
        pooled = [*await self.pool.stop(), *await self.env_pool.stop()]
        work: list[Deferred[Any]] = [
            Deferred.fromCoroutine(self.shutdown(kernel_id)) for kernel_id in list(self._kernels)
        ]
        work += [Deferred.fromCoroutine(self._stop_process(kernel, now=False)) for kernel in pooled]
        # Kernels asked to shut down meanwhile (a DELETE waiting for a restart to end).
        work += [kernel.lifecycle.reached(State.GONE) for kernel in self._leaving.values()]
        await defer.gatherResults(work)
