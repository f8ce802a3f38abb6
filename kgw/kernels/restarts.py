"""Restarts, for the registry: on a client's request, and in place after a kernel died,
within the restart budget (``--restart-limit`` deaths in ``--restart-window`` seconds).

Every change of state goes through the kernel's lifecycle (lifecycle.py); a restart that
ends in a shutdown someone asked for meanwhile, or in death, ends here too.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from kgw.aio import as_deferred
from kgw.config import GatewayConfig
from kgw.errors import KernelStartFailed
from kgw.kernels.kernel import Kernel
from kgw.kernels.lifecycle import Event, State
from kgw.kernels.processes import KernelProcesses, _ExitedWhileStarting

log = Logger()


class KernelRestarts(KernelProcesses):
    """Restart work of the registry (KernelRegistry's base)."""

    _config: GatewayConfig

    async def _finish_shutdown(self, kernel: Kernel, now: bool, process_gone: bool = False) -> None:
        raise NotImplementedError  # KernelRegistry's

    def get(self, kernel_id: str) -> Kernel:
        raise NotImplementedError  # KernelRegistry's

    def watch_for_death(self, kernel: Kernel) -> None:
        """Restart a READY kernel the moment its local process exits, not a second later."""

        def exited() -> None:
            if kernel.lifecycle.state is State.READY:
                log.info(
                    "kernel {kernel_id} ({name}): its process exited",
                    kernel_id=kernel.id,
                    name=kernel.name,
                )
                Deferred.fromCoroutine(self.revive(kernel)).addErrback(
                    lambda failure: log.failure("kernel restart failed", failure)
                )

        self._watch(kernel, exited)

    async def restart(self, kernel_id: str) -> Kernel:
        """Restart on a client's request (the seed runs again); a dead kernel starts afresh.

        A new process that exits while starting counts as a death, as it would after an
        automatic restart: it is tried again within the restart budget, then declared dead.
        """
        kernel = self.get(kernel_id)
        fresh = kernel.lifecycle.state is State.DEAD
        kernel.lifecycle.fire(Event.ASK_RESTART)  # 409 unless ready or dead
        self.metrics.restarts.labels("requested").inc()
        state = await self._restart(kernel, now=False, fresh=fresh)
        if state is not State.READY:
            raise KernelStartFailed(f"Kernel {kernel_id} failed to restart: it is {state.value}")
        log.info(
            "kernel {kernel_id} ({name}) restarted (requested)",
            kernel_id=kernel_id,
            name=kernel.name,
        )
        return kernel

    def _spend_restart(self, kernel: Kernel) -> bool:
        """Count one automatic restart; False when the budget in the window is spent."""
        window = self._config.restart_window
        now = self._clock.seconds()
        kernel.restarts = [t for t in kernel.restarts if now - t < window]
        if len(kernel.restarts) >= self._config.restart_limit:
            return False
        kernel.restarts.append(now)
        return True

    def _restarting_after_death(self, kernel: Kernel, what: str) -> None:
        """Say so in the log, to the clients and in the metrics: the kernel restarts."""
        log.warn(
            "kernel {kernel_id} ({name}) {what}; restarting it (restart {count} in {window}s)",
            kernel_id=kernel.id,
            name=kernel.name,
            what=what,
            count=len(kernel.restarts),
            window=self._config.restart_window,
        )
        kernel.bridge.broadcast_status("restarting")
        self.metrics.restarts.labels("died").inc()

    def _budget_reason(self, kernel: Kernel) -> str:
        return f"{len(kernel.restarts)} restarts in {self._config.restart_window}s"

    async def _restart(self, kernel: Kernel, now: bool, fresh: bool = False) -> State:
        """Start new processes for a RESTARTING kernel until one is ready, the budget is
        spent or a shutdown was asked for meanwhile; return the state it ends in.

        Clients' shell requests are held from the start and sent to the new process after its
        readiness check and seed, or answered with an error when it ends dead or stopped.
        """
        self._unwatch(kernel)  # this process ends on purpose, or already has
        kernel.bridge.execution_state = "restarting"
        kernel.bridge.hold()  # clients' code runs after the seed, in the new process
        reason = ""
        while True:
            try:
                if fresh:
                    # A dead kernel's manager has let go of everything: start afresh, same id.
                    kernel.manager = await self._start_process(kernel.id, kernel.name, kernel.env)
                    fresh = False
                else:
                    await as_deferred(kernel.manager.restart_kernel(now=now))
                kernel.bridge.connect(kernel.manager.get_connection_info())
                kernel.bridge.broadcast_status("starting")
                await self._make_ready(kernel)
            except _ExitedWhileStarting:
                # One more death: again within the budget, else dead.
                spent = not self._spend_restart(kernel)
                state = kernel.lifecycle.fire(Event.BUDGET_SPENT if spent else Event.DIED)
                if state is State.RESTARTING:
                    self._restarting_after_death(kernel, "exited while restarting")
                    now = True
                    continue
                reason = self._budget_reason(kernel)
            except Exception as e:
                if not isinstance(e, KernelStartFailed):
                    log.failure("kernel {kernel_id} failed to restart", kernel_id=kernel.id)
                state = kernel.lifecycle.fire(Event.RESTART_FAILED)
                reason = f"failed to restart: {getattr(e, 'message', None) or e}"
            else:
                state = kernel.lifecycle.fire(Event.RESTARTED)
            break
        if state is State.READY:
            self.watch_for_death(kernel)
            kernel.bridge.release()
        elif state is State.DEAD:
            await self._declare_dead(kernel, reason)
        else:  # a shutdown was asked for while it restarted
            await self._finish_shutdown(kernel, now=True)
        return state

    async def revive(self, kernel: Kernel) -> None:
        """A kernel died on its own: restart it in place, or declare it dead if it keeps
        dying. The state changes before the first await, so one death is seen once."""
        if kernel.lifecycle.state is not State.READY:
            return  # restarted, shut down or dead since supervision looked
        spent = not self._spend_restart(kernel)
        state = kernel.lifecycle.fire(Event.BUDGET_SPENT if spent else Event.DIED)
        if state is State.DEAD:
            await self._declare_dead(kernel, self._budget_reason(kernel))
            return
        self._restarting_after_death(kernel, "died")
        if await self._restart(kernel, now=True) is State.READY:
            log.info(
                "kernel {kernel_id} ({name}) restarted (it had died)",
                kernel_id=kernel.id,
                name=kernel.name,
            )

    async def _declare_dead(self, kernel: Kernel, reason: str) -> None:
        """The kernel is DEAD: make sure nothing of it runs, and tell its clients."""
        self.metrics.deaths.inc()
        log.error(
            "kernel {kernel_id} ({name}) is dead: {reason}",
            kernel_id=kernel.id,
            name=kernel.name,
            reason=reason,
        )
        try:
            await as_deferred(kernel.manager.shutdown_kernel(now=True))
        except Exception:
            log.failure("kernel {kernel_id}: cleanup after death failed", kernel_id=kernel.id)
        kernel.bridge.broadcast_status("dead")
        kernel.bridge.disconnect()
        kernel.bridge.release()  # nothing runs: what was held is answered with an error
