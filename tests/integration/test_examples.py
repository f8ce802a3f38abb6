"""The Python client example in docs/ works against a real kgw, as a reader would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.harness import Gateway

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "python_client.py"


def test_python_client_example() -> None:
    with Gateway("--list-kernels", token="example-token") as gw:
        env = {
            **os.environ,
            "JUPYTER_GATEWAY_URL": gw.url,
            "JUPYTER_GATEWAY_AUTH_TOKEN": "example-token",
        }
        result = subprocess.run(
            [sys.executable, str(EXAMPLE), "print(6 * 7)"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "42" in result.stdout
        assert gw.request("GET", "api/kernels").json() == []
