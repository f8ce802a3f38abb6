"""Clients' shell requests the kernel has not answered yet, so that none is lost in a restart.

A kernel that dies takes with it the requests queued on its sockets: those sent after it
died and before supervision noticed, and any it had received but not begun. The bridge
notes each client shell request it sends (:meth:`InFlight.sent`), when the kernel starts
working on one (a ``busy`` status whose parent is the request) and when it is answered (a
shell reply). When the kernel restarts, requests the kernel never began are sent again to
the new process, after its readiness check and seed, in the order they came; requests it had
begun are answered with an error, since they may have run in part.

Sans-I/O: no sockets, no clock. Bounded: at most MAX_IN_FLIGHT requests are remembered (the
oldest are forgotten first, and would then not be sent again).
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

    def not_begun(self) -> list[tuple[Hashable, Parts]]:
        """Take the requests the kernel never began, oldest first (to send them again)."""
        taken = [(c, p) for c, p, begun in self._requests.values() if not begun]
        for _, parts in taken:
            del self._requests[parts.msg_id]
        return taken

    def begun_unanswered(self) -> list[tuple[Hashable, Parts]]:
        """Take the requests the kernel began and never answered (to answer with an error)."""
        taken = [(c, p) for c, p, begun in self._requests.values() if begun]
        for _, parts in taken:
            del self._requests[parts.msg_id]
        return taken

    def clear(self) -> None:
        self._requests.clear()
