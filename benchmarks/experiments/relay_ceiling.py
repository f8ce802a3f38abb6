"""Ceiling of the simplest possible Python relay for stream output (1 MiB chunks or short lines).

The stream target says a gateway delivers >= 90 % of the MB/s of a direct ZeroMQ client. This
script measures, in one run and alternating, that floor (jupyter_client reading iopub itself)
and relays far simpler than any gateway: one extra Python process that reads the kernel's
iopub with pyzmq, optionally checks the HMAC signature, and forwards the frames length-prefixed
over loopback TCP (or as one websocket binary frame) to a client that json-decodes them. If even
these stay below 90 % of the floor, no Python relay process can reach the target on this machine.

Two workloads (``--workload``): ``chunks`` (default: 50 x 1 MiB stdout chunks, MB/s) and
``lines`` (20,000 short lines, one write + flush each, as benchmarks/streams.py; lines/s counted
intact and in order).

Run from the repository root: ``python benchmarks/experiments/relay_ceiling.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

import psutil
import zmq

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.client import execute_content
from benchmarks.environment import KERNEL_NAME, install_kernelspec
from benchmarks.streams import chunks_code, intact_lines, lines_code

MB = 1e6
MIB = 1 << 20
DELIM = b"<IDS|MSG>"
CH_SHELL, CH_IOPUB = 0, 1
RUN_TIMEOUT = 300.0


# --------------------------------------------------------------------------------------------
# Wire format between relay and client: !BH (channel, frame count), !I per frame, the frames.


def pack_header(channel: int, frames: Sequence[memoryview | bytes]) -> bytes:
    return struct.pack(f"!BH{len(frames)}I", channel, len(frames), *(len(f) for f in frames))


def split_frames(body: memoryview, lengths: Sequence[int]) -> list[memoryview]:
    frames, pos = [], 0
    for length in lengths:
        frames.append(body[pos : pos + length])
        pos += length
    return frames


def unpack_message(data: bytes) -> tuple[int, list[memoryview]]:
    """One websocket message: header and frames joined."""
    channel, count = struct.unpack_from("!BH", data)
    lengths = struct.unpack_from(f"!{count}I", data, 3)
    return channel, split_frames(memoryview(data)[3 + 4 * count :], lengths)


def delimiter_index(frames: Sequence[memoryview | bytes]) -> int:
    for index, frame in enumerate(frames):
        if len(frame) == len(DELIM) and bytes(frame) == DELIM:
            return index
    raise ValueError("no <IDS|MSG> delimiter")


def signature_ok(mac: Any, frames: Sequence[memoryview | bytes]) -> bool:
    i = delimiter_index(frames)
    digest = mac.copy()
    for frame in frames[i + 2 : i + 6]:
        digest.update(frame)
    return hmac.compare_digest(digest.hexdigest().encode(), bytes(frames[i + 1]))


def json_loads(frame: memoryview) -> Any:
    return json.loads(str(frame, "utf-8"))


def orjson_loads(frame: memoryview) -> Any:
    import orjson  # what jupyter_client's Session (the floor) uses when it is installed

    return orjson.loads(frame)


DECODERS: dict[str, Callable[[memoryview], Any]] = {"json": json_loads, "orjson": orjson_loads}


def decode(
    frames: Sequence[memoryview], loads: Callable[[memoryview], Any]
) -> tuple[str, str | None, dict[str, Any]]:
    """What a gateway's websocket client does: json-decode header, parent and content."""
    i = delimiter_index(frames)
    header = loads(frames[i + 2])
    parent = loads(frames[i + 3])
    content = loads(frames[i + 5])
    return header["msg_type"], parent.get("msg_id"), content


# --------------------------------------------------------------------------------------------
# The relay process (this file run with --relay).


def zmq_url(conn: dict[str, Any], channel: str) -> str:
    return f"{conn['transport']}://{conn['ip']}:{conn[channel + '_port']}"


def kernel_sockets(ctx: zmq.Context[Any], conn: dict[str, Any]) -> tuple[Any, Any]:
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(zmq_url(conn, "iopub"))
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(zmq_url(conn, "shell"))
    return sub, dealer


