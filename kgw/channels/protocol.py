"""The Autobahn protocol of one client websocket on /api/kernels/{id}/channels."""

from __future__ import annotations

import json
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionRequest
from twisted.internet import tcp
from twisted.internet.interfaces import IAddress, IDelayedCall, IPushProducer
from twisted.logger import Logger
from twisted.web.http import RESPONSES
from zope.interface import implementer

from kgw.channels import frames, wire
from kgw.channels.backlog import Reader
from kgw.channels.bridge import ChannelBridge
from kgw.errors import error_body

log = Logger()

# Close codes (RFC 6455): going away, policy violation (a client too slow to keep up).
GOING_AWAY = 1001
STALLED = 1008
MAX_CLIENT_MESSAGE = 256 * 1024 * 1024


@implementer(IPushProducer)
class ChannelsProtocol(WebSocketServerProtocol):
    """Relays one client's frames to its kernel's bridge, and the kernel's messages back.

    Flow control: the protocol is the push producer of its transport. Its
    :class:`~kgw.channels.backlog.Reader` writes to it only while Twisted has not paused it
    (the socket's send buffer has room), and again when Twisted resumes it; what the client
    has not read yet waits in the kernel's backlog, not here. A client that reads nothing for
    ``stall_timeout`` seconds while output waits for it is closed; the kernel and the other
    clients go on.
    """

    bridge: ChannelBridge
    stall_timeout: float

    def __init__(self) -> None:
        super().__init__()
        self._v1 = False
        self.wire_format = frames.JSON
        self._paused = False
        self._reader: Reader | None = None
        self._tcp: tcp.Connection | None = None  # a plain TCP transport, written eagerly
        self._session_id = ""
        self._dropped_by_us = False  # closed for stalling: nothing is kept for it
        self._stall: IDelayedCall | None = None
        self._unsent: int | None = None  # bytes the transport had not sent at the last check

    # --- handshake and lifetime ------------------------------------------------------------

    def onConnect(self, request: ConnectionRequest) -> str | None:
        # jupyter_server's clients name their session: one that comes back after a dropped
        # connection gets what it missed.
        self._session_id = (request.params.get("session_id") or [""])[0][:128]
        if wire.V1_SUBPROTOCOL in request.protocols:
            self._v1 = True
            self.wire_format = frames.V1
            return wire.V1_SUBPROTOCOL
        return None

    def onOpen(self) -> None:
        # Twisted's HTTP channel was the transport's producer until the upgrade.
        transport: Any = self.transport
        transport.unregisterProducer()
        transport.registerProducer(self, True)
        if isinstance(transport, tcp.Connection):  # not under TLS
            self._tcp = transport
        log.info(
            "kernel {kernel_id}: websocket opened ({wire_format})",
            kernel_id=self.bridge.kernel_id,
            wire_format=self.wire_format,
        )
        self._reader = self.bridge.attach(self, self._session_id)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self._cancel_stall()
        reader, self._reader = self._reader, None
        if reader is not None:
            # A connection that dropped (no clean close) may come back: keep its messages.
            lost = not wasClean or code in (None, 1006)
            self.bridge.detach(reader, self._session_id, lost and not self._dropped_by_us)
            log.info(
                "kernel {kernel_id}: websocket closed ({code})",
                kernel_id=self.bridge.kernel_id,
                code=code,
            )

    def close_for(self, code: int, reason: str) -> None:
        """Close with any RFC 6455 code (Autobahn's sendClose accepts only 1000 and 3000+)."""
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(code, reason.encode("utf-8")[:120])

    def sendHttpErrorResponse(
        self, code: int, reason: str, responseHeaders: list[tuple[str, str]] | None = None
    ) -> None:
        """A refused upgrade (no Connection: Upgrade, a wrong Sec-WebSocket-Version...) is
        answered like every other 4xx: a JSON body saying why, not Autobahn's empty one."""
        phrase = RESPONSES.get(code, b"Error").decode("ascii")
        body = error_body(phrase, reason)
        lines = [
            f"HTTP/1.1 {code} {phrase}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in responseHeaders or ()),
        ]
        self.sendData("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)

    # --- client -> kernel ------------------------------------------------------------------

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        try:
            if self._v1:
                if not isBinary:
                    raise wire.FrameError("the v1 subprotocol carries binary frames only")
                parts = wire.v1_to_parts(payload)
            else:
                parts = wire.legacy_to_parts(payload, isBinary)
            if parts.channel not in wire.CLIENT_CHANNELS:
                raise wire.FrameError(f"clients may not send on channel {parts.channel!r}")
            # The legacy reader decoded every part already; v1 parts are still bytes.
            wire.check_client_message(parts, objects=self._v1)
            if self._reader is None:
                raise wire.FrameError("the connection is closing")
            self.bridge.send(self._reader, parts)
        except wire.FrameError as e:
            log.info(
                "kernel {kernel_id}: rejected a malformed frame: {error}",
                kernel_id=self.bridge.kernel_id,
                error=str(e),
            )
            self.deliver(_error_parts(str(e), payload, self._v1))

    # --- kernel -> client ------------------------------------------------------------------

    def deliver(self, parts: wire.Parts) -> None:
        """A message for this client alone (the answer to a frame it got wrong)."""
        if self._reader is not None:
            self._reader.deliver(parts)

    def writable(self) -> bool:
        return self.state == self.STATE_OPEN and not self._paused

    def write_frames(self, data: list[bytes]) -> None:
        """Write whole websocket frames (the reader's), straight to the socket if it can."""
        self.trafficStats.outgoingOctetsWireLevel += sum(map(len, data))
        if self._tcp is None or not _send_now(self._tcp, data):
            transport: Any = self.transport
            transport.writeSequence(data)

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        """Write a frame, straight to the socket when nothing is queued before it.

        Twisted's transport.write only buffers and asks the reactor to write when the socket
        is writable: a message would wait a reactor turn and two epoll changes. A relay of
        small messages gets them on the wire at once instead; what the socket does not take
        goes to the transport as usual. (Autobahn's own sendData also formats a debug log
        line for every frame, whether debug logging is on or not.)
        """
        if sync or chopsize or self.send_queue:
            super().sendData(data, sync, chopsize)
            return
        if self.state == self.STATE_OPEN:
            self.trafficStats.outgoingOctetsWireLevel += len(data)
        if self._tcp is None or not _send_now(self._tcp, [data]):
            transport: Any = self.transport
            transport.write(data)

    def pauseProducing(self) -> None:
        self._paused = True
        if self._stall is None and self.stall_timeout > 0:
            self._unsent = _unsent_bytes(self.transport)
            self._stall = self.bridge.clock.callLater(self.stall_timeout, self._check_stall)

    def resumeProducing(self) -> None:
        self._paused = False
        self._cancel_stall()
        if self._reader is not None:
            self._reader.pump()

    def stopProducing(self) -> None:
        self._paused = True
        self._cancel_stall()

    def _cancel_stall(self) -> None:
        if self._stall is not None:
            if self._stall.active():
                self._stall.cancel()
            self._stall = None

    def _check_stall(self) -> None:
        """Paused for ``stall_timeout``: close the client unless it read something since."""
        self._stall = None
        if not self._paused or self.state != self.STATE_OPEN:
            return
        unsent = _unsent_bytes(self.transport)
        if unsent is not None and self._unsent is not None and unsent < self._unsent:
            self._unsent = unsent  # slow, but reading
            self._stall = self.bridge.clock.callLater(self.stall_timeout, self._check_stall)
            return
        log.warn(
            "kernel {kernel_id}: closing a websocket that read nothing for {timeout}s "
            "({unsent} bytes waiting for it)",
            kernel_id=self.bridge.kernel_id,
            timeout=self.stall_timeout,
            unsent=unsent,
        )
        self._dropped_by_us = True
        # The close frame goes after what the client has not read: a client that reads
        # again within another stall_timeout sees why; then the connection is dropped.
        current: float = getattr(self, "closeHandshakeTimeout", 0) or 0
        self.closeHandshakeTimeout = max(current, self.stall_timeout)
        self.close_for(STALLED, f"client stalled: read nothing for {self.stall_timeout:g}s")


# Frames one sendmsg() may gather (Linux allows 1024 buffers per call).
_MOST_BUFFERS = 512


def _send_now(transport: tcp.Connection, frames: list[bytes]) -> bool:
    """Send what the socket takes at once, if the transport has nothing waiting; hand the
    rest to the transport. False when the transport must do it all (it then also sees any
    error the socket has)."""
    pending: Any = transport
    try:  # Twisted's private buffer fields: without them, the public path does it all
        buffered = pending._tempDataLen or len(pending.dataBuffer) > pending.offset
    except (AttributeError, TypeError):
        return False
    if buffered or not transport.connected or transport.disconnecting:
        return False
    if len(frames) > _MOST_BUFFERS:
        frames = [b"".join(frames)]
    try:
        sent = transport.socket.sendmsg(frames)
    except OSError:  # EAGAIN, or an error the transport will find and report itself
        return False
    for index, frame in enumerate(frames):
        if sent < len(frame):
            transport.writeSequence([frame[sent:], *frames[index + 1 :]])
            break
        sent -= len(frame)
    return True


def _unsent_bytes(transport: Any) -> int | None:
    """Bytes written to a TCP transport (under any TLS layers) that it has not yet sent.

    Twisted has no public API for this; its FileDescriptor has kept these attributes for
    many years. None when they are missing: the caller then counts what it wrote itself.
    """
    while transport is not None:
        try:
            unsent: int = len(transport.dataBuffer) - transport.offset + transport._tempDataLen
            return unsent
        except AttributeError:
            transport = getattr(transport, "transport", None)
    return None


def _error_parts(error: str, payload: bytes, v1: bool) -> wire.Parts:
    """A ``gateway_error`` message that tells a client its frame was rejected and why."""
    parent: dict[str, Any] = {}
    channel = "shell"
    try:
        sent = wire.v1_to_parts(payload) if v1 else None
        if sent is not None:
            parent = json.loads(sent.header)
            channel = sent.channel
        else:
            message = json.loads(payload)
            parent = message.get("header") or {}
            channel = message.get("channel") or "shell"
    except Exception:
        pass
    return wire.gateway_error(error, parent if isinstance(parent, dict) else {}, channel)


class _KernelBoundFactory:
    """Builds protocols from the shared factory, each bound to one kernel's bridge."""

    def __init__(
        self, factory: WebSocketServerFactory, bridge: ChannelBridge, stall_timeout: float
    ):
        self._factory = factory
        self._bridge = bridge
        self._stall_timeout = stall_timeout

    def buildProtocol(self, addr: IAddress) -> ChannelsProtocol:
        protocol = self._factory.buildProtocol(addr)
        assert isinstance(protocol, ChannelsProtocol)
        protocol.bridge = self._bridge
        protocol.stall_timeout = self._stall_timeout
        return protocol


def make_factory(ping_interval: float = 0, ping_timeout: float = 30) -> WebSocketServerFactory:
    """The websocket factory shared by every channels connection.

    With a ping interval, every connection is pinged that often and closed when its pong
    does not come back within the timeout (a dead client, or a proxy that dropped it).
    """
    factory = WebSocketServerFactory()
    factory.protocol = ChannelsProtocol
    factory.setProtocolOptions(
        maxMessagePayloadSize=MAX_CLIENT_MESSAGE,
        maxFramePayloadSize=MAX_CLIENT_MESSAGE,
        tcpNoDelay=True,
        autoPingInterval=ping_interval,
        autoPingTimeout=ping_timeout,
    )
    return factory


def channels_resource(
    factory: WebSocketServerFactory, bridge: ChannelBridge, stall_timeout: float
) -> WebSocketResource:
    """A resource that upgrades one request to a channels websocket on ``bridge``."""
    return WebSocketResource(_KernelBoundFactory(factory, bridge, stall_timeout))
