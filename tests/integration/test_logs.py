"""Log lines as an operator reads them: JSON on request, never the token."""

from __future__ import annotations

import json
import re
from typing import Any

import psutil

from tests.integration.harness import Gateway, stream_text

TOKEN = "log-secret-5c1d"


def test_json_logs_one_object_per_line_without_the_token() -> None:
    with Gateway("--log-format", "json", "--list-kernels", token=TOKEN) as gw:
        kernel_id = gw.start_kernel()
        with gw.connect(kernel_id, query=f"?token={TOKEN}") as ks:
            _, iopub = ks.execute("print('logged')")
            assert stream_text(iopub) == "logged\n"
        gw.request("GET", "api/kernels", params={"token": TOKEN})
        gw.request("DELETE", f"api/kernels/{kernel_id}")
        gw.wait_for_line(re.compile(rf"kernel {kernel_id} \(python3\) shut down"), 60)
    records = [json.loads(line) for line in gw.lines if line.startswith("{")]
    assert records, gw.log
    requests = [r for r in records if r.get("method") == "GET" and r.get("status") == 200]
    assert any(r["path"] == "/api/kernels?token=[secret]" for r in requests)
    assert all({"time", "level", "namespace", "message"} <= set(r) for r in records)
    started = [r for r in records if r["message"].endswith("(python3) started")]
    assert started and started[0]["kernel_id"] == kernel_id
    assert TOKEN not in gw.log


def test_every_kernel_lifecycle_event_is_one_line_with_id_and_name() -> None:
    args = ("--log-format", "json", "--prespawn-count", "1")
    culling = ("--cull-idle-timeout", "2", "--cull-interval", "1")
    with Gateway(*args, *culling, token=TOKEN) as gw:
        gw.wait_for_line(re.compile(r"pool: 1 kernels ready"), 60)
        pooled = gw.start_kernel()
        cold = gw.start_kernel(env={})  # a request with env never takes a pooled kernel
        # Connected kernels are not culled (--cull-connected is off): hold both while working.
        with gw.connect(pooled) as ks, gw.connect(cold):
            assert gw.request("POST", f"api/kernels/{pooled}/restart").status_code == 200
            ks.send_execute("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
            gw.wait_for_line(re.compile(rf"kernel {pooled} \(python3\) restarted \(it had"), 60)
            assert gw.request("DELETE", f"api/kernels/{cold}").status_code == 204
        gw.wait_for_line(re.compile(rf"kernel {pooled} \(python3\) shut down \(culled"), 60)
    records = [json.loads(line) for line in gw.lines if line.startswith("{")]

    def event(kernel_id: str, text: str) -> dict[str, object]:
        found = [r for r in records if r.get("kernel_id") == kernel_id and text in r["message"]]
        assert len(found) == 1, (text, [r["message"] for r in records if kernel_id in r["message"]])
        assert found[0]["name"] == "python3"
        return found[0]

    assert event(pooled, "handed out from the pool")["level"] == "info"
    event(pooled, "restarted (requested)")
    assert event(pooled, "died; restarting it")["level"] == "warn"
    event(pooled, "restarted (it had died)")
    assert "idle" in str(event(pooled, "shut down (culled")["reason"])
    event(cold, "started")
    assert event(cold, "shut down (requested)")["reason"] == "requested"
    assert TOKEN not in gw.log


def kernel_records(gw: Gateway) -> list[dict[str, Any]]:
    """The gateway's output as JSON records; every line of it must be one."""
    return [json.loads(line) for line in gw.lines if line.strip()]


def test_kernel_output_is_logged_as_events_of_its_kernel() -> None:
    """What a kernel writes to its own stdout/stderr is a log event with its id and stream."""
    with Gateway("--log-format", "json") as gw:
        kernel_id = gw.start_kernel()
        with gw.connect(kernel_id) as ks:
            code = "import os; os.write(1, b'to stdout\\n'); os.write(2, b'to stderr\\n')"
            reply, _ = ks.execute(code)
            assert reply["content"]["status"] == "ok"
        gw.wait_for_line(re.compile(r"to stderr"), 60)
        assert gw.request("DELETE", f"api/kernels/{kernel_id}").status_code == 204
        gw.wait_for_line(re.compile(rf"kernel {kernel_id} \(python3\) shut down"), 60)
    records = kernel_records(gw)  # nothing raw: ipykernel's own warnings included
    said = {
        (r["stream"], r["line"]): r
        for r in records
        if r.get("kernel_id") == kernel_id and "stream" in r
    }
    assert said[("stdout", "to stdout")]["level"] == "info"
    assert said[("stderr", "to stderr")]["level"] == "warn"
    assert said[("stderr", "to stderr")]["name"] == "python3"
    assert any(stream == "stderr" and "IPKernelApp" in line for stream, line in said)


def test_kernel_output_lines_are_attributed_in_text_logs_too() -> None:
    with Gateway() as gw:
        kernel_id = gw.start_kernel()
        with gw.connect(kernel_id) as ks:
            ks.execute("import os; os.write(2, b'plain text line\\n')")
        gw.wait_for_line(re.compile(rf"kernel {kernel_id} \(python3\) stderr: plain text line"), 60)
    raw = [line for line in gw.lines if line.startswith("[IPKernelApp]")]
    assert raw == [], "kernel output reaches the log only as events"


def test_a_flood_on_stderr_is_bounded_and_says_so() -> None:
    """100 MB on a kernel's stderr: the gateway stays responsive, its memory flat, and the
    log says how many lines it left out."""
    flood = (
        "import os\n"
        "line = b'x' * 99 + b'\\n'\n"
        "for _ in range(100):\n"
        "    os.write(2, line * 10000)\n"  # 1 MB at a time, 100 MB in all
        "os.write(2, b'y' * 20000 + b'\\n')\n"  # one very long line
        "print('done')"
    )
    with Gateway("--log-format", "json") as gw:
        kernel_id = gw.start_kernel()
        gateway = psutil.Process(gw.proc.pid)
        before = gateway.memory_info().rss
        peak = before
        with gw.connect(kernel_id) as ks:
            ks.send_execute(flood)
            # The gateway answers while the kernel floods it.
            assert gw.request("GET", "api").status_code == 200
            for message in ks.messages():
                peak = max(peak, gateway.memory_info().rss)
                if message["msg_type"] == "execute_reply":
                    break
        gw.wait_for_line(re.compile(r"lines \(\d+ bytes\) of its output not logged"), 60)
    assert peak - before < 64 * 1024 * 1024, f"RSS grew {(peak - before) / 2**20:.0f} MiB"
    records = [r for r in kernel_records(gw) if r.get("kernel_id") == kernel_id]
    lines = [r for r in records if r.get("stream") == "stderr"]
    assert 0 < len(lines) < 100_000, "rate-limited, not every line logged"
    left_out = sum(r["lines"] for r in records if "not logged" in r["message"])
    assert left_out + len(lines) >= 1_000_000
