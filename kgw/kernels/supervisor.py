"""Watches the kernels: restarts those that die on their own, culls idle ones."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from kgw.config import GatewayConfig
from kgw.kernels.kernel import Kernel
from kgw.kernels.lifecycle import WATCHED, State
from kgw.kernels.registry import KernelRegistry

log = Logger()

# How often every kernel process is checked for life.
WATCH_INTERVAL = 1.0


class KernelSupervisor:
    """Liveness through the kernel manager (so remote provisioners work too), and culling."""

    def __init__(
        self, registry: KernelRegistry, clock: IReactorTime, config: GatewayConfig
    ) -> None:
        self._registry = registry
        self._clock = clock
        self._config = config
        self._loops: list[LoopingCall] = []

    def start(self) -> None:
        self._every(WATCH_INTERVAL, self.watch)
        if self._config.cull_idle_timeout:
            self._every(float(self._config.cull_interval), self.cull)

    def _every(self, seconds: float, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        loop = LoopingCall(lambda: Deferred.fromCoroutine(job()))
        loop.clock = self._clock
        loop.start(seconds, now=False).addErrback(self._loop_failed)
        self._loops.append(loop)

    def _loop_failed(self, failure: Failure) -> None:
        log.failure("kernel supervision stopped", failure)

    def stop(self) -> None:
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()

    async def watch(self) -> None:
        """Restart client kernels that died; replace pooled kernels that died."""
        registry = self._registry
        for kernel in registry.list():
            if kernel.lifecycle.state not in WATCHED:
                continue
            seen = len(kernel.lifecycle.history)
            if await registry.is_alive(kernel):
                continue
            if len(kernel.lifecycle.history) != seen:
                continue  # restarted (its pidfd was quicker) or shut down while we asked
            # revive() changes the state at once (or does nothing if it changed meanwhile).
            Deferred.fromCoroutine(self._revive(kernel))
        for pool in registry.pools:
            for kernel in pool.ready():
                if not await registry.is_alive(kernel) and pool.discard(kernel):
                    await registry.replace_dead(pool, kernel)

    async def _revive(self, kernel: Kernel) -> None:
        try:
            await self._registry.revive(kernel)
        except Exception:
            log.failure("kernel {kernel_id}: restart after death failed", kernel_id=kernel.id)

    async def cull(self) -> None:
        """Shut down kernels idle longer than --cull-idle-timeout (jupyter_server's rules)."""
        timeout = self._config.cull_idle_timeout
        now = datetime.fromtimestamp(self._clock.seconds(), UTC)
        for kernel in self._registry.list():
            if kernel.lifecycle.state is not State.READY:
                continue
            idle = (now - kernel.bridge.last_activity).total_seconds()
            if idle < timeout:
                continue
            connections = kernel.bridge.connection_count
            if connections and not self._config.cull_connected:
                continue
            state = kernel.bridge.execution_state
            if state == "busy" and not self._config.cull_busy:
                continue
            reason = (
                f"culled: idle {idle:.0f}s (limit {timeout}s), {state}, {connections} connection(s)"
            )
            try:
                await self._registry.shutdown(kernel.id, reason=reason)
            except Exception:
                log.failure("kernel {kernel_id}: cull failed", kernel_id=kernel.id)
            else:
                self._registry.metrics.culls.inc()
