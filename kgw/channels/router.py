"""Sans-I/O routing: which connection gets which kernel message.

One set of ZeroMQ sockets serves every websocket of a kernel, so replies must be sent back
to the connection whose request they answer. A request's ``msg_id`` is remembered with its
connection; a shell or control message from the kernel goes to the connection that sent its
parent, and so does a stdin ``input_request`` (its parent is the execute_request). iopub goes
to every connection. Memory is bounded: a connection remembers at most ``max_pending``
requests, and forgets them all when it goes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

from kgw.channels.wire import Parts

C = TypeVar("C", bound=Hashable)

_ANSWERED_CHANNELS = frozenset({"shell", "control"})
_ANSWERED_KEPT = 64  # answered requests remembered for ordering their iopub output


class Router(Generic[C]):
    """Remembers who asked what, and answers who should get a kernel message."""

    def __init__(self, max_pending: int = 10_000) -> None:
        self._max_pending = max_pending
        self._owner: dict[str, C] = {}
        # Requests answered lately, and by whom: their iopub output (the idle status comes
        # after the reply) still goes to the requester first.
        self._answered: OrderedDict[str, C] = OrderedDict()
        self._pending: dict[C, OrderedDict[str, None]] = {}

    @property
    def connections(self) -> list[C]:
        return list(self._pending)

    def attach(self, connection: C) -> None:
        self._pending.setdefault(connection, OrderedDict())

    def detach(self, connection: C) -> None:
        for msg_id in self._pending.pop(connection, ()):
            if self._owner.get(msg_id) == connection:
                del self._owner[msg_id]
        for msg_id in [m for m, c in self._answered.items() if c == connection]:
            del self._answered[msg_id]

    def replace(self, old: C, new: C) -> None:
        """``new`` takes ``old``'s place: its pending requests, and the replies to them."""
        pending = self._pending.pop(old, None)
        if pending is None:
            self.attach(new)
            return
        self._pending[new] = pending
        for msg_id in pending:
            if self._owner.get(msg_id) == old:
                self._owner[msg_id] = new
        for msg_id, connection in self._answered.items():
            if connection == old:
                self._answered[msg_id] = new

    def clear_requests(self) -> None:
        """Forget every outstanding request (the kernel restarted; no reply will come)."""
        self._owner.clear()
        self._answered.clear()
        for pending in self._pending.values():
            pending.clear()

    def request(self, connection: C, parts: Parts) -> None:
        """Note a message a connection sends to the kernel, if a reply will answer it."""
        if parts.channel not in _ANSWERED_CHANNELS or not parts.msg_type.endswith("_request"):
            return
        pending = self._pending.get(connection)
        if pending is None:
            return
        msg_id = parts.msg_id
        pending[msg_id] = None
        pending.move_to_end(msg_id)
        self._owner[msg_id] = connection
        while len(pending) > self._max_pending:
            oldest, _ = pending.popitem(last=False)
            if self._owner.get(oldest) == connection:
                del self._owner[oldest]

    def route(self, parts: Parts) -> list[C]:
        """The connections that get a message from the kernel."""
        if parts.channel == "iopub":
            return self._broadcast(parts)
        parent = parts.parent_msg_id()
        owner = self._owner.get(parent)
        if owner is None:
            return []
        if parts.channel in _ANSWERED_CHANNELS and parts.msg_type.endswith("_reply"):
            del self._owner[parent]
            self._pending[owner].pop(parent, None)
            self._answered[parent] = owner
            if len(self._answered) > _ANSWERED_KEPT:
                self._answered.popitem(last=False)
        return [owner]

    def _broadcast(self, parts: Parts) -> list[C]:
        """Every connection; the one whose request caused the message first."""
        connections = list(self._pending)
        if len(connections) > 1:
            parent = parts.parent_msg_id()
            owner = self._owner.get(parent) or self._answered.get(parent)
            if owner is not None and connections[0] != owner:
                connections.remove(owner)
                connections.insert(0, owner)
        return connections

    def requester(self, parts: Parts) -> C | None:
        """The connection whose request ``parts`` answers or reports on, if known."""
        parent = parts.parent_msg_id()
        return self._owner.get(parent) or self._answered.get(parent)
