"""Sessions away: what a client that dropped would have been sent, kept for its return.

jupyter_server's clients name their session (``session_id``); one whose connection drops
without a clean close may come back. Until then an :class:`Offline` stands in for it in the
kernel's router and keeps its messages (its requests' replies and the broadcasts), up to a
byte limit, at most MAX_OFFLINE_SESSIONS sessions per kernel, for OFFLINE_SECONDS.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from kgw.channels import wire
from kgw.channels.router import Router

log = Logger()

# Sessions of one kernel whose messages are kept while they are away, and for how long.
MAX_OFFLINE_SESSIONS = 4
OFFLINE_SECONDS = 600.0


class Offline:
    """Stands in for a client that went away: keeps what it would have been sent."""

    def __init__(
        self, session_id: str, limit: int, give_up: Callable[[Offline, str], None]
    ) -> None:
        self.session_id = session_id
        self.expiry: IDelayedCall | None = None
        self.messages: list[wire.Parts] = []
        self._size = 0
        self._limit = limit
        self._give_up = give_up

    def deliver(self, parts: wire.Parts) -> None:
        self.messages.append(parts)
        self._size += sum(map(len, parts.json_parts)) + sum(map(len, parts.buffers))
        if self._size > self._limit:
            self.messages.clear()
            self._give_up(self, f"over {self._limit} bytes kept")

    def cork(self) -> None:
        pass

    def uncork(self) -> None:
        pass

    def close_for(self, code: int, reason: str) -> None:
        pass


class OfflineSessions:
    """The sessions of one kernel that are away, oldest first."""

    def __init__(self, kernel_id: str, router: Router[Hashable], clock: IReactorTime) -> None:
        self._kernel_id = kernel_id
        self._router = router
        self._clock = clock
        self._away: dict[str, Offline] = {}

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._away

    def come_back(self, connection: Hashable, session_id: str) -> bool:
        """If ``session_id`` is away, put ``connection`` in its place and replay what it
        missed; False when the session is not known."""
        offline = self._away.pop(session_id, None)
        if offline is None:
            return False
        if offline.expiry is not None and offline.expiry.active():
            offline.expiry.cancel()
        self._router.replace(offline, connection)
        log.info(
            "kernel {kernel_id}: session {session_id} is back; replaying {count} messages",
            kernel_id=self._kernel_id,
            session_id=session_id,
            count=len(offline.messages),
        )
        for parts in offline.messages:
            connection.deliver(parts)  # type: ignore[attr-defined]
        return True

    def go_away(self, connection: Hashable, session_id: str, limit: int) -> None:
        """``connection`` dropped: keep up to ``limit`` bytes for its session."""
        previous = self._away.get(session_id)
        if previous is not None:
            self.drop(previous, "replaced")
        offline = Offline(session_id, limit, self.drop)
        self._router.replace(connection, offline)
        self._away[session_id] = offline
        offline.expiry = self._clock.callLater(
            OFFLINE_SECONDS, self.drop, offline, f"away over {OFFLINE_SECONDS:.0f}s"
        )
        while len(self._away) > MAX_OFFLINE_SESSIONS:
            oldest = next(iter(self._away))
            self.drop(self._away[oldest], "too many sessions away")

    def drop(self, offline: Offline, reason: str) -> None:
        if offline.expiry is not None and offline.expiry.active():
            offline.expiry.cancel()
        if self._away.get(offline.session_id) is offline:
            del self._away[offline.session_id]
        self._router.detach(offline)
        log.info(
            "kernel {kernel_id}: no longer keeping messages for session {session_id} ({reason})",
            kernel_id=self._kernel_id,
            session_id=offline.session_id,
            reason=reason,
        )

    def drop_all(self, reason: str) -> None:
        for offline in list(self._away.values()):
            self.drop(offline, reason)
