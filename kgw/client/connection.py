"""One channels websocket to one kernel, reopened with the same session when it drops.

The connection runs on an asyncio event loop (the client's I/O thread). It offers the v1
subprotocol and falls back to JSON frames when the gateway does not select it. Messages sent
while the socket is down wait and go out, in order, once it is open again. A handshake that
the gateway refuses for good (401, 403, 404: the kernel is gone) ends the connection at once;
anything else (a dropped socket, a refused TCP connection, a 5xx) is retried within the
:class:`RetryPolicy` budget, after which the connection fails with ``ConnectionLost``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol

from kgw.channels import wire
from kgw.client import framing
from kgw.client.errors import ConnectionLost, GatewayError, GatewayHTTPError, KernelDied
from kgw.client.inbox import Message
from kgw.client.settings import GatewaySettings, RetryPolicy

log = logging.getLogger("kgw.client")

CLOSE_TIMEOUT = 5.0


class Socket(Protocol):
    """What the connection needs of an open websocket."""

    @property
    def subprotocol(self) -> str | None: ...

    async def recv(self) -> str | bytes:
        """The next frame; raises ``websockets.exceptions.ConnectionClosed`` when closed."""

    async def send(self, payload: bytes, text: bool) -> None: ...

    async def close(self) -> None: ...


Connector = Callable[[str, GatewaySettings], Awaitable[Socket]]


class _WebsocketsSocket:
    """A ``websockets`` client connection seen as a :class:`Socket`."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection

    @property
    def subprotocol(self) -> str | None:
        return self._connection.subprotocol

    async def recv(self) -> str | bytes:
        return await self._connection.recv()

    async def send(self, payload: bytes, text: bool) -> None:
        await self._connection.send(payload, text=text)

    async def close(self) -> None:
        await self._connection.close()


async def open_websocket(url: str, settings: GatewaySettings) -> Socket:
    """Open a websocket with ``websockets``; an HTTP error answer raises GatewayHTTPError."""
    try:
        connection = await connect(
            url,
            additional_headers=settings.http_headers(),
            subprotocols=[Subprotocol(p) for p in settings.subprotocols] or None,
            ssl=settings.ssl_context if url.startswith("wss:") else None,
            open_timeout=settings.connect_timeout,
            close_timeout=CLOSE_TIMEOUT,
            max_size=None,
            proxy=None,
        )
    except InvalidStatus as e:
        response = e.response
        raise GatewayHTTPError.from_response(
            "GET", url, response.status_code, response.reason_phrase, bytes(response.body or b"")
        ) from e
    return _WebsocketsSocket(connection)


