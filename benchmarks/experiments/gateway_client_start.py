"""Kernel start as a notebook server sees it: jupyter_server's GatewayClient on three gateways.

Times ``POST /api/kernels`` on a real ``jupyter_server --gateway-url=<gateway>`` until the
``kernel_info_reply`` to a ``kernel_info_request`` sent on jupyter_server's websocket
``/api/kernels/{id}/channels`` (JSON text frames); each kernel is then deleted through
jupyter_server. Back ends, each behind a fresh jupyter_server, all on one kernelspec (this
interpreter's ipykernel): ``kgw env pool`` (``--env-pool python3=1``: jupyter_server always
sends an ``env``, here with ``KERNEL_USERNAME=bench``; every start waits until the pool is full
again), ``kgw cold`` (no pool) and ``jkg`` (jupyter_kernel_gateway 3 in its own virtualenv).
The three stacks run side by side and the order of the back ends rotates every round; the
first round is a warm-up, not counted. Reports p50 and p95 of POST -> kernel_info_reply and of
the POST alone, and the ratios of the p50s.

Run from the repository root: ``python benchmarks/experiments/gateway_client_start.py``
(``--starts 10`` by default; writes gateway_client_start.txt beside this file). ``--smoke``
runs one start per back end and writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import connect

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.environment import KERNEL_NAME, install_kernelspec, jkg_executable, machine_info
from benchmarks.processes import GatewayProcess, kill_everything_spawned

TIMEOUT = 120.0
RESULTS = Path(__file__).with_suffix(".txt")
KGW_READY = re.compile(r"kernelgateway listening on (http://\S+)")
JKG_READY = re.compile(r"is available at (http://\S+?)/?$", re.MULTILINE)
POOLED = re.compile(r"env pool: kernel \S+ \(\S+\) ready")
HANDED_OUT = re.compile(r"kernel \S+ \(\S+\) handed out from the env pool")
SERVER_URL = re.compile(r"(http://127\.0\.0\.1:\d+/)\?token=")
# jupyter_server logs its URL before it listens; the first line logged from inside its IO loop
# (at debug level) is an extension starting (as in tests/integration/test_jupyter_server.py).
SERVER_LISTENING = re.compile(r"jupyter_server_terminals \| extension was successfully started")
KGW = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "--nodaemon"]
KGW += ["--pidfile=", "--logfile=-", "kernelgateway", "--listen", "tcp:0:interface=127.0.0.1"]
KGW += ["--list-kernels"]


@dataclass
class Backend:
    name: str
    command: list[str]
    env: dict[str, str]
    ready: re.Pattern[str]
    pool: int = 0  # kernels kept in kgw's env pool
    gateway: GatewayProcess | None = None
    server: GatewayProcess | None = None
    url: str = ""  # jupyter_server's
    token: str = ""
    starts: int = 0  # warm-up included: the pool's log lines count them all
    samples: list[dict[str, float]] = field(default_factory=list)  # seconds: post, open, reply


async def request(method: str, url: str, token: str = "", body: Any = None) -> tuple[int, bytes]:
    """One HTTP request (a new loopback connection) in a thread: status and body."""

    def call() -> tuple[int, bytes]:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=TIMEOUT)
        headers = {"Authorization": f"token {token}"} if token else {}
        data = None if body is None else json.dumps(body).encode()
        try:
            conn.request(method, parts.path, data, {"Content-Type": "application/json", **headers})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    return await asyncio.to_thread(call)


async def wait_until(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``check`` (backing off from 10 ms to 200 ms) until it is true; fail after TIMEOUT."""
    deadline, delay = time.monotonic() + TIMEOUT, 0.01
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(delay)
        delay = min(2 * delay, 0.2)


async def answers(url: str) -> bool:
    try:
        return (await request("GET", url))[0] == 200
    except OSError:
        return False


async def start_stack(backend: Backend, workdir: Path) -> None:
    """The gateway (its pool full), then a fresh jupyter_server in front of it."""
    slug = backend.name.replace(" ", "-")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **backend.env}
    gateway = backend.gateway = GatewayProcess(
        backend.name, backend.command, env, workdir / f"{slug}.log"
    )
    gateway_url = (await gateway.wait_for_log(backend.ready, TIMEOUT)).group(1).rstrip("/") + "/"
    await wait_until(f"{backend.name} to answer GET /api", lambda: answers(gateway_url + "api"))
    await gateway.wait_for_log_count(POOLED, backend.pool, TIMEOUT)
    home = workdir / f"{slug}-server"
    dirs = {name: home / name for name in ("home", "root", "runtime", "config", "data")}
    for path in dirs.values():
        path.mkdir(parents=True)
    server_env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_", "KERNEL_"))}
    server_env |= {f"JUPYTER_{n.upper()}_DIR": str(dirs[n]) for n in ("runtime", "config", "data")}
    # HOME too: jupyter also reads config from the user site (~/.local/etc/jupyter).
    # KERNEL_USERNAME: GatewayClient sends it in every start request's env.
    server_env |= {"HOME": str(dirs["home"]), "KERNEL_USERNAME": "bench", "PYTHONUNBUFFERED": "1"}
    backend.token = secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyter_server", f"--gateway-url={gateway_url}"]
    command += [f"--GatewayClient.request_timeout={TIMEOUT}", "--ServerApp.open_browser=False"]
    command += [f"--IdentityProvider.token={backend.token}", "--ip=127.0.0.1", "--port=0"]
    command += ["--port-retries=0", f"--ServerApp.root_dir={dirs['root']}"]
    command += ["--ServerApp.log_level=DEBUG"]  # for SERVER_LISTENING, from this extension:
    command += ["--ServerApp.jpserver_extensions=jupyter_server_terminals=True"]
    command += ["--allow-root"] if os.geteuid() == 0 else []  # else it refuses root
    server = backend.server = GatewayProcess(
        f"jupyter_server on {backend.name}", command, server_env, workdir / f"{slug}-server.log"
    )
    backend.url = (await server.wait_for_log(SERVER_URL, TIMEOUT)).group(1)
    await server.wait_for_log(SERVER_LISTENING, TIMEOUT)