def send_buffers(sock: socket.socket, buffers: list[memoryview | bytes]) -> None:
    """sendall for a scatter list: no join, no copy of the 1 MiB frame."""
    views = [memoryview(b) for b in buffers]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views.pop(0))
        if sent:
            views[0] = views[0][sent:]


def recv_exact(sock: socket.socket, size: int) -> bytes | None:
    buffer = bytearray(size)
    view, pos = memoryview(buffer), 0
    while pos < size:
        got = sock.recv_into(view[pos:])
        if not got:
            return None
        pos += got
    return bytes(buffer)


def tcp_relay(conn: dict[str, Any], check: bool) -> None:
    """Blocking loop: zmq.Poller over iopub SUB, shell DEALER and the client's TCP socket."""
    mac = hmac.new(conn["key"].encode(), digestmod=sha256)
    ctx = zmq.Context()
    sub, dealer = kernel_sockets(ctx, conn)
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    client, _ = listener.accept()
    listener.close()
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    poller.register(dealer, zmq.POLLIN)
    poller.register(client.fileno(), zmq.POLLIN)
    channels = {sub: CH_IOPUB, dealer: CH_SHELL}
    while True:
        for item, _ in poller.poll():
            if item in channels:
                while True:
                    try:
                        parts = item.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    frames = [part.buffer for part in parts]
                    if check and not signature_ok(mac, frames):
                        print("relay: bad signature, dropped", file=sys.stderr)
                        continue
                    send_buffers(client, [pack_header(channels[item], frames), *frames])
            else:
                head = recv_exact(client, 3)
                if head is None:
                    return
                _, count = struct.unpack("!BH", head)
                lengths = struct.unpack(f"!{count}I", recv_exact(client, 4 * count) or b"")
                body = recv_exact(client, sum(lengths))
                if body is None:
                    return
                dealer.send_multipart(split_frames(memoryview(body), lengths))


async def ws_relay(conn: dict[str, Any], check: bool) -> None:
    """asyncio: zmq.asyncio sockets and a websockets server, one binary frame per message."""
    import zmq.asyncio
    from websockets.asyncio.server import ServerConnection, serve

    mac = hmac.new(conn["key"].encode(), digestmod=sha256)
    ctx = zmq.asyncio.Context()
    sub, dealer = kernel_sockets(ctx, conn)

    async def handler(ws: ServerConnection) -> None:
        async def pump(sock: Any, channel: int) -> None:
            while True:
                parts = await sock.recv_multipart(copy=False)
                frames = [part.buffer for part in parts]
                if check and not signature_ok(mac, frames):
                    print("relay: bad signature, dropped", file=sys.stderr)
                    continue
                await ws.send(b"".join([pack_header(channel, frames), *frames]))

        tasks = [asyncio.create_task(pump(sub, CH_IOPUB)), asyncio.create_task(pump(dealer, 0))]
        try:
            async for message in ws:
                assert isinstance(message, bytes)
                await dealer.send_multipart(unpack_message(message)[1])
        finally:
            for task in tasks:
                task.cancel()

    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"PORT {port}", flush=True)
        await server.serve_forever()


def relay_main(mode: str, connection_file: str) -> None:
    conn = json.loads(Path(connection_file).read_text())
    if mode == "ws":
        asyncio.run(ws_relay(conn, check=True))
    else:
        tcp_relay(conn, check=(mode == "check"))


# --------------------------------------------------------------------------------------------
# Benchmark side.


@dataclass
class Run:
    rate: float  # the workload's unit (MB or lines) per second, execute_request -> last unit
    wall: float  # send of execute_request -> idle
    messages: int
    cpu: dict[str, float]  # process -> user+system seconds during the run


@dataclass
class Target:
    name: str
    description: str
    execute: Callable[[str, Tally], Awaitable[float]]  # runs code into the tally; returns t0
    processes: dict[str, psutil.Process]
    runs: list[Run] = field(default_factory=list)
    close: Callable[[], Awaitable[None]] | None = None


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