class RetryBudget:
    """Counts reconnection attempts against a :class:`RetryPolicy`; time is passed in."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._failures = 0
        self._opened_at: float | None = None

    def opened(self, now: float) -> None:
        self._opened_at = now

    def dropped(self, now: float) -> None:
        """An open connection dropped; one that had been up long enough renews the budget."""
        if self._opened_at is not None and now - self._opened_at >= self._policy.stable_after:
            self._failures = 0
        self._opened_at = None

    def next_delay(self) -> float | None:
        """Seconds to wait before the next attempt, or None when the budget is spent."""
        if self._failures >= self._policy.attempts:
            return None
        delay = 0.0
        if self._failures:
            delay = min(
                self._policy.interval * 2 ** (self._failures - 1), self._policy.interval_max
            )
        self._failures += 1
        return delay

    @property
    def attempts(self) -> int:
        return self._failures


def is_permanent(error: BaseException) -> bool:
    """Would trying the handshake again be pointless (a wrong token, a kernel that is gone,
    a certificate that does not verify)?"""
    if isinstance(error, KernelDied | ssl.SSLCertVerificationError | InvalidURI):
        return True
    if isinstance(error, GatewayHTTPError):
        return 400 <= error.status < 500 and error.status not in (408, 429)
    return False


def describe_close(error: ConnectionClosed) -> str:
    if error.rcvd is None:
        return "connection lost (no close frame)"
    reason = f" {error.rcvd.reason}" if error.rcvd.reason else ""
    return f"closed by the gateway ({error.rcvd.code}{reason})"


class ChannelsConnection:
    """The websocket of one kernel's channels, for one client session."""

    def __init__(
        self,
        settings: GatewaySettings,
        kernel_id: str,
        session_id: str,
        deliver: Callable[[str, Message], None],
        on_failure: Callable[[GatewayError], None],
        connector: Connector = open_websocket,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = settings.channels_url(kernel_id, session_id)
        self.kernel_id = kernel_id
        self.state = "new"
        self.failure: GatewayError | None = None
        self._settings = settings
        self._deliver = deliver
        self._on_failure = on_failure
        self._connector = connector
        self._clock = clock
        self._budget = RetryBudget(settings.retry)
        self._outbox: deque[wire.Parts] = deque()
        self._socket: Socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._shut_down = False

    # --- called on the event loop ----------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._outbox_ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task = self._loop.create_task(self._run(), name=f"kgw channels {self.kernel_id}")

    async def close(self) -> None:
        """Close the websocket (1000) and stop reconnecting."""
        self._stopping.set()
        if self._socket is not None:
            await self._socket.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), CLOSE_TIMEOUT)
            except TimeoutError:
                self._task.cancel()
        self.state = "closed"

    # --- called from any thread ------------------------------------------------------------

    def kernel_shut_down(self) -> None:
        """The kernel was shut down on purpose: when the socket closes, do not reconnect."""
        self._shut_down = True

    def send(self, parts: wire.Parts) -> None:
        """Queue a message; it goes out in order as soon as the websocket is open."""
        if self.failure is not None:
            raise self.failure.with_traceback(None)
        self._loop.call_soon_threadsafe(self._enqueue, parts)

    # --- the connection's life -------------------------------------------------------------

    def _enqueue(self, parts: wire.Parts) -> None:
        self._outbox.append(parts)
        self._outbox_ready.set()

    async def _run(self) -> None:
        try:
            await self._connect_and_serve()
        except Exception as e:  # a bug: fail every wait now rather than leave them hanging
            log.exception("kernel %s: the channels websocket broke", self.kernel_id)
            self._fail(GatewayError(f"the channels websocket broke: {e!r}"))

    async def _connect_and_serve(self) -> None:
        while not self._stopping.is_set():
            self.state = "connecting" if self.state == "new" else "reconnecting"
            try:
                socket = await self._connector(self.url, self._settings)
            except Exception as e:
                error = self._kernel_error(e)
                if is_permanent(e) or is_permanent(error):
                    return self._fail(error)
                trouble = f"cannot connect: {error}"
            else:
                trouble = await self._serve(socket)
            if self._stopping.is_set():
                return
            if self._shut_down:
                return self._fail(KernelDied(self.kernel_id, "it was shut down"))
            delay = self._budget.next_delay()
            if delay is None:
                attempts = self._settings.retry.attempts
                return self._fail(
                    ConnectionLost(
                        f"kernel {self.kernel_id}: channels websocket {trouble}; "
                        f"gave up after {attempts} attempts to reconnect"
                    )
                )
            log.warning(
                "kernel %s: channels websocket %s; reconnecting in %.1f s",
                self.kernel_id,
                trouble,
                delay,
            )
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except TimeoutError:
                pass

    async def _serve(self, socket: Socket) -> str:
        """Pump frames both ways until the socket closes; say how it ended."""
        if self._stopping.is_set():
            await socket.close()
            return "closed"
        self._socket = socket
        self.state = "open"
        self._budget.opened(self._clock())
        v1 = socket.subprotocol == wire.V1_SUBPROTOCOL
        log.debug("kernel %s: channels open (%s)", self.kernel_id, "v1" if v1 else "json")
        writer = asyncio.create_task(self._write(socket, v1))
        try:
            while True:
                try:
                    frame = await socket.recv()
                except ConnectionClosed as e:
                    return describe_close(e)
                self._receive(frame, v1)
        finally:
            self._socket = None
            self._budget.dropped(self._clock())
            writer.cancel()
            try:
                await writer
            except asyncio.CancelledError:
                pass

    async def _write(self, socket: Socket, v1: bool) -> None:
        while True:
            while self._outbox:
                parts = self._outbox[0]
                try:
                    payload, text = framing.encode(parts, v1)
                except wire.FrameError as e:
                    log.error("kernel %s: cannot frame a message: %s", self.kernel_id, e)
                else:
                    try:
                        await socket.send(payload, text)
                    except ConnectionClosed:
                        return  # the message stays queued for the next connection
                    except Exception:
                        await socket.close()  # ends the reader too; _run reports the error
                        raise
                self._outbox.popleft()
            self._outbox_ready.clear()
            await self._outbox_ready.wait()

    def _receive(self, frame: str | bytes, v1: bool) -> None:
        try:
            channel, message = framing.decode(frame, v1)
        except wire.FrameError as e:
            log.warning("kernel %s: ignoring a malformed frame: %s", self.kernel_id, e)
            return
        self._deliver(channel, message)

    def _kernel_error(self, error: Exception) -> GatewayError:
        if isinstance(error, GatewayHTTPError) and error.status == 404:
            detail = error.message or "the gateway does not know it"
            died = KernelDied(self.kernel_id, detail)
            died.__cause__ = error
            return died
        if isinstance(error, GatewayError):
            return error
        return GatewayError(f"{type(error).__name__}: {error}")

    def _fail(self, error: GatewayError) -> None:
        level = logging.DEBUG if self._shut_down else logging.ERROR
        log.log(level, "kernel %s: channels websocket ended: %s", self.kernel_id, error)
        self.failure = error
        self.state = "failed"
        self._on_failure(error)
