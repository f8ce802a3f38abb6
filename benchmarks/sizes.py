"""How big each workload is: the full run, and the smoke run that only checks it all works."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    """Counts and sizes of every workload, and how long one repetition may take."""

    executes: int = 500  # 1, 3: sequential `pass` round trips
    warmup: int = 20  # round trips before measuring, not counted
    lines: int = 20_000  # 2, 3: flushed prints
    chunks: int = 50  # 2, 3: chunks of chunk_bytes
    chunk_bytes: int = MiB
    buffers: int = 50  # 3: display_data messages, each with one binary buffer
    buffer_bytes: int = MiB
    fanout_clients: int = 50  # 4
    fanout_lines: int = 1_000
    fanout_chunks: int = 10  # of chunk_bytes
    many_kernels: int = 40  # 5
    many_executes: int = 100  # per kernel
    idle_kernels: int = 20  # 6
    idle_connections: int = 2_000
    idle_executes: int = 200  # round trips of the one extra client
    kernel_starts: int = 6  # 7, 8: kernels started one after another per repetition
    start_concurrency: int = 4  # kernels started at once when a workload needs many
    timeout: float = 300.0  # seconds one repetition may take


FULL = Sizes()

SMOKE = Sizes(
    executes=20,
    warmup=2,
    lines=200,
    chunks=2,
    buffers=2,
    fanout_clients=3,
    fanout_lines=50,
    fanout_chunks=1,
    many_kernels=2,
    many_executes=5,
    idle_kernels=2,
    idle_connections=20,
    idle_executes=10,
    kernel_starts=1,
    timeout=60.0,
)
