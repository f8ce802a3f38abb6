"""One set of txZMQ sockets per kernel, shared by all of its websocket connections."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Hashable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import zmq
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from txzmq import ZmqConnection, ZmqEndpoint, ZmqEndpointType, ZmqFactory

from kgw.channels import wire
from kgw.channels.router import Router

log = Logger()

# How much one read of a ZeroMQ socket may deliver before the reactor gets to write it out.
READ_BATCH_MESSAGES = 256
READ_BATCH_BYTES = 1024 * 1024


class KernelConnection(Hashable, Protocol):
    """What the bridge needs of a client connection."""

    def deliver(self, parts: wire.Parts) -> None: ...

    def close_for(self, code: int, reason: str) -> None: ...


class _Socket(ZmqConnection):  # type: ignore[misc]
    """A txZMQ socket that hands each multipart message to a callback."""

    read_scheduled: IDelayedCall | None

    def __init__(
        self,
        factory: ZmqFactory,
        socket_type: int,
        on_message: Callable[[list[bytes]], None],
        identity: bytes | None,
        curve: tuple[bytes, bytes] | None,
    ) -> None:
        self.socketType = socket_type
        self._on_message = on_message
        super().__init__(factory, identity=identity)
        if curve is not None:
            public, secret = curve
            self.socket.curve_secretkey = secret
            self.socket.curve_publickey = public
            self.socket.curve_serverkey = public
        if socket_type == zmq.SUB:
            self.socket.setsockopt(zmq.SUBSCRIBE, b"")

    def messageReceived(self, message: list[bytes]) -> None:
        self._on_message(message)

    def doRead(self) -> None:
        """Read what ZeroMQ has, but at most a batch before letting the reactor write.

        txZMQ drains the socket in one go; a kernel printing fast would then fill every
        client's send buffer before any of it is written. ZMQ_FD is edge-triggered, so an
        unfinished batch schedules the next one itself.
        """
        if self.read_scheduled is not None:
            if self.read_scheduled.active():
                self.read_scheduled.cancel()
            self.read_scheduled = None
        budget = READ_BATCH_BYTES
        for _ in range(READ_BATCH_MESSAGES):
            if self.factory is None or not self.socket.get(zmq.EVENTS) & zmq.POLLIN:
                return
            try:
                message = self._readMultipart()
            except zmq.Again:
                continue
            self.messageReceived(message)
            budget -= sum(len(part) for part in message)
            if budget <= 0:
                break
        if self.factory is not None:
            self.read_scheduled = self.factory.reactor.callLater(0, self.doRead)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ChannelBridge:
    """Relays Jupyter messages between one kernel's ZeroMQ channels and its connections."""

    def __init__(
        self,
        kernel_id: str,
        connection_info: Mapping[str, Any],
        zmq_factory: ZmqFactory,
        clock: IReactorTime,
    ) -> None:
        self.kernel_id = kernel_id
        self._factory = zmq_factory
        self._clock = clock
        self._router: Router[Hashable] = Router()
        self._sockets: dict[str, _Socket] = {}
        self._session = uuid.uuid4().hex
        self._waiters: list[tuple[str, Deferred[None]]] = []
        self.execution_state = "starting"
        self.last_activity = _utcnow()
        self.connect(connection_info)

    # --- sockets ---------------------------------------------------------------------------

    def connect(self, info: Mapping[str, Any]) -> None:
        """(Re)connect every channel to the kernel described by ``info``."""
        self._close_sockets()
        key = info.get("key", b"")
        self._signer = wire.Signer(
            key.encode() if isinstance(key, str) else key,
            info.get("signature_scheme", "hmac-sha256"),
        )
        curve = None
        if info.get("curve_publickey") and info.get("curve_secretkey"):
            curve = (info["curve_publickey"].encode(), info["curve_secretkey"].encode())
        # stdin must share the shell socket's identity: the kernel sends input_request
        # to the identity its execute_request came from.
        identity = uuid.uuid4().hex.encode()
        kinds = {
            "shell": (zmq.DEALER, identity),
            "control": (zmq.DEALER, None),
            "stdin": (zmq.DEALER, identity),
            "iopub": (zmq.SUB, None),
        }
        for channel, (socket_type, ident) in kinds.items():
            sock = _Socket(
                self._factory,
                socket_type,
                functools.partial(self._from_kernel, channel),
                ident,
                curve,
            )
            sock.addEndpoints(
                [ZmqEndpoint(ZmqEndpointType.connect, _address(info, f"{channel}_port"))]
            )
            self._sockets[channel] = sock
        self._router.clear_requests()

    def _close_sockets(self) -> None:
        for sock in self._sockets.values():
            sock.shutdown()
        self._sockets.clear()

    def close(self, code: int = 1001, reason: str = "kernel shut down") -> None:
        """Close every client connection and every socket."""
        for connection in self._router.connections:
            if connection is not self:
                connection.close_for(code, reason)  # type: ignore[attr-defined]
        for _, waiter in self._waiters:
            waiter.errback(ConnectionError(reason))
        self._waiters.clear()
        self._close_sockets()

    # --- connections -----------------------------------------------------------------------

    @property
    def connection_count(self) -> int:
        return len([c for c in self._router.connections if c is not self])

    def attach(self, connection: KernelConnection) -> None:
        self._router.attach(connection)

    def detach(self, connection: KernelConnection) -> None:
        self._router.detach(connection)

    def send(self, connection: Hashable, parts: wire.Parts) -> None:
        """Send a client's message to the kernel on the channel it names."""
        sock = self._sockets.get(parts.channel)
        if sock is None or parts.channel == "iopub":
            raise wire.FrameError(f"unknown channel {parts.channel!r}")
        self._router.request(connection, parts)
        self.last_activity = _utcnow()
        sock.send(wire.parts_to_zmq(parts, self._signer))

    def _from_kernel(self, channel: str, frames: list[bytes]) -> None:
        try:
            parts = wire.zmq_to_parts(channel, frames, self._signer)
            msg_type = parts.msg_type
        except wire.FrameError as e:
            log.warn(
                "kernel {kernel_id}: dropped a message on {channel}: {error}",
                kernel_id=self.kernel_id,
                channel=channel,
                error=str(e),
            )
            return
        self.last_activity = _utcnow()
        if channel == "iopub" and msg_type == "status":
            self._note_status(parts)
            if self._waiters and self.execution_state == "idle":
                self._nudge_answered(parts)
        for connection in self._router.route(parts):
            if connection is not self:
                connection.deliver(parts)  # type: ignore[attr-defined]

    def _note_status(self, parts: wire.Parts) -> None:
        try:
            state = json.loads(parts.content).get("execution_state")
        except (ValueError, AttributeError):
            return
        if isinstance(state, str):
            self.execution_state = state

    # --- readiness -------------------------------------------------------------------------

    def request_kernel_info(self) -> str:
        """Ask the kernel for kernel_info on behalf of the gateway; returns the msg_id."""
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "kernel_info_request",
            "session": self._session,
            "username": "kgw",
            "date": _utcnow().isoformat(),
            "version": "5.3",
        }
        self._router.attach(self)
        self.send(self, wire.message_to_parts({"header": header, "channel": "shell"}))
        return msg_id

    def _nudge_answered(self, parts: wire.Parts) -> None:
        """The idle status after a readiness request: shell and iopub both work."""
        parent = parts.parent_msg_id()
        for waiter in list(self._waiters):
            if waiter[0] == parent:
                self._waiters.remove(waiter)
                waiter[1].callback(None)

    async def wait_ready(self, timeout: float, interval: float = 1.0) -> None:
        """Wait until a kernel_info request's idle status comes back on iopub.

        A SUB socket misses what is published before it has joined, so the request is
        repeated until iopub carries the answer (jupyter_server calls this a nudge).
        """
        deadline = self._clock.seconds() + timeout
        self._router.attach(self)
        try:
            while (remaining := deadline - self._clock.seconds()) > 0:
                answered: Deferred[None] = Deferred()
                waiter = (self.request_kernel_info(), answered)
                self._waiters.append(waiter)
                answered.addTimeout(min(interval, remaining), self._clock)
                try:
                    await answered
                    return
                except defer.TimeoutError:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
            raise TimeoutError(f"kernel {self.kernel_id} did not answer within {timeout:.0f}s")
        finally:
            self._router.detach(self)


def _address(info: Mapping[str, Any], port_name: str) -> str:
    transport = info.get("transport", "tcp")
    ip = info.get("ip", "127.0.0.1")
    if transport == "ipc":
        return f"ipc://{ip}-{info[port_name]}"
    return f"{transport}://{ip}:{info[port_name]}"
