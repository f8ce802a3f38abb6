"""Real @jupyterlab/services clients under Node, pointed straight at kgw."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.harness import Gateway

NODE_DIR = Path(__file__).parents[1] / "node"
EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "node_client.js"
TOKEN = "node-test-token"


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """tests/node/node_modules, installed from the npm registry on first use."""
    assert shutil.which("node") and shutil.which("npm"), "Node.js and npm are required"
    modules = NODE_DIR / "node_modules"
    if not (modules / "@jupyterlab" / "services").is_dir():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=600
        )
    return modules


def run_node(script: Path, gw: Gateway, modules: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "JUPYTER_GATEWAY_URL": gw.url,
        "JUPYTER_GATEWAY_AUTH_TOKEN": TOKEN,
        "NODE_PATH": str(modules),
    }
    return subprocess.run(
        ["node", str(script)], env=env, capture_output=True, text=True, timeout=180
    )


@pytest.fixture(scope="module")
def gateway() -> Gateway:
    with Gateway("--list-kernels", token=TOKEN) as gw:
        yield gw  # type: ignore[misc]
    assert gw.leftover_kernels() == []


def test_session_manager(gateway: Gateway, node_modules: Path) -> None:
    result = run_node(NODE_DIR / "session_manager.js", gateway, node_modules)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["status"] == "ok"
    assert seen["output"] == "42\n"
    assert seen["listedPaths"] == ["notebooks/renamed.ipynb"]
    assert seen["afterShutdown"] == 0
    gateway.remember_kernels()
    assert gateway.request("GET", f"api/kernels/{seen['kernelId']}").status_code == 404


def test_kernel_manager_example_from_the_docs(gateway: Gateway, node_modules: Path) -> None:
    result = run_node(EXAMPLE, gateway, node_modules)
    assert result.returncode == 0, result.stderr
    assert "Hello world!" in result.stdout.splitlines()
