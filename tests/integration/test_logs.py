"""Log lines as an operator reads them: JSON on request, never the token."""

from __future__ import annotations

import json
import re

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
