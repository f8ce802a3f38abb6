"""kgw.client stays light: importing it loads none of the gateway server's dependencies.

The plain ``kgw`` distribution installs only what the client needs; the server's
dependencies come with the ``gateway`` extra. pyzmq is not among the forbidden: jupyter_client
itself imports zmq, so the client cannot avoid it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
SERVER_ONLY = (
    "attr",
    "attrs",
    "automat",
    "autobahn",
    "hyperlink",
    "ipykernel",
    "klein",
    "prometheus_client",
    "service_identity",
    "treq",
    "twisted",
    "txzmq",
    "zope",
)


def test_importing_the_client_loads_no_server_dependency() -> None:
    # A fresh interpreter: this one has long imported Twisted for other tests.
    code = "import json, sys, kgw.client; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    modules = json.loads(result.stdout)
    assert "kgw.client" in modules
    assert [m for m in modules if m.split(".")[0] in SERVER_ONLY] == []
