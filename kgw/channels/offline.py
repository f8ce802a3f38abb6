"""Sessions away: the readers of clients that dropped, kept for their return.

jupyter_server's clients name their session (``session_id``); one whose connection drops
without a clean close may come back. Until then its :class:`~kgw.channels.backlog.Reader`
stays in the kernel's router and backlog without a consumer: its requests' replies and
the kernel's broadcasts wait for it there (within the backlog's limit), at most
MAX_OFFLINE_SESSIONS sessions per kernel, for OFFLINE_SECONDS. A connection that comes back
with the session id takes the reader over and reads on from where the last one stopped.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from kgw.channels.backlog import Reader

log = Logger()

# Sessions of one kernel whose messages are kept while they are away, and for how long.
MAX_OFFLINE_SESSIONS = 4
OFFLINE_SECONDS = 600.0


class OfflineSessions:
    """The sessions of one kernel that are away, oldest first."""

    def __init__(
        self, kernel_id: str, forget: Callable[[Reader], None], clock: IReactorTime
    ) -> None:
        self._kernel_id = kernel_id
        self._forget = forget  # removes a reader from the router and the backlog
        self._clock = clock
        self._away: dict[str, tuple[Reader, IDelayedCall]] = {}

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._away

    def come_back(self, session_id: str) -> Reader | None:
        """The reader of ``session_id`` if it is away (no longer away from now on)."""
        away = self._away.pop(session_id, None)
        if away is None:
            return None
        reader, expiry = away
        if expiry.active():
            expiry.cancel()
        log.info(
            "kernel {kernel_id}: session {session_id} is back",
            kernel_id=self._kernel_id,
            session_id=session_id,
        )
        return reader

    def go_away(self, reader: Reader, session_id: str) -> None:
        """``reader``'s connection dropped: keep it for its session."""
        reader.consumer = None
        if session_id in self._away:
            self.drop(session_id, "replaced")
        expiry = self._clock.callLater(
            OFFLINE_SECONDS, self.drop, session_id, f"away over {OFFLINE_SECONDS:.0f}s"
        )
        self._away[session_id] = (reader, expiry)
        while len(self._away) > MAX_OFFLINE_SESSIONS:
            self.drop(next(iter(self._away)), "too many sessions away")

    def drop(self, session_id: str, reason: str) -> None:
        away = self._away.pop(session_id, None)
        if away is None:
            return
        reader, expiry = away
        if expiry.active():
            expiry.cancel()
        self._forget(reader)
        log.info(
            "kernel {kernel_id}: no longer keeping messages for session {session_id} ({reason})",
            kernel_id=self._kernel_id,
            session_id=session_id,
            reason=reason,
        )

    def drop_all(self, reason: str) -> None:
        for session_id in list(self._away):
            self.drop(session_id, reason)
