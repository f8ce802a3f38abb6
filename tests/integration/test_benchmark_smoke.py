"""`python benchmarks/run.py --smoke` runs every workload on every target and writes its JSON.

No performance thresholds: this only proves the benchmark still works (the first run also
creates jupyter_kernel_gateway's virtualenv, which takes a minute).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from benchmarks.workloads import WORKLOADS

ROOT = Path(__file__).resolve().parents[2]
TARGETS = {"floor", "kgw", "jkg"}


@pytest.mark.timeout(900)
def test_smoke_run_writes_every_workload(tmp_path: Path) -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--smoke", "--output", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-5000:]

    (path,) = tmp_path.glob("*-smoke.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["smoke"] is True
    assert data["interrupted"] is False
    assert set(data["workloads"]) == {w.key for w in WORKLOADS}
    for key, workload in data["workloads"].items():
        assert set(workload["runs"]) == TARGETS, key
        for target, run in workload["runs"].items():
            assert run["error"] is None, f"{key} on {target}: {run['error']}"
            assert run["repetitions"] == 1, f"{key} on {target}"
            assert run["leftover_kernels"] == [], f"{key} on {target}"
    assert "kgw/floor" in result.stdout
    assert not (tmp_path / "latest.md").exists()  # only full runs replace the README table
    after = {p.pid for p in psutil.Process().children(recursive=True)}
    assert after <= before, "the benchmark left processes behind"
