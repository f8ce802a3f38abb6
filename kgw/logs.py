"""Log output: ``--log-format json`` writes one JSON object per line (journald, shippers)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import IO, Any

from twisted.logger import FileLogObserver, ILogObserver, formatEvent
from zope.interface import provider

_SCALARS = (str, int, float, bool, type(None))


def event_as_json(event: dict[str, Any]) -> str:
    """One log event as a JSON line: time, level, namespace, message and its plain fields."""
    record: dict[str, Any] = {
        "time": datetime.fromtimestamp(event.get("log_time", 0), UTC).isoformat(),
        "level": getattr(event.get("log_level"), "name", "info"),
        "namespace": event.get("log_namespace", ""),
        "message": formatEvent(event),
    }
    for key, value in event.items():
        if not key.startswith("log_") and key not in record and isinstance(value, _SCALARS):
            record[key] = value
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    return json.dumps(record, default=str) + "\n"


@provider(ILogObserver)
def json_observer(out: IO[str] | None = None) -> FileLogObserver:
    """The observer twistd uses with ``--log-format json`` (named by ``--logger``)."""
    return FileLogObserver(out or sys.stdout, event_as_json)