class Tally:
    """One execute's stdout as a client received it; t_last is when the last expected unit came."""

    unit = "MB"
    scale = MB  # received() / scale = units
    decimals = 1
    heading = "MB = 1e6 bytes; time from execute_request sent to the last stream msg"

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.chars = 0
        self.messages = 0
        self.t_last = 0.0

    def stream(self, text: str) -> None:
        self.chars += len(text)  # the text is ASCII: characters == UTF-8 bytes
        self.messages += 1
        if self.take(text) >= self.expected:
            self.t_last = time.perf_counter()

    def take(self, text: str) -> int:
        """Record one message's text; return how many units (bytes here) have arrived."""
        return self.chars

    def received(self) -> int:
        return self.chars

    def complete(self) -> bool:
        return self.chars == self.expected


class LineTally(Tally):
    """Short numbered lines; a stream message's text may hold several of them."""

    unit = "lines"
    scale = 1
    decimals = 0
    heading = "lines intact and in order; time from execute_request sent to the last line"

    def __init__(self, expected: int) -> None:
        super().__init__(expected)
        self.texts: list[str] = []
        self.newlines = 0

    def take(self, text: str) -> int:
        self.texts.append(text)
        self.newlines += text.count("\n")
        return self.newlines

    def received(self) -> int:
        """Lines 0 .. expected-1 intact and in order, counted as benchmarks/streams.py does."""
        return intact_lines(self.texts, self.expected)

    def complete(self) -> bool:
        expected_chars = sum(len(f"{i}\n") for i in range(self.expected))
        return self.received() == self.expected and self.chars == expected_chars


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    tally: type[Tally]
    code: str
    expected: int  # in the tally's units before scaling: bytes or lines
    warmup_code: str  # the first execute imports things; not measured
    warmup_expected: int


def make_workload(args: argparse.Namespace) -> Workload:
    if args.workload == "lines":
        return Workload(
            "lines",
            f"{args.lines} short stdout lines, one write + flush each",
            LineTally,
            lines_code(args.lines),
            args.lines,
            lines_code(100),
            100,
        )
    return Workload(
        "chunks",
        f"{args.chunks} x {args.chunk_size} byte stdout chunks",
        Tally,
        chunks_code(args.chunks, args.chunk_size),
        args.chunks * args.chunk_size,
        chunks_code(3, args.chunk_size),
        3 * args.chunk_size,
    )


async def start_kernel(cleanups: list[Callable[[], Awaitable[None]]]) -> Any:
    from jupyter_client.manager import AsyncKernelManager

    km = AsyncKernelManager(kernel_name=KERNEL_NAME)
    await km.start_kernel(stderr=subprocess.DEVNULL)  # its 'TCP without encryption' warning

    async def stop() -> None:
        with contextlib.suppress(Exception):
            await km.shutdown_kernel(now=True)

    cleanups.append(stop)
    return km


def kernel_process(km: Any) -> psutil.Process:
    return psutil.Process(km.provisioner.process.pid)


async def floor_target(cleanups: list[Callable[[], Awaitable[None]]]) -> Target:
    km = await start_kernel(cleanups)
    kc = km.client()
    kc.start_channels()

    async def stop_channels() -> None:
        kc.stop_channels()

    cleanups.append(stop_channels)
    # Until iopub is subscribed: a kernel_info_request's busy status must come back.
    while True:
        kc.kernel_info()
        try:
            await kc.get_iopub_msg(timeout=0.5)
            break
        except Exception:
            continue

    async def execute(code: str, tally: Tally) -> float:
        t0 = time.perf_counter()
        msg_id = kc.execute(code, store_history=False)
        while True:
            msg = await kc.get_iopub_msg(timeout=RUN_TIMEOUT)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            msg_type = msg["msg_type"]
            if msg_type == "stream" and msg["content"]["name"] == "stdout":
                tally.stream(msg["content"]["text"])
            elif msg_type == "status" and msg["content"]["execution_state"] == "idle":
                break
        return t0

    processes = {"kernel": kernel_process(km), "client": psutil.Process()}
    return Target("floor", "jupyter_client direct (Session deserialize, HMAC)", execute, processes)


