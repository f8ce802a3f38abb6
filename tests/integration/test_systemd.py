"""Type=notify: kgw tells systemd READY=1 once it serves, STOPPING=1 when it stops."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from tests.integration.harness import Gateway


def test_ready_and_stopping_notifications(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(120)
        gw = Gateway("--prespawn-count", "1", env={"NOTIFY_SOCKET": path})
        try:
            assert sock.recv(256) == b"READY=1"
            # READY comes once the pool is warm: a kernel is ready to hand out.
            gw.wait_for_line(re.compile("pool: 1 kernels ready"), 30)
            assert gw.request("GET", "api").status_code == 200
        finally:
            gw.stop()
        assert sock.recv(256) == b"STOPPING=1"
