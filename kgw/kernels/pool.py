"""Prespawned kernels: ready (answered kernel_info, ran the seed) and waiting for a client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger


class Pooled(Protocol):
    """What the pool needs of a kernel: its id (for the log) and kernelspec name."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...


Kernel = TypeVar("Kernel", bound=Pooled)

log = Logger()

# After a failed start, wait this long before trying to fill the pool again.
RETRY_DELAY = 5.0


class KernelPool(Generic[Kernel]):
    """Keeps ``sizes[name]`` ready kernels per kernelspec and refills itself.

    ``launch`` starts a ready kernel; ``has_room`` says whether one more kernel fits under
    the gateway's kernel limit, so the pool never takes a slot a client could use.
    """

    def __init__(
        self,
        sizes: dict[str, int],
        launch: Callable[[str], Awaitable[Kernel]],
        has_room: Callable[[], bool],
        clock: IReactorTime,
        label: str = "pool",
    ) -> None:
        self.label = label  # "pool" or "env pool", in log lines
        self.sizes = {name: count for name, count in sizes.items() if count > 0}
        self._launch = launch
        self._has_room = has_room
        self._clock = clock
        self._ready: dict[str, list[Kernel]] = {name: [] for name in self.sizes}
        self._filling: dict[str, int] = dict.fromkeys(self.sizes, 0)
        self._stopped = False
        self.failures: list[tuple[str, Exception]] = []  # (kernelspec, error)
        self._first_fill: Deferred[None] = Deferred()
        self._in_flight: set[Deferred[None]] = set()

    def __len__(self) -> int:
        """Kernels held: ready ones and those being started."""
        return sum(len(k) for k in self._ready.values()) + sum(self._filling.values())

    def ready(self) -> list[Kernel]:
        return [kernel for kernels in self._ready.values() for kernel in kernels]

    def take(self, name: str) -> Kernel | None:
        """A ready kernel of kernelspec ``name``, or None. The caller registers it, then calls
        refill() to start a replacement (so the replacement counts it toward the limit)."""
        kernels = self._ready.get(name)
        return kernels.pop(0) if kernels else None

    def discard(self, kernel: Kernel) -> bool:
        """Forget a pooled kernel (it died or was evicted); True if it was pooled."""
        kernels = self._ready.get(kernel.name, [])
        if kernel in kernels:
            kernels.remove(kernel)
            return True
        return False

    def pick_victim(self) -> Kernel | None:
        """A ready kernel to give up so that a client request fits under the limit."""
        for kernels in self._ready.values():
            if kernels:
                return kernels.pop()
        return None

    def refill(self) -> None:
        """Start kernels until every kernelspec has its count, while the limit allows."""
        if self._stopped:
            return
        for name, wanted in self.sizes.items():
            while len(self._ready[name]) + self._filling[name] < wanted and self._has_room():
                self._filling[name] += 1
                fill = Deferred.fromCoroutine(self._fill(name))
                self._in_flight.add(fill)
                fill.addBoth(self._forget_fill, fill)

    def _forget_fill(self, result: object, fill: Deferred[None]) -> object:
        self._in_flight.discard(fill)
        return result

    async def _fill(self, name: str) -> None:
        try:
            kernel = await self._launch(name)
        except Exception as e:
            self._filling[name] -= 1
            self.failures.append((name, e))
            starting_up = not self._first_fill.called
            self._settle_first_fill()
            # A failure while the gateway starts stops it (the caller of first_fill() says
            # why); later ones are retried.
            if not self._stopped and not starting_up:
                log.error(
                    "{pool}: could not start a {name} kernel: {error}; retrying in {delay:.0f}s",
                    pool=self.label,
                    name=name,
                    error=str(e),
                    delay=RETRY_DELAY,
                )
                self._clock.callLater(RETRY_DELAY, self.refill)
            return
        self._filling[name] -= 1
        self._ready[name].append(kernel)
        log.info(
            "{pool}: kernel {kernel_id} ({name}) ready",
            pool=self.label,
            kernel_id=kernel.id,
            name=name,
        )
        self._settle_first_fill()

    def _settle_first_fill(self) -> None:
        if not self._first_fill.called and (self.failures or not sum(self._filling.values())):
            self._first_fill.callback(None)

    async def first_fill(self) -> list[tuple[str, Exception]]:
        """Wait until the pool is full for the first time, or a start failed."""
        if self.sizes and not self._first_fill.called:
            await self._first_fill
        return self.failures

    async def stop(self) -> list[Kernel]:
        """Stop refilling, let kernels being started finish, and hand all of them back for
        the caller to shut down."""
        self._stopped = True
        for fill in list(self._in_flight):
            await fill
        kernels = self.ready()
        for name in self._ready:
            self._ready[name] = []
        return kernels
