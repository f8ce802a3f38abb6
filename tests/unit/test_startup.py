"""Startup: kgw listens only after its kernels are ready; a failure is one line, not a log."""

from __future__ import annotations

import io
import os
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from twisted.web.resource import Resource
from twisted.web.server import Site

from kgw.errors import ConfigError
from kgw.service import KernelService, ListenService
from kgw.startup import StartupReport


class FakePool:
    sizes: dict[str, int] = {}

    def ready(self) -> list[Any]:
        return []


class FakeRegistry:
    """startup_check() waits for the test to say how the pool fill and seed went."""

    def __init__(self) -> None:
        self.pool = FakePool()
        self.pools = (self.pool,)
        self.checked: Deferred[None] = Deferred()

    async def startup_check(self) -> None:
        await self.checked

    def list(self) -> list[Any]:
        return []

    async def shutdown_all(self) -> None:
        pass


class FakeSupervisor:
    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def started(reactor: MemoryReactorClock, report: list[str]) -> tuple[FakeRegistry, Any]:
    registry = FakeRegistry()
    listener = ListenService(reactor, "tcp:8888:interface=127.0.0.1", Site(Resource()), "/")
    service = KernelService(
        registry,  # type: ignore[arg-type]
        FakeSupervisor(),  # type: ignore[arg-type]
        object(),  # type: ignore[arg-type]
        reactor,
        [listener],
        report.append,  # type: ignore[arg-type]
    )
    service.startService()
    listener.startService()
    reactor.run()  # runs the callWhenRunning hooks
    return registry, service


def test_listens_only_once_the_kernels_are_ready() -> None:
    reactor = MemoryReactorClock()
    report: list[str] = []
    registry, _ = started(reactor, report)
    assert reactor.tcpServers == [], "nothing listens while the pool fills and the seed runs"

    with capturedLogs() as events:
        registry.checked.callback(None)

    assert [(port, interface) for port, _, _, interface in reactor.tcpServers] == [
        (8888, "127.0.0.1")
    ]
    assert [e["log_format"] for e in events if "url" in e] == ["kernelgateway listening on {url}"]
    assert report == []


def test_a_failed_check_never_listens_and_says_why_once() -> None:
    reactor = MemoryReactorClock()
    report: list[str] = []
    registry, _ = started(reactor, report)
    reactor.running, reactor.hasStopped = True, False  # as under twistd

    registry.checked.errback(ConfigError("--pool cobol: Kernel cobol failed to start"))

    assert reactor.tcpServers == []
    assert report == ["--pool cobol: Kernel cobol failed to start"]
    assert reactor.hasStopped
    assert (os._exit, (1,), {}) in reactor.triggers["after"]["shutdown"], "exit status 1"


def test_report_is_one_line_on_the_terminal_and_in_a_log_elsewhere() -> None:
    terminal = io.StringIO()
    with capturedLogs() as events:
        StartupReport(log_elsewhere=False, stream=terminal)("KGW_POOL: no kernelspec named 'x'")
    assert terminal.getvalue() == "kernelgateway: KGW_POOL: no kernelspec named 'x'\n"
    assert events == []

    with capturedLogs() as events:
        StartupReport(log_elsewhere=True, stream=io.StringIO())("cannot listen on 'tcp:1'")
    assert [e["line"] for e in events] == ["kernelgateway: cannot listen on 'tcp:1'"]