async def spawn_relay(
    mode: str, km: Any, cleanups: list[Callable[[], Awaitable[None]]]
) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--relay", mode, km.connection_file],
        stdout=subprocess.PIPE,
    )

    async def kill() -> None:
        with contextlib.suppress(Exception):
            proc.kill()
        with contextlib.suppress(Exception):
            proc.wait(timeout=10)

    cleanups.append(kill)
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
    if not line.startswith(b"PORT "):
        raise RuntimeError(f"relay {mode} did not start: {line!r}")
    return proc, int(line.split()[1])


async def relay_target(
    mode: str,
    name: str,
    description: str,
    cleanups: list[Callable[[], Awaitable[None]]],
    loads: Callable[[memoryview], Any],
) -> Target:
    from jupyter_client.session import Session

    km = await start_kernel(cleanups)
    proc, port = await spawn_relay(mode, km, cleanups)
    session = Session(key=km.session.key, signature_scheme="hmac-sha256")

    if mode == "ws":
        from websockets.asyncio.client import connect

        ws = await connect(
            f"ws://127.0.0.1:{port}/", compression=None, max_size=None, open_timeout=30
        )

        async def close() -> None:
            await ws.close()

        async def send(frames: list[bytes]) -> None:
            await ws.send(b"".join([pack_header(CH_SHELL, frames), *frames]))

        async def receive() -> tuple[int, list[memoryview]]:
            data = await ws.recv()
            assert isinstance(data, bytes)
            return unpack_message(data)

    else:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=16 * MIB)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        async def close() -> None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

        async def send(frames: list[bytes]) -> None:
            writer.write(pack_header(CH_SHELL, frames) + b"".join(frames))
            await writer.drain()

        async def receive() -> tuple[int, list[memoryview]]:
            channel, count = struct.unpack("!BH", await reader.readexactly(3))
            lengths = struct.unpack(f"!{count}I", await reader.readexactly(4 * count))
            body = await reader.readexactly(sum(lengths))
            return channel, split_frames(memoryview(body), lengths)

    async def request(msg_type: str, content: dict[str, Any]) -> str:
        msg = session.msg(msg_type, content)
        await send(session.serialize(msg))
        return str(msg["header"]["msg_id"])

    # Until iopub is subscribed: some iopub message (kernel_info's busy) must come back.
    while True:
        await request("kernel_info_request", {})
        with contextlib.suppress(TimeoutError):
            while True:
                channel, _ = await asyncio.wait_for(receive(), 0.5)
                if channel == CH_IOPUB:
                    break
            break

    async def execute(code: str, tally: Tally) -> float:
        t0 = time.perf_counter()
        msg_id = await request("execute_request", execute_content(code))
        while True:
            channel, frames = await asyncio.wait_for(receive(), RUN_TIMEOUT)
            msg_type, parent_id, content = decode(frames, loads)
            if channel != CH_IOPUB or parent_id != msg_id:
                continue
            if msg_type == "stream" and content["name"] == "stdout":
                tally.stream(content["text"])
            elif msg_type == "status" and content["execution_state"] == "idle":
                break
        return t0

    processes = {
        "kernel": kernel_process(km),
        "relay": psutil.Process(proc.pid),
        "client": psutil.Process(),
    }
    return Target(name, description, execute, processes, close=close)


async def measure(target: Target, workload: Workload) -> Run:
    tally = workload.tally(workload.expected)
    before = {name: cpu_seconds(p) for name, p in target.processes.items()}
    t0 = await target.execute(workload.code, tally)
    t_idle = time.perf_counter()
    after = {name: cpu_seconds(p) for name, p in target.processes.items()}
    if not tally.complete():
        raise RuntimeError(
            f"{target.name}: got {tally.received()} {tally.unit} ({tally.chars} characters),"
            f" expected {workload.expected}"
        )
    cpu = {name: after[name] - before[name] for name in before}
    rate = tally.received() / tally.scale / (tally.t_last - t0)
    return Run(rate, t_idle - t0, tally.messages, cpu)


