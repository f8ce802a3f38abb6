"""Startup errors: one line, ``kernelgateway: ...``, where the operator who started kgw sees it.

Once twistd has started logging, ``sys.stderr`` is captured into the log (as
``[stderr#error] ...``), so a startup error is written to the process's original stderr
instead; when the log goes elsewhere (a --logfile, syslog, a daemon), it is logged there too.
"""

from __future__ import annotations

import sys
from typing import IO

from twisted.logger import Logger

log = Logger()


class StartupReport:
    """Says why the gateway cannot start, once."""

    def __init__(self, log_elsewhere: bool = False, stream: IO[str] | None = None) -> None:
        self._log_elsewhere = log_elsewhere
        self._stream = stream

    def __call__(self, message: str) -> None:
        line = f"kernelgateway: {message}"
        stream = self._stream or sys.__stderr__
        if stream is not None:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):  # a daemon's stderr may be closed
                pass
        if self._log_elsewhere or stream is None:
            log.critical("{line}", line=line)
