"""The channel objects of a gateway client: shell, iopub, stdin, control and a heartbeat.

jupyter_client's client code sends with ``channel.send(msg)`` and reads with
``channel.get_msg(timeout)``. Here every channel sends through the client's one websocket and
reads from its own :class:`Inbox`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from jupyter_client.channelsabc import HBChannelABC

from kgw.client.inbox import Inbox, Message, take, take_all, take_blocking

Send = Callable[[str, Message], None]


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Channel:
    """One Jupyter channel of a gateway client."""

    def __init__(self, name: str, inbox: Inbox, send: Send, alive: Callable[[Inbox], bool]) -> None:
        self.name = name
        self._inbox = inbox
        self._send = send
        self._alive = alive

    def send(self, msg: Message) -> None:
        """Send a message from ``Session.msg()`` on this channel."""
        self._send(self.name, msg)

    def start(self) -> None:
        """Channels start together, with the client's websocket (``start_channels``)."""

    def stop(self) -> None:
        """Channels stop together (``stop_channels``)."""

    close = stop

    def is_alive(self) -> bool:
        return self._alive(self._inbox)


class AsyncGatewayChannel(Channel):
    """A channel whose ``get_msg`` is a coroutine, like jupyter_client's AsyncZMQSocketChannel."""

    async def get_msg(self, timeout: float | None = None) -> Message:
        """The next message; ``queue.Empty`` after ``timeout`` seconds (None: no limit)."""
        return await take(self._inbox, timeout)

    async def get_msgs(self) -> list[Message]:
        return take_all(self._inbox)

    async def msg_ready(self) -> bool:
        return self._inbox.ready()


class GatewayChannel(Channel):
    """A channel that blocks when called from plain code and returns an awaitable when called
    where an event loop runs (a coroutine, including jupyter_client's own ``run_sync``
    wrappers and nbclient), so one client serves scripts and nbclient alike."""

    def get_msg(self, timeout: float | None = None) -> Message | Awaitable[Message]:
        """The next message; ``queue.Empty`` after ``timeout`` seconds (None: no limit)."""
        if _in_event_loop():
            return take(self._inbox, timeout)
        return take_blocking(self._inbox, timeout)

    def get_msgs(self) -> list[Message]:
        return take_all(self._inbox)

    def msg_ready(self) -> bool | Awaitable[bool]:
        ready = self._inbox.ready()
        if _in_event_loop():

            async def answer() -> bool:
                return ready

            return answer()
        return ready


class GatewayHBChannel(HBChannelABC):
    """The heartbeat, as the websocket sees it: beating while the socket is open."""

    time_to_dead: float = 1.0

    def __init__(self, running: Callable[[], bool], open_now: Callable[[], bool]) -> None:
        self._running = running
        self._open_now = open_now
        self._paused = False

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def is_alive(self) -> bool:
        return self._running()

    def pause(self) -> None:
        self._paused = True

    def unpause(self) -> None:
        self._paused = False

    def is_beating(self) -> bool:
        return not self._paused and self._open_now()