# --------------------------------------------------------------------------------------------
# Micro costs.


def per_call(fn: Callable[[], Any], repeat: int = 30) -> float:
    """Median seconds per call."""
    fn()
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def socketpair_cost(total_mib: int = 64) -> float:
    """Seconds per MiB to sendall 1 MiB and recv it on the other end (reader thread)."""
    a, b = socket.socketpair()
    payload = b"x" * MIB

    def reader() -> None:
        buffer = memoryview(bytearray(MIB))
        remaining = total_mib * MIB
        while remaining:
            remaining -= b.recv_into(buffer[: min(MIB, remaining)])

    samples = []
    for _ in range(5):
        thread = threading.Thread(target=reader)
        thread.start()
        t = time.perf_counter()
        for _ in range(total_mib):
            a.sendall(payload)
        thread.join()
        samples.append((time.perf_counter() - t) / total_mib)
    a.close()
    b.close()
    return statistics.median(samples)


def micro_costs() -> list[tuple[str, float]]:
    from jupyter_client.session import json_packer, json_unpacker

    data = b"x" * MIB
    mac = hmac.new(os.urandom(32).hex().encode(), digestmod=sha256)
    content = {"name": "stdout", "text": "x" * MIB}
    content_bytes = json.dumps(content).encode()
    content_str = content_bytes.decode()
    frames = [b"x" * MIB for _ in range(4)]

    def hmac_once() -> None:
        digest = mac.copy()
        digest.update(data)
        digest.hexdigest()

    return [
        ("hmac-sha256 over 1 MiB", per_call(hmac_once)),
        ("json.loads 1 MiB stream content (bytes)", per_call(lambda: json.loads(content_bytes))),
        ("json.loads 1 MiB stream content (str)", per_call(lambda: json.loads(content_str))),
        (
            "json.dumps 1 MiB stream content + encode",
            per_call(lambda: json.dumps(content).encode()),
        ),
        ("jupyter_client json_packer (kernel side)", per_call(lambda: json_packer(content))),
        ("jupyter_client json_unpacker", per_call(lambda: json_unpacker(content_bytes))),
        ("utf-8 decode 1 MiB", per_call(lambda: data.decode())),
        ("b''.join of 1 MiB frames (per MiB)", per_call(lambda: b"".join(frames)) / len(frames)),
        ("socketpair sendall+recv_into 1 MiB", socketpair_cost()),
    ]


# --------------------------------------------------------------------------------------------


