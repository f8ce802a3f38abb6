"""The pools, for the registry: ready kernels handed out at once, and room under the limit.

``--pool``/``--prespawn-count`` kernels inherited the gateway's environment and serve
requests without an ``env``; ``--env-pool`` kernels were started with the environment an
``env`` request gets and receive the request's variables as they are handed out
(handout.py). A pooled kernel that died is replaced, never handed out, and pooled kernels
give way when a client's kernel would not fit under ``--max-kernels``.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.logger import Logger

from kgw.channels.gateway_client import KernelExited
from kgw.errors import KernelLimitReached, KernelStartFailed
from kgw.kernels import handout
from kgw.kernels.kernel import Kernel
from kgw.kernels.lifecycle import Event
from kgw.kernels.pool import KernelPool
from kgw.kernels.restarts import KernelRestarts

log = Logger()


class KernelPools(KernelRestarts):
    """Pool work of the registry (KernelRegistry's base)."""

    _kernels: dict[str, Kernel]
    _starting: int
    pool: KernelPool[Kernel]
    env_pool: KernelPool[Kernel]
    pools: tuple[KernelPool[Kernel], ...]

    def kernel_env(self, client_env: Mapping[str, str] | None) -> dict[str, str]:
        raise NotImplementedError  # KernelRegistry's

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
            self._starting += 1  # out of the pool, still counted under --max-kernels
            try:
                alive = await self.is_alive(kernel)
            finally:
                self._starting -= 1
            if alive:
                return kernel
            await self.replace_dead(pool, kernel)
        return None

    async def replace_dead(self, pool: KernelPool[Kernel], kernel: Kernel) -> None:
        """A pooled kernel (already out of ``pool``) died: stop what is left, start another."""
        log.warn(
            "{pool}: kernel {kernel_id} ({name}) died; replacing it",
            pool=pool.label,
            kernel_id=kernel.id,
            name=kernel.name,
        )
        kernel.lifecycle.fire(Event.DIED)
        await self.retire(kernel)

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
        code = handout.python_code(to_set, to_unset)
        self._starting += 1  # held outside the pool while its variables are set
        try:
            reply = await kernel.bridge.gateway.execute(
                code, handout.APPLY_TIMEOUT, lambda: self.is_alive(kernel), silent=True
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

    async def retire(self, kernel: Kernel) -> None:
        """Stop a kernel that is no longer pooled, and let the pool replace it."""
        await self._stop_process(kernel, now=True)
        self.refill()
