"""Clients' shell requests the kernel has not answered yet, so that none is lost in a restart.

A kernel that dies takes with it the requests queued on its sockets: those sent after it
died and before the gateway noticed, and those waiting behind the one it was running. A
kernel runs shell requests one at a time, in order, so of the requests it had not answered
only the oldest can have begun (a ``busy`` status for it may never have left a process that
was killed). When the kernel restarts, every request queued behind that one is sent again
to the new process, after its readiness check and seed, in the order they came; the oldest
is answered with an error instead, since it may have run, in part or whole: running it
twice could do twice what it did once.

Sans-I/O: no sockets, no clock. Bounded: at most MAX_IN_FLIGHT requests are remembered (the
oldest are forgotten first, and would then be neither sent again nor answered).
"""

from __future__ import annotations

from collections.abc import Hashable

from kgw.channels.wire import Parts

MAX_IN_FLIGHT = 10_000


class InFlight:
    """Shell requests sent to the kernel, in the order they were sent, until answered."""

    def __init__(self, limit: int = MAX_IN_FLIGHT) -> None:
        self._limit = limit
        # msg_id -> (connection, message, begun); dicts keep the order requests were sent in.
        self._requests: dict[str, tuple[Hashable, Parts, bool]] = {}

    def __len__(self) -> int:
        return len(self._requests)

    def sent(self, connection: Hashable, parts: Parts) -> None:
        self._requests[parts.msg_id] = (connection, parts, False)
        while len(self._requests) > self._limit:
            del self._requests[next(iter(self._requests))]

    def begun(self, msg_id: str) -> None:
        """The kernel said it is busy with request ``msg_id``."""
        entry = self._requests.get(msg_id)
        if entry is not None:
            self._requests[msg_id] = (entry[0], entry[1], True)

    def answered(self, msg_id: str) -> None:
        self._requests.pop(msg_id, None)

    def queued(self) -> list[tuple[Hashable, Parts]]:
        """Take the requests that cannot have begun, oldest first (to send them again): all
        but the oldest unanswered one, and none the kernel said it began."""
        entries = list(self._requests.values())[1:]
        taken = [(c, p) for c, p, begun in entries if not begun]
        for _, parts in taken:
            del self._requests[parts.msg_id]
        return taken

    def unanswered(self) -> list[tuple[Hashable, Parts]]:
        """Take every request still unanswered (to answer each with an error)."""
        taken = [(c, p) for c, p, _ in self._requests.values()]
        self._requests.clear()
        return taken

    def clear(self) -> None:
        self._requests.clear()
