"""Workloads 5 and 6: many busy kernels at once, and thousands of idle connections."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from websockets.exceptions import ConnectionClosed, InvalidStatus

from benchmarks.client import Channels, Message, collect, execute_content, parent_id
from benchmarks.latency import measure_round_trips, percentile, timed_round_trips
from benchmarks.processes import ProcessTree
from benchmarks.sizes import Sizes
from benchmarks.targets import Target

Row = dict[str, float | None]
MiB = 1024 * 1024
EXECUTE_TIMEOUT = 60.0  # one execute without its reply this long is counted lost
OPEN_CONCURRENCY = 50

T = TypeVar("T")


async def bounded(limit: int, jobs: list[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run ``jobs`` with at most ``limit`` at once; results in order."""
    semaphore = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await job()

    return list(await asyncio.gather(*(run(job) for job in jobs)))


async def start_kernels(target: Target, count: int, sizes: Sizes) -> list[str]:
    return await bounded(sizes.start_concurrency, [target.start_kernel] * count)


@dataclass
class Worker:
    """One client's sequential executes, with what went wrong."""

    index: int
    owners: dict[str, int]
    latencies: list[float] = field(default_factory=list)
    lost: int = 0
    misrouted: int = 0

    def check(self, message: Message) -> None:
        owner = self.owners.get(parent_id(message))
        if owner is not None and owner != self.index:
            self.misrouted += 1

    async def run(self, channels: Channels, count: int) -> None:
        for done in range(count):
            start = time.perf_counter()
            msg_id = await channels.send("execute_request", execute_content("pass"))
            self.owners[msg_id] = self.index
            try:
                async with asyncio.timeout(EXECUTE_TIMEOUT):
                    await collect(channels, msg_id, self.check, on_other=self.check)
            except TimeoutError:
                self.lost += count - done
                return
            self.latencies.append(time.perf_counter() - start)


class RssSampler:
    """The highest gateway RSS seen while it runs (sampled every 100 ms)."""

    def __init__(self, tree: ProcessTree | None) -> None:
        self.tree = tree
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        assert self.tree is not None
        while True:
            self.peak = max(self.peak, await asyncio.to_thread(self.tree.rss))
            await asyncio.sleep(0.1)

    def __enter__(self) -> RssSampler:
        if self.tree is not None:
            self._task = asyncio.ensure_future(self._sample())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


async def many_kernels(target: Target, sizes: Sizes, reps: int) -> AsyncIterator[Row]:
    """Workload 5: a client per kernel, all executing at once; nothing lost or misrouted."""
    kernel_ids = await start_kernels(target, sizes.many_kernels, sizes)
    clients = [await target.connect(kernel_id) for kernel_id in kernel_ids]
    try:
        for _ in range(reps):
            owners: dict[str, int] = {}
            workers = [Worker(i, owners) for i in range(len(clients))]
            with RssSampler(target.tree) as rss:
                start = time.perf_counter()
                async with asyncio.timeout(sizes.timeout):
                    await asyncio.gather(
                        *(
                            w.run(c, sizes.many_executes)
                            for w, c in zip(workers, clients, strict=True)
                        )
                    )
                elapsed = time.perf_counter() - start
            latencies = [t for w in workers for t in w.latencies]
            yield {
                "executes_s": len(latencies) / elapsed,
                "p50_ms": percentile(latencies, 50) * 1e3 if latencies else None,
                "p99_ms": percentile(latencies, 99) * 1e3 if latencies else None,
                "lost": sum(w.lost for w in workers),
                "misrouted": sum(w.misrouted for w in workers),
                "gateway_rss_mb": rss.peak / MiB if target.tree else None,
            }
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def _close_quietly(channels: Channels) -> None:
    with contextlib.suppress(Exception):
        await channels.close()


async def _snapshot(tree: ProcessTree) -> tuple[int, int, int]:
    await asyncio.sleep(1.0)  # let the gateway settle
    return await asyncio.to_thread(lambda: (tree.rss(), tree.fds(), tree.kernel_connections()))


