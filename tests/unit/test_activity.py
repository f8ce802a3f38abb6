"""last_activity and culling as jupyter_server counts them, on the reactor's clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from kgw.channels import wire
from kgw.channels.activity import is_activity
from kgw.config import GatewayConfig
from kgw.kernels.lifecycle import State
from kgw.kernels.supervisor import KernelSupervisor
from kgw.metrics import GatewayMetrics


def iopub(msg_type: str, parent_type: str | None = None) -> wire.Parts:
    parent = {"msg_id": "p", "msg_type": parent_type} if parent_type else {}
    header = {"msg_id": "m", "msg_type": msg_type}
    return wire.Parts(
        "iopub", json.dumps(header).encode(), json.dumps(parent).encode(), b"{}", b"{}"
    )


def test_activity_is_what_jupyter_server_tracks() -> None:
    assert is_activity(iopub("status", "execute_request"), "idle")
    assert is_activity(iopub("comm_msg"), "idle")
    assert is_activity(iopub("stream", "execute_request"), "idle")
    # The gateway's own kernel_info nudges and readiness checks are not a user's activity.
    assert not is_activity(iopub("status", "kernel_info_request"), "idle")
    assert not is_activity(iopub("status"), "idle")
    assert not is_activity(iopub("stream"), "idle")
    # Anything while busy counts.
    assert is_activity(iopub("stream"), "busy")


class FakeBridge:
    def __init__(self, last_activity: datetime) -> None:
        self.last_activity = last_activity
        self.connection_count = 0
        self.execution_state = "idle"


class FakeLifecycle:
    state = State.READY


class FakeKernel:
    def __init__(self, kernel_id: str, last_activity: datetime) -> None:
        self.id = kernel_id
        self.bridge = FakeBridge(last_activity)
        self.lifecycle = FakeLifecycle()


class FakeRegistry:
    def __init__(self, kernels: list[FakeKernel]) -> None:
        self.kernels = kernels
        self.shut: list[tuple[str, str]] = []
        self.metrics = GatewayMetrics()

    def list(self) -> list[Any]:
        return list(self.kernels)

    async def shutdown(self, kernel_id: str, reason: str = "") -> None:
        self.shut.append((kernel_id, reason))


def test_culling_reads_the_reactors_clock() -> None:
    clock = Clock()
    clock.advance(1_000_000)
    at = datetime.fromtimestamp(clock.seconds(), UTC)
    registry = FakeRegistry([FakeKernel("idle", at), FakeKernel("fresh", at)])
    config = GatewayConfig(cull_idle_timeout=600, cull_interval=60)
    supervisor = KernelSupervisor(registry, clock, config)  # type: ignore[arg-type]
    clock.advance(601)
    registry.kernels[1].bridge.last_activity = datetime.fromtimestamp(clock.seconds(), UTC)
    Deferred.fromCoroutine(supervisor.cull())
    assert [kernel_id for kernel_id, _ in registry.shut] == ["idle"]
    assert "idle 601s (limit 600s)" in registry.shut[0][1]
