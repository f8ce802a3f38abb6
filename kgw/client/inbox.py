"""Per-channel message queues that any thread, or any thread's event loop, can wait on.

The websocket lives on the client's I/O thread; the messages it reads wait in an
:class:`Inbox` per channel until the caller takes them, from plain code (blocking) or from a
coroutine on whatever event loop the caller runs (nbclient's, ``run_sync``'s, ...).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from queue import Empty
from typing import Any

Message = dict[str, Any]
Waker = Callable[[], None]


class Inbox:
    """A thread-safe FIFO of one channel's messages, with an optional error for when it is dry.

    When an error is set, callers still get every message already queued; once the queue is
    empty, taking raises the error (a dead kernel, a lost connection, stopped channels).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._messages: deque[Message] = deque()
        self._error: BaseException | None = None
        self._wakers: list[Waker] = []

    def put(self, message: Message) -> None:
        with self._lock:
            self._messages.append(message)
            wakers = list(self._wakers)
        for wake in wakers:
            wake()

    def set_error(self, error: BaseException | None) -> None:
        """Raise ``error`` to takers once the queue is empty (None: stop raising)."""
        with self._lock:
            self._error = error
            wakers = list(self._wakers)
        for wake in wakers:
            wake()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def take(self) -> Message | None:
        """The next message, None when there is none, or the error when dry and failed."""
        with self._lock:
            if self._messages:
                return self._messages.popleft()
            error = self._error
        if error is not None:
            raise error.with_traceback(None)
        return None

    def ready(self) -> bool:
        """Would ``take()`` return a message or raise, right now?"""
        with self._lock:
            return bool(self._messages) or self._error is not None

    def subscribe(self, wake: Waker) -> None:
        with self._lock:
            self._wakers.append(wake)

    def unsubscribe(self, wake: Waker) -> None:
        with self._lock:
            if wake in self._wakers:
                self._wakers.remove(wake)


def wait_any(inboxes: Sequence[Inbox], timeout: float | None) -> Inbox | None:
    """Block until one of ``inboxes`` is ready; return it, or None after ``timeout``."""
    event = threading.Event()
    deadline = None if timeout is None else time.monotonic() + timeout
    for inbox in inboxes:
        inbox.subscribe(event.set)
    try:
        while True:
            for inbox in inboxes:
                if inbox.ready():
                    return inbox
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            event.wait(remaining)
            event.clear()
    finally:
        for inbox in inboxes:
            inbox.unsubscribe(event.set)


async def await_any(inboxes: Sequence[Inbox], timeout: float | None) -> Inbox | None:
    """Wait, on the running event loop, until one of ``inboxes`` is ready (None on timeout).

    Cancelling the wait loses no message: messages are only taken after it returns.
    """
    loop = asyncio.get_running_loop()
    event = asyncio.Event()

    def wake() -> None:
        try:
            loop.call_soon_threadsafe(event.set)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            pass

    deadline = None if timeout is None else loop.time() + timeout
    for inbox in inboxes:
        inbox.subscribe(wake)
    try:
        while True:
            for inbox in inboxes:
                if inbox.ready():
                    return inbox
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass
            event.clear()
    finally:
        for inbox in inboxes:
            inbox.unsubscribe(wake)


def take_blocking(inbox: Inbox, timeout: float | None) -> Message:
    """Wait for the next message; ``queue.Empty`` after ``timeout`` seconds (None: no limit)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if wait_any([inbox], remaining) is None:
            raise Empty
        message = inbox.take()
        if message is not None:
            return message


async def take(inbox: Inbox, timeout: float | None) -> Message:
    """:func:`take_blocking` on the running event loop."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if await await_any([inbox], remaining) is None:
            raise Empty
        message = inbox.take()
        if message is not None:
            return message


def take_all(inbox: Inbox) -> list[Message]:
    """Every message waiting now."""
    messages = []
    while (message := inbox.take()) is not None:
        messages.append(message)
    return messages
