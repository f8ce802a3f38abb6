"""Workloads 2-4: output streams, binary buffers and fan-out, every message counted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from benchmarks.client import Channels, Message, collect, execute_content
from benchmarks.latency import latency_row, measure_round_trips
from benchmarks.processes import ProcessTree
from benchmarks.sizes import Sizes
from benchmarks.targets import Target

Row = dict[str, float | None]
MB = 1e6


def lines_code(count: int) -> str:
    """Short lines, one write and one flush each: exactly one stream message per line.

    (``print(i, flush=True)`` writes the number and the newline separately, and ipykernel's
    flush timer sometimes sends them as two messages.)
    """
    return (
        "import sys\n"
        f"for _i in range({count}):\n"
        "    sys.stdout.write('%d\\n' % _i)\n"
        "    sys.stdout.flush()\n"
    )


def chunks_code(count: int, size: int) -> str:
    return (
        "import sys\n"
        f"_chunk = 'x' * {size}\n"
        f"for _ in range({count}):\n"
        "    sys.stdout.write(_chunk)\n"
        "    sys.stdout.flush()\n"
    )


def buffers_code(count: int, size: int) -> str:
    """display_data messages with one binary buffer each, sent by the kernel's own Session."""
    return (
        "_k = get_ipython().kernel\n"
        f"_pattern = bytes(range(256)) * ({size} // 256 + 2)\n"
        f"for _i in range({count}):\n"
        "    _k.session.send(_k.iopub_socket, 'display_data',\n"
        "        {'data': {'text/plain': 'buffer %d' % _i}, 'metadata': {}, 'transient': {}},\n"
        "        parent=_k.get_parent(), ident=b'display_data',\n"
        f"        buffers=[_pattern[_i % 256:_i % 256 + {size}]])\n"
    )