async def one_start(backend: Backend) -> dict[str, float]:
    """POST, websocket, kernel_info_reply; then DELETE and wait until the kernel has exited."""
    gateway = backend.gateway
    assert gateway is not None
    if backend.pool:  # every kernel handed out is replaced in the background
        await gateway.wait_for_log_count(POOLED, backend.pool + backend.starts, TIMEOUT)
    before = {p.pid for p in gateway.tree.kernels()}
    start = time.perf_counter()
    kernels = backend.url + "api/kernels"
    status, answer = await request("POST", kernels, backend.token, {"name": KERNEL_NAME})
    posted = time.perf_counter()
    if status != 201:
        raise RuntimeError(f"{backend.name}: POST /api/kernels: {status} {answer[:500]!r}")
    gateway.remember_kernels()
    # The kernel handed out was the pool's, or is the one that was not there before the POST.
    started = before if backend.pool else {p.pid for p in gateway.tree.kernels()} - before
    kernel_id, session = json.loads(answer)["id"], uuid.uuid4().hex
    try:
        url = "ws" + backend.url[4:] + f"api/kernels/{kernel_id}/channels?session_id={session}"
        headers = {"Authorization": f"token {backend.token}"}
        async with asyncio.timeout(TIMEOUT), connect(url, additional_headers=headers) as ws:
            opened = time.perf_counter()
            msg_id, now = uuid.uuid4().hex, datetime.now(UTC).isoformat()
            header = {"msg_id": msg_id, "msg_type": "kernel_info_request", "session": session}
            header |= {"username": "bench", "version": "5.3", "date": now}
            message = {"header": header, "parent_header": {}, "metadata": {}, "content": {}}
            await ws.send(json.dumps({**message, "channel": "shell", "buffers": []}))
            async for frame in ws:
                reply = json.loads(frame) if isinstance(frame, str) else {}
                if reply.get("header", {}).get("msg_type") == "kernel_info_reply" and (
                    reply.get("parent_header", {}).get("msg_id") == msg_id
                ):
                    break
            else:
                raise RuntimeError(f"{backend.name}: websocket closed before kernel_info_reply")
            replied = time.perf_counter()
    finally:
        status, answer = await request("DELETE", f"{kernels}/{kernel_id}", backend.token)
        if status != 204:
            raise RuntimeError(f"{backend.name}: DELETE /api/kernels: {status} {answer[:500]!r}")
    backend.starts += 1
    if backend.pool:  # a start the pool did not serve would be a cold one
        await gateway.wait_for_log_count(HANDED_OUT, backend.starts, 30)

    async def exited() -> bool:
        gateway.check_alive()
        return not started & {p.pid for p in gateway.tree.kernels()}

    await wait_until(f"{backend.name}'s deleted kernel to exit", exited)
    return {"post": posted - start, "open": opened - posted, "reply": replied - start}


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (0..1), interpolating between closest ranks."""
    ordered, pos = sorted(values), q * (len(values) - 1)
    low, high = int(pos), min(int(pos) + 1, len(values) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def column(backend: Backend, key: str) -> list[float]:
    """Seconds, one per start: post, open (websocket), reply (from the POST), info (after open)."""
    if key == "info":
        return [s["reply"] - s["post"] - s["open"] for s in backend.samples]
    return [s[key] for s in backend.samples]


def table(backends: list[Backend]) -> str:
    lines = [
        "| Back end | starts | POST -> kernel_info_reply p50 | p95 | POST p50 | p95 "
        "| then websocket open p50 | then kernel_info reply p50 |",
        "| --- " * 8 + "|",
    ]
    cells = (("reply", 0.5), ("reply", 0.95), ("post", 0.5), ("post", 0.95), ("open", 0.5))
    for b in backends:
        ms = [f"{1000 * quantile(column(b, k), q):.0f} ms" for k, q in (*cells, ("info", 0.5))]
        lines.append(f"| {b.name} | {len(b.samples)} | " + " | ".join(ms) + " |")
    lines += ["", "| Ratio of p50s | POST -> kernel_info_reply | POST alone |", "| --- " * 3 + "|"]
    for x, y in ((0, 1), (0, 2), (1, 2)):
        a, b = backends[x], backends[y]
        ratios = [
            quantile(column(a, k), 0.5) / quantile(column(b, k), 0.5) for k in ("reply", "post")
        ]
        lines.append(f"| {a.name} / {b.name} | {ratios[0]:.2f} | {ratios[1]:.2f} |")
    return "\n".join(lines)


def make_backends() -> list[Backend]:
    with socket.socket() as sock:  # a free port for jupyter_kernel_gateway
        sock.bind(("127.0.0.1", 0))
        jkg_env = {"KG_IP": "127.0.0.1", "KG_PORT": str(sock.getsockname()[1])}
    jkg = [str(jkg_executable(progress)), "kernelgateway"]
    return [
        Backend("kgw env pool", [*KGW, "--env-pool", f"{KERNEL_NAME}=1"], {}, KGW_READY, pool=1),
        Backend("kgw cold", KGW, {}, KGW_READY),
        Backend("jkg", jkg, {**jkg_env, "KG_LIST_KERNELS": "True"}, JKG_READY),
    ]


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def run(backends: list[Backend], args: argparse.Namespace, workdir: Path) -> None:
    try:
        for backend in backends:
            progress(f"starting {backend.name} and its jupyter_server")
            await start_stack(backend, workdir)
        rounds = args.warmup + args.starts
        for round_ in range(rounds):
            shift, took = round_ % len(backends), []
            for backend in backends[shift:] + backends[:shift]:
                sample = await one_start(backend)
                if round_ >= args.warmup:
                    backend.samples.append(sample)
                took.append(f"{backend.name} {1000 * sample['reply']:.0f} ms")
            warm_up = " (warm-up, not counted)" if round_ < args.warmup else ""
            progress(f"round {round_ + 1}/{rounds}{warm_up}: " + ", ".join(took))
    finally:  # each jupyter_server before the gateway it talks to
        for process in [p for b in backends for p in (b.server, b.gateway) if p is not None]:
            await process.stop()


def results(backends: list[Backend], args: argparse.Namespace, load: list[float]) -> str:
    machine = machine_info()
    jkg, source = machine["jupyter_kernel_gateway_venv"], machine["source"]
    loads = [" ".join(f"{v:.2f}" for v in values) for values in (load, os.getloadavg())]
    lines = [
        f"gateway_client_start  {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC",
        f"machine: {machine['cpu_count']} cores, {machine['cpu_model']}; "
        f"Python {machine['python']}; loadavg before {loads[0]}, after {loads[1]}",
        f"kgw {machine['packages']['kgw-kernel-gateway']} (commit {source['commit']}, kgw/ "
        f"{'with' if source['kgw_modified'] else 'without'} local changes); jupyter_server "
        f"{metadata.version('jupyter_server')} (the notebook server); jupyter_kernel_gateway "
        f"{jkg.get('jupyter_kernel_gateway')} (on jupyter_server {jkg.get('jupyter_server')})",
        "command: " + shlex.join(["python", *sys.argv]),
        f"{args.starts} starts per back end after {args.warmup} warm-up round(s), back ends in "
        "rotating order; ms from POST /api/kernels on jupyter_server to kernel_info_reply:",
    ]
    lines += [
        f"  {b.name}: " + " ".join(f"{1000 * v:.0f}" for v in column(b, "reply")) for b in backends
    ]
    return "\n".join(lines) + "\n\n" + table(backends) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/experiments/gateway_client_start.py",
        description="Kernel start through jupyter_server's GatewayClient on kgw and jkg.",
    )
    parser.add_argument("--starts", type=int, default=10, help="measured starts per back end")
    parser.add_argument("--warmup", type=int, default=1, help="rounds not counted (default 1)")
    parser.add_argument("--smoke", action="store_true", help="1 start per back end, write nothing")
    args = parser.parse_args()
    args.starts = 1 if args.smoke else args.starts
    if args.starts < 1 or args.warmup < 0:
        parser.error("--starts must be at least 1, --warmup at least 0")
    load = list(os.getloadavg())
    backends = make_backends()
    kernelspecs = install_kernelspec()  # on JUPYTER_PATH, for the gateways
    workdir = Path(tempfile.mkdtemp(prefix="kgw-gateway-client-start-"))
    keep_logs = False
    try:
        asyncio.run(run(backends, args, workdir))
    except KeyboardInterrupt:
        progress("interrupted: stopped everything")
        return 130
    except Exception as e:
        keep_logs = True
        progress(f"failed: {type(e).__name__}: {e}\nlogs are in {workdir}")
        return 1
    finally:
        kill_everything_spawned()
        shutil.rmtree(kernelspecs, ignore_errors=True)
        if not keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
    text = results(backends, args, load)
    print(text)
    if not args.smoke:
        RESULTS.write_text(text, encoding="utf-8")
        progress(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
