"""What every target shares: the kernelspec, file limits, jupyter_kernel_gateway's virtualenv.

All three targets start the same kernel command (this interpreter's ipykernel), through a
kernelspec put first on JUPYTER_PATH: jupyter_kernel_gateway runs from its own virtualenv,
whose ``python`` has no ipykernel.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

JKG_REQUIREMENT = "jupyter_kernel_gateway>=3,<4"
# In the checkout, ignored by git: the tests use the same virtualenv.
CACHE_DIR = Path(__file__).resolve().parents[1] / ".cache"
JKG_VENV = CACHE_DIR / "jkg-venv"
KERNEL_NAME = "python3"
KGW_DEPENDENCIES = (
    "kgw-kernel-gateway",
    "twisted",
    "autobahn",
    "txzmq",
    "pyzmq",
    "jupyter_client",
    "ipykernel",
    "klein",
    "websockets",
    "psutil",
)


def raise_file_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def install_kernelspec() -> Path:
    """A JUPYTER_PATH directory whose python3 kernelspec runs this interpreter's ipykernel.

    The path is put in this process's environment, so gateways and kernels inherit it.
    """
    root = Path(tempfile.mkdtemp(prefix="kgw-bench-jupyter-"))
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (benchmark)",
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    previous = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(root), previous]))
    return root


def jkg_executable(log: Any = print) -> Path:
    """``jupyter`` of jupyter_kernel_gateway's virtualenv, created on first use.

    The tests use the same virtualenv: a file lock keeps a test run and a benchmark from
    making it at the same time.
    """
    jupyter = JKG_VENV / "bin" / "jupyter"
    JKG_VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(JKG_VENV.parent / "jkg-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (JKG_VENV / "bin" / "jupyter-kernelgateway").exists():
            return jupyter
        log(f"creating {JKG_VENV} and installing {JKG_REQUIREMENT} (first run only)")
        subprocess.run([sys.executable, "-m", "venv", str(JKG_VENV)], check=True, timeout=600)
        subprocess.run(
            [str(JKG_VENV / "bin" / "pip"), "install", "--quiet", JKG_REQUIREMENT],
            check=True,
            timeout=1200,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
    return jupyter


def jkg_versions() -> dict[str, str]:
    """Versions of jupyter_kernel_gateway and its main dependencies in its virtualenv."""
    python = JKG_VENV / "bin" / "python"
    if not python.exists():
        return {}
    script = (
        "import json\nfrom importlib import metadata\nout = {}\n"
        "for name in ('jupyter_kernel_gateway', 'jupyter_server', 'jupyter_client', "
        "'tornado', 'pyzmq'):\n"
        "    try:\n        out[name] = metadata.version(name)\n"
        "    except metadata.PackageNotFoundError:\n        pass\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run([str(python), "-c", script], capture_output=True, text=True)
    if result.returncode != 0:
        return {}
    versions: dict[str, str] = json.loads(result.stdout)
    return versions


def source_revision() -> dict[str, Any]:
    """The git commit of the kgw tree being measured, and whether it had local changes."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    status = git("status", "--porcelain", "--", "kgw", "setup.py")
    modified = None if status is None else bool(status)
    return {"commit": git("rev-parse", "HEAD"), "kgw_modified": modified}


def machine_info() -> dict[str, Any]:
    """What the results depend on: CPU, memory, Python, package versions."""
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    packages: dict[str, str | None] = {}
    for name in KGW_DEPENDENCIES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "packages": packages,
        "jupyter_kernel_gateway_venv": jkg_versions(),
        "rlimit_nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "source": source_revision(),
    }
