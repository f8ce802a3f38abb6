"""Starting and stopping one kernel's process, for the registry (KernelRegistry's base).

A start is jupyter_client's kernel manager (any provisioner), the kernel's stdout/stderr
pipes (output.py), its channel bridge, the readiness check and the seed notebook; a kernel
whose process ends before it answers is started again with new ports. A stop closes its
clients and shuts the process down. Nothing here registers a kernel or decides about
restarts: that is registry.py and restarts.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from twisted.logger import Logger

from kgw.aio import as_deferred
from kgw.channels.backlog import BacklogSettings
from kgw.channels.gateway_client import KernelExited
from kgw.errors import KernelStartFailed
from kgw.kernels.exits import watch_exit
from kgw.kernels.kernel import Kernel
from kgw.kernels.lifecycle import Event, State
from kgw.kernels.seed import Seed, run_seed
from kgw.metrics import GatewayMetrics

log = Logger()

# How long a kernel may take to answer its first kernel_info, and to shut down politely.
READY_TIMEOUT = 60.0
# Starts of a kernel whose process exits before it answers, before the request fails.
START_ATTEMPTS = 3


class _ExitedWhileStarting(KernelStartFailed):
    """The kernel process ended before it answered kernel_info."""


async def _exit_code(manager: AsyncKernelManager) -> int | None:
    provisioner = manager.provisioner
    if provisioner is None:
        return None
    try:
        code: int | None = await as_deferred(provisioner.poll())
    except Exception:
        return None
    return code


class KernelProcesses:
    """Process work of the registry; its attributes are set by KernelRegistry.__init__."""

    _clock: Any
    _zmq: Any
    _manager_factory: Callable[..., Any]
    _bridge_factory: Callable[..., Any]
    _output_factory: Callable[[str, str, Any], Any]
    _outputs: dict[str, Any]
    _backlog: BacklogSettings
    kernel_spec_manager: Any
    metrics: GatewayMetrics
    seed: Seed

    async def launch(self, name: str, env: dict[str, str]) -> Kernel:
        """Start a kernel process, wait until it answers, run the seed; the kernel is ready.

        A kernel whose process ends before it answers is started again, with new ports
        (jupyter_client picks free ports before the kernel binds them, and on a busy host
        another process can take one in between), up to START_ATTEMPTS times. The kernel is
        not registered: the caller hands it to a client or keeps it pooled.
        """
        kernel_id = str(uuid.uuid4())
        for attempt in range(1, START_ATTEMPTS + 1):
            manager = await self._start_process(kernel_id, name, env)
            bridge = self._bridge_factory(
                kernel_id,
                manager.get_connection_info(),
                self._zmq,
                self._clock,
                self.metrics.traffic,
                backlog=self._backlog,
            )
            kernel = Kernel(kernel_id, name, manager, bridge, env)
            try:
                await self._make_ready(kernel)
                return kernel
            except KernelStartFailed as e:
                exited = isinstance(e, _ExitedWhileStarting)
                code = await _exit_code(manager) if exited else None
                await self._stop_process(kernel, now=True)
                if exited and attempt < START_ATTEMPTS:
                    log.warn(
                        "kernel {kernel_id} ({name}) exited while starting (exit code {code}); "
                        "starting it again with new ports (attempt {attempt} of {attempts})",
                        kernel_id=kernel_id,
                        name=name,
                        code=code,
                        attempt=attempt + 1,
                        attempts=START_ATTEMPTS,
                    )
                    continue
                if exited:
                    e = KernelStartFailed(
                        f"Kernel {name} exited while starting, {START_ATTEMPTS} times "
                        f"(last exit code {code}); see the gateway's log for its output"
                    )
                log.error(
                    "kernel {kernel_id} ({name}) not started: {error}",
                    kernel_id=kernel_id,
                    name=name,
                    error=e.message,
                )
                raise e from None
        raise AssertionError("unreachable")

    async def _start_process(
        self, kernel_id: str, name: str, env: dict[str, str]
    ) -> AsyncKernelManager:
        manager: AsyncKernelManager = self._manager_factory(
            kernel_name=name, kernel_spec_manager=self.kernel_spec_manager
        )
        output = self._outputs.get(kernel_id)
        if output is None:
            output = self._outputs[kernel_id] = self._output_factory(kernel_id, name, self._clock)
        try:
            await as_deferred(
                manager.start_kernel(env=env, kernel_id=kernel_id, **output.launch_kwargs)
            )
        except Exception as e:
            self._close_output(kernel_id)
            # One line for the operator (a missing interpreter, a bad kernelspec, a
            # provisioner's refusal), not jupyter_client's traceback.
            log.error(
                "kernel {kernel_id} ({name}) failed to start: {error}",
                kernel_id=kernel_id,
                name=name,
                error=f"{type(e).__name__}: {e}",
            )
            raise KernelStartFailed(f"Kernel {name} failed to start: {e}") from None
        return manager

    async def _make_ready(self, kernel: Kernel) -> None:
        async def alive() -> bool:
            return await self.is_alive(kernel)

        try:
            await kernel.bridge.gateway.wait_ready(READY_TIMEOUT, alive=alive)
        except KernelExited:
            raise _ExitedWhileStarting(f"Kernel {kernel.name} exited while starting") from None
        except (TimeoutError, ConnectionError) as e:
            raise KernelStartFailed(f"Kernel {kernel.name} did not become ready: {e}") from None
        if self.seed.applies_to(kernel.name):
            await run_seed(kernel.bridge, self.seed.cells, alive)

    def _watch(self, kernel: Kernel, on_exit: Callable[[], None]) -> None:
        """Call ``on_exit`` the moment the kernel's local process exits (see exits.py)."""
        self._unwatch(kernel)
        kernel.exit_watch = watch_exit(self._clock, kernel.manager, on_exit)

    def _unwatch(self, kernel: Kernel) -> None:
        if kernel.exit_watch is not None:
            kernel.exit_watch.stop()
            kernel.exit_watch = None

    async def _stop_process(self, kernel: Kernel, now: bool, process_gone: bool = False) -> None:
        """Stop a kernel's process (unless it is dead), close its clients; it is GONE."""
        self._unwatch(kernel)
        was_dead = process_gone or kernel.lifecycle.state is State.DEAD
        if kernel.lifecycle.state is not State.STOPPING:
            kernel.lifecycle.fire(Event.ASK_SHUTDOWN)
        kernel.bridge.close(1001, "kernel shut down")
        try:
            if not was_dead:
                await as_deferred(kernel.manager.shutdown_kernel(now=now))
        except Exception:
            log.failure("kernel {kernel_id} did not shut down cleanly", kernel_id=kernel.id)
        finally:
            self._close_output(kernel.id)
            kernel.lifecycle.fire(Event.STOPPED)

    def _close_output(self, kernel_id: str) -> None:
        output = self._outputs.pop(kernel_id, None)
        if output is not None:
            output.close()

    async def is_alive(self, kernel: Kernel) -> bool:
        alive: bool = await as_deferred(kernel.manager.is_alive())
        return alive
