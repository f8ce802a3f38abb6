"""Workload 6's idle connections, held by a process of their own.

Idle clients are other programs, usually on other machines: the benchmark process that
measures one more client's round trip must not also read what the gateway sends to
thousands of others. This process opens the connections, reads and drops every frame they
get (undecoded: no client-side parsing cost beyond the websocket itself), and answers the
benchmark on stdin/stdout:

    python -m benchmarks.idle_clients WS_BASE_URL COUNT TIMEOUT KERNEL_ID...

It prints ``opened N`` once every connection has been tried, ``open N`` (those still open)
for each ``count`` line it reads, and closes them all and exits at the end of its stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

from websockets.asyncio.client import ClientConnection, connect

from benchmarks.scale import OPEN_CONCURRENCY, bounded


async def open_one(url: str, timeout: float) -> ClientConnection | None:
    try:
        return await connect(
            url, max_size=None, compression=None, ping_interval=None, open_timeout=timeout
        )
    except Exception:
        return None


async def drain(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        while True:
            await ws.recv(decode=False)


async def main(base: str, count: int, timeout: float, kernel_ids: list[str]) -> None:
    urls = [f"{base}api/kernels/{kernel_ids[i % len(kernel_ids)]}/channels" for i in range(count)]
    jobs = [lambda url=url: open_one(url, timeout) for url in urls]
    opened = [ws for ws in await bounded(OPEN_CONCURRENCY, jobs) if ws is not None]
    drains = [asyncio.ensure_future(drain(ws)) for ws in opened]
    print(f"opened {len(opened)}", flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        if line.strip() == "count":
            print(f"open {sum(not d.done() for d in drains)}", flush=True)
    for task in drains:
        task.cancel()
    closes = [lambda ws=ws: ws.close() for ws in opened]
    await bounded(OPEN_CONCURRENCY, closes)


if __name__ == "__main__":
    base_url, connections, seconds, *kernels = sys.argv[1:]
    asyncio.run(main(base_url, int(connections), float(seconds), kernels))
