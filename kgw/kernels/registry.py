"""The live kernels: start, find, list, interrupt, restart and shut them down."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping
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
from kgw.channels.bridge import ChannelBridge, KernelExited
from kgw.config import GatewayConfig
from kgw.errors import (
    BadRequest,
    ConfigError,
    Conflict,
    KernelLimitReached,
    KernelStartFailed,
    NoSuchKernel,
    NoSuchKernelSpec,
)
from kgw.kernels import handout
from kgw.kernels.exits import ExitWatch, watch_exit
from kgw.kernels.lifecycle import Event, Lifecycle, State
from kgw.kernels.output import KernelOutput
from kgw.kernels.pool import KernelPool
from kgw.kernels.seed import NO_SEED, SeedFailed, load_seed, run_seed
from kgw.metrics import GatewayMetrics

log = Logger()

# How long a kernel may take to answer its first kernel_info, and to shut down politely.
READY_TIMEOUT = 60.0
# Starts of a kernel whose process exits before it answers, before the request fails.
START_ATTEMPTS = 3
LAST_ACTIVITY_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@attrs.define(eq=False)
class Kernel:
    """One kernel: its jupyter_client manager, its channel bridge and its lifecycle."""

    id: str
    name: str
    manager: AsyncKernelManager
    bridge: ChannelBridge
    env: dict[str, str] = attrs.Factory(dict)  # the environment it was launched with
    restarts: list[float] = attrs.Factory(list)  # reactor times of automatic restarts
    lifecycle: Lifecycle = attrs.Factory(lambda self: Lifecycle(self.id), takes_self=True)
    stop_reason: str = "requested"  # why it is being shut down, for the log
    exit_watch: ExitWatch | None = None  # tells at once when its local process ends

    @property
    def dead(self) -> bool:
        return self.lifecycle.state is State.DEAD

    def model(self) -> dict[str, Any]:
        """The kernel model of jupyter_server's REST API."""
        return {
            "id": self.id,
            "name": self.name,
            "last_activity": self.bridge.last_activity.strftime(LAST_ACTIVITY_FORMAT),
            "execution_state": self.bridge.execution_state,
            "connections": self.bridge.connection_count,
        }


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


class KernelRegistry:
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

    def _in_use(self) -> int:
        return len(self._kernels) + self._starting + len(self.pool) + len(self.env_pool)

    def _has_room(self) -> bool:
        limit = self._config.max_kernels
        return not limit or self._in_use() < limit

    async def _make_room(self) -> None:
        """Give up a pooled kernel if a client's kernel would not fit otherwise."""
        if self._has_room():
            return
        victim = self.pool.pick_victim() or self.env_pool.pick_victim()
        if victim is None:
            raise KernelLimitReached(self._config.max_kernels)
        log.info(
            "pool: kernel {kernel_id} ({name}) shut down to make room",
            kernel_id=victim.id,
            name=victim.name,
        )
        await self._stop_process(victim, now=True)

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
            await kernel.bridge.wait_ready(READY_TIMEOUT, alive=alive)
        except KernelExited:
            raise _ExitedWhileStarting(f"Kernel {kernel.name} exited while starting") from None
        except (TimeoutError, ConnectionError) as e:
            raise KernelStartFailed(f"Kernel {kernel.name} did not become ready: {e}") from None
        if self.seed.applies_to(kernel.name):
            await run_seed(kernel.bridge, self.seed.cells, alive)

    async def _launch_for_pool(self, name: str) -> Kernel:
        kernel = await self.launch(name, self.kernel_env(None))
        kernel.lifecycle.fire(Event.POOL)
        return kernel

    async def _launch_for_env_pool(self, name: str) -> Kernel:
        kernel = await self.launch(name, self.kernel_env({}))
        kernel.lifecycle.fire(Event.POOL)
        return kernel

    async def _take_alive(self, pool: KernelPool[Kernel], name: str) -> Kernel | None:
        """A pooled kernel whose process still runs (one that died since supervision last
        looked is replaced, never handed out), or None."""
        while (kernel := pool.take(name)) is not None:
            if await self.is_alive(kernel):
                return kernel
            log.warn(
                "{pool}: kernel {kernel_id} ({name}) had died; replacing it",
                pool=pool.label,
                kernel_id=kernel.id,
                name=name,
            )
            kernel.lifecycle.fire(Event.DIED)
            await self.retire(kernel)
        return None

    def refill(self) -> None:
        for pool in self.pools:
            pool.refill()

    async def _from_env_pool(self, name: str, client_env: Mapping[str, str]) -> Kernel | None:
        """A kernel of the env pool with the request's variables set in it, or None."""
        kernel = await self._take_alive(self.env_pool, name)
        if kernel is None:
            return None
        target = self.kernel_env(client_env)
        to_set, to_unset = handout.changes(kernel.env, target), handout.removed(kernel.env, target)
        content = {
            "code": handout.python_code(to_set, to_unset),
            "silent": True,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        self._starting += 1  # held outside the pool while its variables are set
        try:
            reply = await kernel.bridge.request(
                "execute_request", content, handout.APPLY_TIMEOUT, lambda: self.is_alive(kernel)
            )
            if reply.get("status") != "ok":
                raise KernelStartFailed(f"{reply.get('ename')}: {reply.get('evalue')}")
        except (KernelStartFailed, KernelExited, TimeoutError) as e:
            log.warn(
                "env pool: kernel {kernel_id} ({name}) could not take the request's variables "
                "({error}); starting a kernel for it instead",
                kernel_id=kernel.id,
                name=name,
                error=str(e) or type(e).__name__,
            )
            await self._stop_process(kernel, now=True)
            return None
        finally:
            self._starting -= 1
        kernel.manager.update_env(env=to_set)  # a restart starts the new process with them
        kernel.env = target
        return kernel

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
        self._watch(kernel)
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
                    log.warn(
                        "kernel {kernel_id} ({name}) exited while restarting; starting it again "
                        "(restart {count} in {window}s)",
                        kernel_id=kernel.id,
                        name=kernel.name,
                        count=len(kernel.restarts),
                        window=self._config.restart_window,
                    )
                    kernel.bridge.broadcast_status("restarting")
                    self.metrics.restarts.labels("died").inc()
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
            self._watch(kernel)
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
        log.warn(
            "kernel {kernel_id} ({name}) died; restarting it (restart {count} in {window}s)",
            kernel_id=kernel.id,
            name=kernel.name,
            count=len(kernel.restarts),
            window=self._config.restart_window,
        )
        kernel.bridge.broadcast_status("restarting")
        self.metrics.restarts.labels("died").inc()
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

    def _watch(self, kernel: Kernel) -> None:
        """Restart a READY kernel the moment its local process exits (see exits.py)."""

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

        self._unwatch(kernel)
        kernel.exit_watch = watch_exit(self._clock, kernel.manager, exited)

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

    async def retire(self, kernel: Kernel) -> None:
        """Stop a kernel that is no longer pooled, and let the pool replace it."""
        await self._stop_process(kernel, now=True)
        self.refill()

    async def startup_check(self) -> None:
        """Fill the pool; without one, start a kernel to try the seed.

        Raise ConfigError naming the setting whose kernel could not start.
        """
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

    async def is_alive(self, kernel: Kernel) -> bool:
        alive: bool = await as_deferred(kernel.manager.is_alive())
        return alive

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
