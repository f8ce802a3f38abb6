"""Knowing at once that a local kernel process ended: its pidfd, readable when it exits.

Supervision asks every kernel manager once a second whether its kernel lives; for a kernel
run by jupyter_client's local provisioner the operating system can say it sooner. A pidfd
(Linux 5.3 and later) becomes readable the moment its process exits, so the reactor wakes
the registry, which restarts the kernel before clients' next requests pile up. Where there
is no pidfd (another OS, a remote provisioner, a reactor without file descriptors, as in
unit tests), nothing is watched and the poll still notices, a second later at most.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorFDSet, IReadDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer


@implementer(IReadDescriptor)
class ExitWatch:
    """Calls ``on_exit`` once when the process behind ``pidfd`` exits."""

    def __init__(self, reactor: IReactorFDSet, pidfd: int, on_exit: Callable[[], None]) -> None:
        self._reactor = reactor
        self._fd: int | None = pidfd
        self._on_exit: Callable[[], None] | None = on_exit
        reactor.addReader(self)

    def fileno(self) -> int:
        return self._fd if self._fd is not None else -1

    def doRead(self) -> None:
        on_exit, self._on_exit = self._on_exit, None
        self.stop()
        if on_exit is not None:
            on_exit()

    def stop(self) -> None:
        """Stop watching (the kernel restarts or shuts down on purpose); safe to repeat."""
        if self._fd is None:
            return
        self._reactor.removeReader(self)
        os.close(self._fd)
        self._fd = None
        self._on_exit = None

    def connectionLost(self, reason: Failure) -> None:
        self.stop()

    def logPrefix(self) -> str:
        return "kernel-exit"


def watch_exit(reactor: Any, manager: Any, on_exit: Callable[[], None]) -> ExitWatch | None:
    """Watch a kernel manager's local process, or None where that is not possible."""
    pidfd_open = getattr(os, "pidfd_open", None)
    process = getattr(getattr(manager, "provisioner", None), "process", None)
    pid = getattr(process, "pid", None)
    if pidfd_open is None or not isinstance(pid, int) or not IReactorFDSet.providedBy(reactor):
        return None
    try:
        pidfd: int = pidfd_open(pid)
    except OSError:  # already gone (supervision will see it), or no pidfd support
        return None
    return ExitWatch(reactor, pidfd, on_exit)
