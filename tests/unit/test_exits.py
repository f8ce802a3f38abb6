"""A kernel's exit seen at once through a file descriptor the reactor watches."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.task import Clock

from kgw.kernels.exits import ExitWatch, watch_exit


class FDSet:
    def __init__(self) -> None:
        self.readers: list[Any] = []

    def addReader(self, reader: Any) -> None:
        self.readers.append(reader)

    def removeReader(self, reader: Any) -> None:
        self.readers.remove(reader)


def test_the_callback_runs_once_and_the_descriptor_is_closed() -> None:
    read_end, write_end = os.pipe()  # stands in for a pidfd: readable when "it exits"
    reactor = FDSet()
    exits: list[None] = []
    watch = ExitWatch(reactor, read_end, lambda: exits.append(None))  # type: ignore[arg-type]
    assert reactor.readers == [watch]
    watch.doRead()
    watch.doRead()
    assert exits == [None]
    assert reactor.readers == []
    try:
        os.fstat(read_end)
        raise AssertionError("the descriptor is still open")
    except OSError:
        pass
    os.close(write_end)


def test_stopping_on_purpose_never_calls_back() -> None:
    read_end, write_end = os.pipe()
    exits: list[None] = []
    watch = ExitWatch(FDSet(), read_end, lambda: exits.append(None))  # type: ignore[arg-type]
    watch.stop()
    watch.stop()
    watch.doRead()
    assert exits == []
    os.close(write_end)


def test_nothing_is_watched_without_a_local_process_or_a_reactor_with_descriptors() -> None:
    class Manager:
        provisioner = None

    assert watch_exit(FDSet(), Manager(), lambda: None) is None
    assert watch_exit(Clock(), Manager(), lambda: None) is None
