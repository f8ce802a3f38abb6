"""One kernel as the registry keeps it: its manager, bridge, environment and lifecycle."""

from __future__ import annotations

from typing import Any

import attrs
from jupyter_client.manager import AsyncKernelManager

from kgw.channels.bridge import ChannelBridge
from kgw.kernels.exits import ExitWatch
from kgw.kernels.lifecycle import Lifecycle, State

LAST_ACTIVITY_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@attrs.define(eq=False)
class Kernel:
    """One kernel: its jupyter_client manager, its channel bridge and its lifecycle."""

    id: str
    name: str
    manager: AsyncKernelManager
    bridge: ChannelBridge
    env: dict[str, str] = attrs.Factory(dict)  # the environment it was launched with
    restarts: list[float] = attrs.Factory(list)  # reactor times of automatic restarts
    lifecycle: Lifecycle = attrs.Factory(lambda self: Lifecycle(self.id), takes_self=True)
    stop_reason: str = "requested"  # why it is being shut down, for the log
    exit_watch: ExitWatch | None = None  # tells at once when its local process ends

    @property
    def dead(self) -> bool:
        return self.lifecycle.state is State.DEAD

    def model(self) -> dict[str, Any]:
        """The kernel model of jupyter_server's REST API."""
        return {
            "id": self.id,
            "name": self.name,
            "last_activity": self.bridge.last_activity.strftime(LAST_ACTIVITY_FORMAT),
            "execution_state": self.bridge.execution_state,
            "connections": self.bridge.connection_count,
        }