def expected_buffer(index: int, size: int) -> bytes:
    pattern = bytes(range(256)) * (size // 256 + 2)
    return pattern[index % 256 : index % 256 + size]


@dataclass
class Tally:
    """What one client received of one execute's output."""

    messages: int = 0  # stdout stream messages, or intact display_data buffers
    bytes: int = 0  # their payload (text as UTF-8, or buffer bytes)
    notices: int = 0  # stderr stream messages (jupyter_server's rate-limit warnings)
    broken: int = 0  # display_data whose buffers did not arrive intact
    buffer_size: int = 0
    text: list[str] | None = None  # stdout text, kept when lines are checked one by one

    def __call__(self, message: Message) -> None:
        msg_type = message["msg_type"]
        content = message["content"]
        if msg_type == "stream":
            if content.get("name") == "stdout":
                self.messages += 1
                self.bytes += len(content["text"].encode("utf-8"))
                if self.text is not None:
                    self.text.append(content["text"])
            else:
                self.notices += 1
        elif msg_type == "display_data":
            self._check_buffers(message)

    def _check_buffers(self, message: Message) -> None:
        text = message["content"].get("data", {}).get("text/plain", "")
        buffers = message.get("buffers") or []
        try:
            index = int(text.split()[-1])
        except (ValueError, IndexError):
            self.broken += 1
            return
        if len(buffers) == 1 and bytes(buffers[0]) == expected_buffer(index, self.buffer_size):
            self.messages += 1
            self.bytes += len(buffers[0])
        else:
            self.broken += 1


def intact_lines(texts: list[str], count: int) -> int:
    """How many of the lines 0, 1, ... count-1 arrived, in order, before the first wrong one.

    Lines are counted rather than messages: ipykernel sometimes sends two flushed writes in
    one stream message (more often on a busy machine), whoever relays them.
    """
    received = "".join(texts).split("\n")
    intact = 0
    for expected, line in zip(range(count), received, strict=False):
        if line != str(expected):
            break
        intact += 1
    return intact


async def run_output(
    channels: Channels, code: str, tally: Tally, timeout: float, tree: ProcessTree | None
) -> tuple[float, float | None]:
    """Execute ``code`` and count its output.

    Returns the seconds from sending to having the reply and idle status, and the gateway's
    CPU seconds meanwhile (None for the floor).
    """
    cpu_before = tree.cpu_seconds() if tree else 0.0
    async with asyncio.timeout(timeout):
        start = time.perf_counter()
        msg_id = await channels.send("execute_request", execute_content(code))
        await collect(channels, msg_id, tally)
        elapsed = time.perf_counter() - start
    return elapsed, (tree.cpu_seconds() - cpu_before if tree else None)


async def measure_streams(channels: Channels, sizes: Sizes, tree: ProcessTree | None) -> Row:
    """One repetition of the streams: 20,000 flushed lines, then 50 MB in 1 MB chunks."""
    expected_line_bytes = sum(len(f"{i}\n") for i in range(sizes.lines))
    lines = Tally(text=[])
    code = lines_code(sizes.lines)
    elapsed, lines_cpu = await run_output(channels, code, lines, sizes.timeout, tree)
    intact = intact_lines(lines.text or [], sizes.lines)
    chunks = Tally()
    code = chunks_code(sizes.chunks, sizes.chunk_bytes)
    chunk_elapsed, chunks_cpu = await run_output(channels, code, chunks, sizes.timeout, tree)
    return {
        "lines_gateway_cpu_s": lines_cpu,
        "chunks_gateway_cpu_s": chunks_cpu,
        "lines_msgs_s": intact / elapsed,
        "lines_delivered": intact,
        "lines_complete": float(intact == sizes.lines and lines.bytes == expected_line_bytes),
        "chunks_mb_s": chunks.bytes / MB / chunk_elapsed,
        "chunks_delivered": chunks.messages,
        "chunks_delivered_mb": chunks.bytes / MB,
        "chunks_complete": float(
            chunks.messages == sizes.chunks and chunks.bytes == sizes.chunks * sizes.chunk_bytes
        ),
        "notices": lines.notices + chunks.notices,
    }


async def measure_buffers(channels: Channels, sizes: Sizes, tree: ProcessTree | None) -> Row:
    """One repetition of display_data messages carrying one binary buffer each."""
    buffers = Tally(buffer_size=sizes.buffer_bytes)
    code = buffers_code(sizes.buffers, sizes.buffer_bytes)
    elapsed, cpu = await run_output(channels, code, buffers, sizes.timeout, tree)
    return {
        "buffers_gateway_cpu_s": cpu,
        "buffers_mb_s": buffers.bytes / MB / elapsed,
        "buffers_intact": buffers.messages,
        "buffers_complete": float(buffers.messages == sizes.buffers),
    }


async def output_streams(target: Target, sizes: Sizes, reps: int) -> AsyncIterator[Row]:
    """Workload 2: output streams in the legacy JSON format."""
    kernel_id = await target.start_kernel()
    channels = await target.connect(kernel_id)
    try:
        for _ in range(reps):
            yield await measure_streams(channels, sizes, target.tree)
    finally:
        await channels.close()


async def binary_protocol(target: Target, sizes: Sizes, reps: int) -> AsyncIterator[Row]:
    """Workload 3: round trips and streams over the v1 subprotocol, plus binary buffers."""
    kernel_id = await target.start_kernel()
    channels = await target.connect(kernel_id, v1=True)
    try:
        await measure_round_trips(channels, sizes.warmup, sizes.timeout)
        for _ in range(reps):
            times = await measure_round_trips(channels, sizes.executes, sizes.timeout)
            row = latency_row(times)
            row.update(await measure_streams(channels, sizes, target.tree))
            row.update(await measure_buffers(channels, sizes, target.tree))
            yield row
    finally:
        await channels.close()


async def fan_out(target: Target, sizes: Sizes, reps: int) -> AsyncIterator[Row]:
    """Workload 4: one kernel's output to many clients; every client must get all of it."""
    kernel_id = await target.start_kernel()
    clients = [await target.connect(kernel_id) for _ in range(sizes.fanout_clients)]
    code = lines_code(sizes.fanout_lines) + chunks_code(sizes.fanout_chunks, sizes.chunk_bytes)
    expected_messages = sizes.fanout_lines + sizes.fanout_chunks
    expected_bytes = sum(len(f"{i}\n") for i in range(sizes.fanout_lines))
    expected_bytes += sizes.fanout_chunks * sizes.chunk_bytes
    try:
        for _ in range(reps):
            tallies = [Tally() for _ in clients]
            tree = target.tree
            cpu_before = tree.cpu_seconds() if tree else 0.0
            async with asyncio.timeout(sizes.timeout):
                start = time.perf_counter()
                msg_id = await clients[0].send("execute_request", execute_content(code))
                await asyncio.gather(
                    *(
                        collect(c, msg_id, t, "execute_reply" if i == 0 else None)
                        for i, (c, t) in enumerate(zip(clients, tallies, strict=True))
                    )
                )
                elapsed = time.perf_counter() - start
            cpu = tree.cpu_seconds() - cpu_before if tree else None
            complete = sum(
                t.messages == expected_messages and t.bytes == expected_bytes for t in tallies
            )
            yield {
                "aggregate_mb_s": sum(t.bytes for t in tallies) / MB / elapsed,
                "aggregate_msgs_s": sum(t.messages for t in tallies) / elapsed,
                "min_delivered": min(t.messages for t in tallies),
                "clients_complete": complete,
                "gateway_cpu_s": cpu,
                "gateway_cpu_pct": None if cpu is None else 100 * cpu / elapsed,
            }
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
