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
        gw.wait_for_line(re.compile(rf"kernel {kernel_id} shut down"), 60)
    records = [json.loads(line) for line in gw.lines if line.startswith("{")]
    assert records, gw.log
    requests = [r for r in records if r.get("method") == "GET" and r.get("status") == 200]
    assert any(r["path"] == "/api/kernels?token=[secret]" for r in requests)
    assert all({"time", "level", "namespace", "message"} <= set(r) for r in records)
    started = [r for r in records if r["message"].endswith("(python3) started")]
    assert started and started[0]["kernel_id"] == kernel_id
    assert TOKEN not in gw.log
