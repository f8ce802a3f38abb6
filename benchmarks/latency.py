"""Workloads 1, 7 and 8: the execute round trip, and starting a kernel cold and from a pool."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Sequence

from benchmarks.client import Channels, round_trip
from benchmarks.sizes import Sizes
from benchmarks.targets import Target

Row = dict[str, float | None]


def percentile(values: Sequence[float], percent: float) -> float:
    """The nearest-rank percentile of ``values`` (which need not be sorted)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_row(
    seconds: Sequence[float], prefix: str = "rtt", percents: Sequence[int] = (50, 99)
) -> Row:
    """Percentiles of ``seconds`` in milliseconds, keyed ``<prefix>_p<percent>_ms``."""
    return {f"{prefix}_p{p}_ms": percentile(seconds, p) * 1e3 for p in percents}


async def measure_round_trips(channels: Channels, count: int, timeout: float) -> list[float]:
    """``count`` sequential `pass` executes on one connection; seconds each."""
    async with asyncio.timeout(timeout):
        return [await round_trip(channels) for _ in range(count)]


async def execute_round_trip(target: Target, sizes: Sizes, reps: int) -> AsyncIterator[Row]:
    """Workload 1: sequential `pass` executes over one connection in the JSON format."""
    kernel_id = await target.start_kernel()
    channels = await target.connect(kernel_id)
    try:
        await measure_round_trips(channels, sizes.warmup, sizes.timeout)
        for _ in range(reps):
            yield await timed_round_trips(target, channels, sizes.executes, sizes.timeout)
    finally:
        await channels.close()


async def timed_round_trips(
    target: Target, channels: Channels, count: int, timeout: float, prefix: str = "rtt"
) -> Row:
    """Round trip percentiles, and the gateway's CPU time per execute (none for the floor)."""
    tree = target.tree
    cpu_before = tree.cpu_seconds() if tree else 0.0
    row = latency_row(await measure_round_trips(channels, count, timeout), prefix)
    row[f"{prefix}_gateway_cpu_ms"] = (
        (tree.cpu_seconds() - cpu_before) / count * 1e3 if tree else None
    )
    return row


async def kernel_start(target: Target, sizes: Sizes, reps: int) -> AsyncIterator[Row]:
    """Workload 7: a new kernel process from the request until its kernel_info_reply."""
    async for row in _kernel_starts(target, sizes, reps, warm=False):
        yield row


async def pooled_kernel_start(target: Target, sizes: Sizes, reps: int) -> AsyncIterator[Row]:
    """Workload 8: the same request on a gateway told to keep kernels prespawned, each
    repetition once its pool is full again."""
    async for row in _kernel_starts(target, sizes, reps, warm=True):
        yield row


async def _kernel_starts(target: Target, sizes: Sizes, reps: int, warm: bool) -> AsyncIterator[Row]:
    for _ in range(reps):
        ready: list[float] = []
        posted: list[float] = []
        async with asyncio.timeout(sizes.timeout):
            for _ in range(sizes.kernel_starts):
                start = target.warm_start() if warm else target.cold_start()
                kernel_id, seconds = await start
                await target.shutdown_kernel(kernel_id)
                ready.append(seconds["ready"])
                if "post" in seconds:
                    posted.append(seconds["post"])
        row = latency_row(ready, "ready", (50, 95))
        # The floor has no POST: its kernel is started in-process.
        row.update(latency_row(posted, "post", (50, 95)) if posted else {"post_p50_ms": None})
        yield row