def fmt_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(
        c.ljust(w) if i == 0 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def report(targets: list[Target], workload: Workload) -> None:
    floor = targets[0]
    floor_median = statistics.median(r.rate for r in floor.runs)
    unit, decimals = workload.tally.unit, workload.tally.decimals
    print(f"\nThroughput ({workload.tally.heading})")
    widths = [22, max(9, len(unit) + 6), 17, 7, 10, 7]
    print(fmt_row(["target", f"{unit}/s med", "min-max", "ratio", "paired", "msgs"], widths))
    for target in targets:
        values = [r.rate for r in target.runs]
        median = statistics.median(values)
        paired = statistics.median(
            r.rate / f.rate for r, f in zip(target.runs, floor.runs, strict=True)
        )
        print(
            fmt_row(
                [
                    target.name,
                    f"{median:.{decimals}f}",
                    f"{min(values):.{decimals}f}-{max(values):.{decimals}f}",
                    f"{median / floor_median:.2f}",
                    f"{paired:.2f}",
                    f"{statistics.median(r.messages for r in target.runs):.0f}",
                ],
                widths,
            )
        )
    print("(ratio = median / floor median; paired = median of per-repetition target/floor)")
    print("\nCPU seconds per run (user+system, median), and as % of the run's wall time")
    widths = [22, 8, 16, 16, 16, 16]
    print(fmt_row(["target", "wall s", "kernel", "relay", "client", "total"], widths))
    for target in targets:
        wall = statistics.median(r.wall for r in target.runs)
        cells = [target.name, f"{wall:.3f}"]
        for name in ("kernel", "relay", "client"):
            if name in target.processes:
                cpu = statistics.median(r.cpu[name] for r in target.runs)
                cells.append(f"{cpu:.3f} s ({100 * cpu / wall:.0f}%)")
            else:
                cells.append("-")
        total = statistics.median(sum(r.cpu.values()) for r in target.runs)
        cells.append(f"{total:.3f} s ({100 * total / wall:.0f}%)")
        print(fmt_row(cells, widths))
    print("(kernel = ipykernel process incl. its IOPub thread; client = this benchmark process;")
    print(" 200% = both cores busy; /proc CPU times have 10 ms resolution)")
    if unit != "MB":
        print(f"(msgs = median stdout stream messages; ipykernel may put several {unit} in one)")


async def main_async(args: argparse.Namespace, workload: Workload) -> None:
    loads = DECODERS[args.decoder]
    spec_root = install_kernelspec()
    cleanups: list[Callable[[], Awaitable[None]]] = []
    targets: list[Target] = []
    try:
        targets.append(await floor_target(cleanups))
        targets.append(
            await relay_target(
                "check", "relay tcp + hmac", "relay process, HMAC checked, TCP", cleanups, loads
            )
        )
        targets.append(
            await relay_target(
                "nocheck", "relay tcp, no hmac", "relay process, no HMAC, TCP", cleanups, loads
            )
        )
        if not args.no_ws:
            targets.append(
                await relay_target(
                    "ws",
                    "relay websocket + hmac",
                    "relay process, HMAC, websockets",
                    cleanups,
                    loads,
                )
            )
        for target in targets:
            if target.close is not None:
                cleanups.append(target.close)
        pids = sorted(p.pid for t in targets for n, p in t.processes.items() if n != "client")
        print(f"started processes (kernel/relay pids): {pids}")
        for target in targets:  # first execute imports things; not measured
            await target.execute(workload.warmup_code, workload.tally(workload.warmup_expected))
        print(f"\n{args.reps} repetitions x {len(targets)} targets, order rotated each repetition")
        for rep in range(args.reps):
            order = targets[rep % len(targets) :] + targets[: rep % len(targets)]
            line = []
            for target in order:
                run = await measure(target, workload)
                target.runs.append(run)
                line.append(f"{target.name}={run.rate:.{workload.tally.decimals}f}")
            print(f"  rep {rep + 1}: " + ", ".join(line), flush=True)
        report(targets, workload)
    finally:
        for cleanup in reversed(cleanups):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(cleanup(), 30)
        shutil.rmtree(spec_root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("chunks", "lines"), default="chunks")
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--chunk-size", type=int, default=MIB)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--no-ws", action="store_true")
    parser.add_argument(
        "--no-micro", action="store_true", help="skip the per-MiB micro costs (chunks only)"
    )
    parser.add_argument(
        "--decoder",
        choices=sorted(DECODERS),
        default="json",
        help="how the relay's client decodes frames (the floor always uses its Session)",
    )
    parser.add_argument("--relay", nargs=2, metavar=("MODE", "CONNECTION_FILE"))
    args = parser.parse_args()
    if args.relay:
        with contextlib.suppress(KeyboardInterrupt):
            relay_main(*args.relay)
        return
    workload = make_workload(args)
    print(f"relay_ceiling --workload {workload.name}  {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"nproc {os.cpu_count()}, python {sys.version.split()[0]}, pyzmq {zmq.__version__}")
    print(f"loadavg before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"workload: {workload.name}: {workload.description}, {args.reps} reps")
    print(f"relay clients decode with {args.decoder}; the floor with jupyter_client's Session")
    asyncio.run(main_async(args, workload))
    if workload.name == "chunks" and not args.no_micro:
        print("\nMicro costs on this machine (median; ms per MiB, and MB/s if that were all)")
        for name, seconds in micro_costs():
            print(f"  {name:<42} {seconds * 1e3:7.3f} ms  ({MIB / MB / seconds:8.0f} MB/s)")
    print(f"\nloadavg after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
