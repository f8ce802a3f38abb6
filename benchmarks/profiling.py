"""Optional py-spy profiles of a gateway while a workload runs (``--profile``)."""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.processes import _SPAWNED


class Profiler:
    """``py-spy record`` of one process into a collapsed-stack file."""

    def __init__(self, pid: int, output: Path) -> None:
        executable = shutil.which("py-spy")
        if executable is None:
            raise RuntimeError("--profile needs py-spy (pip install py-spy)")
        self.output = output
        output.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                executable,
                "record",
                "--pid",
                str(pid),
                "--rate",
                "200",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(output),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _SPAWNED.add(self.proc.pid)

    def stop(self) -> dict[str, Any]:
        """Stop recording; return the file and the functions with the most samples."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, stderr = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, stderr = self.proc.communicate()
        _SPAWNED.discard(self.proc.pid)
        if not self.output.exists():
            return {"file": None, "error": stderr.decode(errors="replace")[-500:]}
        return {"file": str(self.output), **top_functions(self.output)}


def top_functions(path: Path, count: int = 15) -> dict[str, Any]:
    """Samples per function where it was running itself, and where it was on the stack."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        n = int(samples)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n

    def share(counter: collections.Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(count)]

    if total == 0:
        return {"samples": 0, "self_pct": [], "total_pct": []}
    return {"samples": total, "self_pct": share(own), "total_pct": share(inclusive)}
