"""A kernel's four ZeroMQ sockets (shell, control, stdin, iopub) in the reactor, via txZMQ.

This is the bridge's only I/O with the kernel: :class:`KernelSockets` connects to the ports in
a kernel's connection info, hands every message it reads to a callback (in batches, so that
the reactor writes between them), sends frames on a channel, and says when the stdin socket
has completed its handshake. The bridge takes any object with the :class:`Sockets` shape,
so unit tests give it one that keeps frames in memory.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import zmq
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from txzmq import ZmqConnection, ZmqEndpoint, ZmqEndpointType, ZmqFactory

# How much one read of a ZeroMQ socket may deliver before the reactor gets to write it out.
READ_BATCH_MESSAGES = 256
READ_BATCH_BYTES = 1024 * 1024

CHANNEL_TYPES = {"shell": zmq.DEALER, "control": zmq.DEALER, "stdin": zmq.DEALER, "iopub": zmq.SUB}


class Sockets(Protocol):
    """What the bridge needs of a kernel's sockets."""

    def send(self, channel: str, frames: list[bytes]) -> None: ...

    def stdin_connected(self) -> Deferred[None]: ...

    def drain(self) -> None: ...

    def close(self) -> None: ...


# (connection info, CurveZMQ keys or None, on_message(channel, frames), on_batch_end)
OpenSockets = Callable[
    [
        Mapping[str, Any],
        "tuple[bytes, bytes] | None",
        Callable[[str, list[bytes]], None],
        Callable[[], None],
    ],
    Sockets,
]


class KernelSockets:
    """The four channels of one kernel process, connected to its connection info."""

    def __init__(
        self,
        factory: ZmqFactory,
        info: Mapping[str, Any],
        curve: tuple[bytes, bytes] | None,
        on_message: Callable[[str, list[bytes]], None],
        on_batch_end: Callable[[], None],
    ) -> None:
        # stdin must share the shell socket's identity: the kernel sends input_request
        # to the identity its execute_request came from.
        identity = uuid.uuid4().hex.encode()
        identities = {"shell": identity, "stdin": identity}
        self._sockets: dict[str, _Socket] = {}
        for channel, socket_type in CHANNEL_TYPES.items():
            sock = _Socket(
                factory,
                socket_type,
                functools.partial(on_message, channel),
                on_batch_end,
                identities.get(channel),
                curve,
            )
            sock.addEndpoints(
                [ZmqEndpoint(ZmqEndpointType.connect, _address(info, f"{channel}_port"))]
            )
            self._sockets[channel] = sock
        self._stdin_handshake = _Handshake(factory, self._sockets["stdin"])

    def send(self, channel: str, frames: list[bytes]) -> None:
        self._sockets[channel].send(frames)

    def stdin_connected(self) -> Deferred[None]:
        return self._stdin_handshake.wait()

    def drain(self) -> None:
        """Read, now, every message already waiting on every channel (the kernel died: what
        it said last, a busy status for a request it began, must be seen before deciding
        which requests it never began)."""
        for sock in self._sockets.values():
            sock.drain()

    def close(self) -> None:
        self._stdin_handshake.close()
        for sock in self._sockets.values():
            sock.shutdown()
        self._sockets.clear()


class _Socket(ZmqConnection):  # type: ignore[misc]
    """A txZMQ socket that hands each multipart message to a callback."""

    read_scheduled: IDelayedCall | None

    def __init__(
        self,
        factory: ZmqFactory,
        socket_type: int,
        on_message: Callable[[list[bytes]], None],
        on_batch_end: Callable[[], None],
        identity: bytes | None,
        curve: tuple[bytes, bytes] | None,
    ) -> None:
        self.socketType = socket_type
        self._on_message = on_message
        self._on_batch_end = on_batch_end
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
        try:
            self._read_batch()
        finally:
            self._on_batch_end()

    def drain(self, most: int = 100_000) -> None:
        """Read at most ``most`` messages that are waiting now, in one go."""
        try:
            for _ in range(most):
                if self.factory is None or not self.socket.get(zmq.EVENTS) & zmq.POLLIN:
                    return
                try:
                    self.messageReceived(self._readMultipart())
                except zmq.Again:
                    return
        finally:
            self._on_batch_end()

    def _read_batch(self) -> None:
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


class _Handshake:
    """Learns, from a ZeroMQ socket monitor, when a socket has completed its handshake.

    A kernel's ROUTER sockets silently drop messages for a peer they have not met yet, and
    a DEALER that tried to connect before the kernel listened only retries every
    ``RECONNECT_IVL`` (100 ms): until the stdin socket's handshake is done, the kernel's
    ``input_request`` is lost and ``input()`` waits forever.
    """

    def __init__(self, factory: ZmqFactory, sock: _Socket) -> None:
        address = f"inproc://kgw-monitor-{uuid.uuid4().hex}"
        sock.socket.monitor(address, zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self.done = False
        self._watched = sock
        self._waiting: list[Deferred[None]] = []
        self._monitor = _Socket(factory, zmq.PAIR, self._event, lambda: None, None, None)
        self._monitor.addEndpoints([ZmqEndpoint(ZmqEndpointType.connect, address)])
        # ZMQ_FD is edge-triggered and a new pipe gives no edge until a read has found it
        # empty: read once now, or the first event never wakes the reactor.
        self._monitor.doRead()

    def _event(self, frames: list[bytes]) -> None:
        self.done = True
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    def wait(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        if self.done:
            d.callback(None)
        else:
            self._waiting.append(d)
        return d

    def close(self) -> None:
        if self._watched.socket is not None:
            self._watched.socket.disable_monitor()
        if self._monitor.factory is not None:
            self._monitor.shutdown()


def _address(info: Mapping[str, Any], port_name: str) -> str:
    transport = info.get("transport", "tcp")
    ip = info.get("ip", "127.0.0.1")
    if transport == "ipc":
        return f"ipc://{ip}-{info[port_name]}"
    return f"{transport}://{ip}:{info[port_name]}"