async def _probe(target: Target, kernel_id: str, sizes: Sizes, prefix: str) -> Row:
    """Round trips of one more client on ``kernel_id``; a gateway that cannot serve it
    (jupyter_kernel_gateway out of ZeroMQ sockets closes the websocket) is counted."""
    try:
        probe = await target.connect(kernel_id)
        try:
            await measure_round_trips(probe, sizes.warmup, sizes.timeout)
            row = await timed_round_trips(target, probe, sizes.idle_executes, sizes.timeout, prefix)
        finally:
            await _close_quietly(probe)
    except (ConnectionClosed, OSError, InvalidStatus):
        return {f"{prefix}_failed": 1}
    return {**row, f"{prefix}_failed": 0}


class IdleClients:
    """The idle connections, held and drained by ``benchmarks.idle_clients`` in a process of
    their own: what thousands of other clients receive is not read by the measuring one."""

    def __init__(self, process: asyncio.subprocess.Process, opened: int) -> None:
        self._process = process
        self.opened = opened

    @classmethod
    async def open(cls, target: Target, kernel_ids: list[str], sizes: Sizes) -> IdleClients:
        base = "ws" + target.url[len("http") :]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.idle_clients",
            base,
            str(sizes.idle_connections),
            str(sizes.timeout),
            *kernel_ids,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=Path(__file__).resolve().parent.parent,
        )
        try:
            async with asyncio.timeout(sizes.timeout):
                opened = int(await cls._answer(process, "opened"))
        except BaseException:
            await cls._end(process)
            raise
        return cls(process, opened)

    @staticmethod
    async def _answer(process: asyncio.subprocess.Process, word: str) -> str:
        assert process.stdout is not None
        line = (await process.stdout.readline()).decode()
        if not line.startswith(word + " "):
            raise RuntimeError(f"idle clients: expected {word!r}, got {line!r}")
        return line.split()[1]

    async def still_open(self) -> int:
        assert self._process.stdin is not None
        self._process.stdin.write(b"count\n")
        await self._process.stdin.drain()
        return int(await self._answer(self._process, "open"))

    async def close(self) -> None:
        await self._end(self._process)

    @staticmethod
    async def _end(process: asyncio.subprocess.Process) -> None:
        if process.stdin is not None:
            process.stdin.close()
        try:
            async with asyncio.timeout(60):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


async def idle_scale(target: Target, sizes: Sizes, reps: int) -> AsyncIterator[Row]:
    """Workload 6: thousands of idle connections; memory, ZeroMQ sockets, one more client.

    The extra client is measured twice: on a kernel shared with its share of the idle
    connections (each execute's iopub goes to all of them), and on a kernel of its own.
    """
    kernel_ids = await start_kernels(target, sizes.idle_kernels, sizes)
    tree = target.tree
    own_kernel = await target.start_kernel() if tree is not None else None
    for _ in range(reps):
        row: Row = {}
        idle: IdleClients | None = None
        try:
            if tree is not None:
                rss_before, fds_before, zmq_before = await _snapshot(tree)
                idle = await IdleClients.open(target, kernel_ids, sizes)
                rss_after, fds_after, zmq_after = await _snapshot(tree)
                per_connection = (rss_after - rss_before) / max(idle.opened, 1) / 1024
                row |= {
                    # open now: a gateway may accept the handshake, then close (jkg does
                    # when it runs out of ZeroMQ sockets)
                    "opened": await idle.still_open(),
                    "rss_per_conn_kib": per_connection,
                    "zmq_before": zmq_before,
                    "zmq_after": zmq_after,
                    "fds_before": fds_before,
                    "fds_after": fds_after,
                }
            row |= await _probe(target, kernel_ids[0], sizes, "rtt")
            if own_kernel is not None:
                row |= await _probe(target, own_kernel, sizes, "rtt_own")
        finally:
            if idle is not None:
                await idle.close()
        yield row
