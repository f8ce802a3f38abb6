"""What a kernel is doing, as its clients and culling see it: execution state, last activity.

Read from the kernel's iopub messages as jupyter_server's MappingKernelManager reads them:
``status`` messages set the execution state, and user activity (what its
``untracked_message_types`` leaves) moves ``last_activity``, on the reactor's clock.
Sans-I/O: messages in, two fields out.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from twisted.internet.interfaces import IReactorTime

from kgw.channels import wire

# Message types that are not user activity, as jupyter_server's MappingKernelManager counts
# it (its untracked_message_types): culling then matches jupyter_server's.
UNTRACKED_MESSAGE_TYPES = frozenset(
    {
        "comm_info_request",
        "comm_info_reply",
        "kernel_info_request",
        "kernel_info_reply",
        "shutdown_request",
        "shutdown_reply",
        "interrupt_request",
        "interrupt_reply",
        "debug_request",
        "debug_reply",
        "stream",
        "display_data",
        "update_display_data",
        "execute_input",
        "execute_result",
        "error",
        "status",
        "clear_output",
        "debug_event",
        "input_request",
        "input_reply",
    }
)


def is_activity(parts: wire.Parts, execution_state: str) -> bool:
    """jupyter_server's rule for user activity: an iopub message of a tracked type, or
    about a request of one, or any while the kernel is busy."""
    if parts.msg_type not in UNTRACKED_MESSAGE_TYPES or execution_state == "busy":
        return True
    try:
        parent = json.loads(parts.parent_header)
    except ValueError:
        return False
    parent_type = parent.get("msg_type") if isinstance(parent, dict) else None
    return bool(parent_type) and parent_type not in UNTRACKED_MESSAGE_TYPES


class Activity:
    """One kernel's execution state and the time of its last user activity."""

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self.execution_state = "starting"
        self.last_activity = self._now()

    def _now(self) -> datetime:
        """The reactor's time (a test's Clock), as the UTC datetime models show."""
        return datetime.fromtimestamp(self._clock.seconds(), UTC)

    def seen(self, parts: wire.Parts) -> None:
        """An iopub message from the kernel."""
        if is_activity(parts, self.execution_state):
            self.last_activity = self._now()
        if parts.msg_type != "status":
            return
        try:
            state = json.loads(parts.content).get("execution_state")
        except (ValueError, AttributeError):
            return
        if isinstance(state, str):
            self.execution_state = state
