"""The Autobahn protocol of one client websocket on /api/kernels/{id}/channels."""

from __future__ import annotations

import json
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionRequest
from twisted.internet import tcp
from twisted.internet.interfaces import IAddress, IPushProducer
from twisted.logger import Logger
from twisted.web.http import RESPONSES
from zope.interface import implementer

from kgw.channels import wire
from kgw.channels.bridge import ChannelBridge
from kgw.errors import error_body

log = Logger()

# Close codes (RFC 6455): going away, policy violation (a client too slow to keep up).
GOING_AWAY = 1001
TOO_SLOW = 1008
MAX_CLIENT_MESSAGE = 256 * 1024 * 1024


@implementer(IPushProducer)
class ChannelsProtocol(WebSocketServerProtocol):
    """Relays one client's frames to its kernel's bridge, and the kernel's messages back.

    Flow control: the protocol is the push producer of its transport, so Twisted tells it
    when the socket's send buffer is full. What is written while paused is counted; a
    client that falls more than ``max_buffer`` bytes behind is closed, the kernel and the
    other clients go on.
    """

    bridge: ChannelBridge
    max_buffer: int

    def __init__(self) -> None:
        super().__init__()
        self._v1 = False
        self._paused = False
        self._behind = 0
        self._attached = False
        self._tcp: tcp.Connection | None = None  # a plain TCP transport, written eagerly
        self._corked: list[bytes] | None = None  # frames held until the bridge's batch ends
        self._session_id = ""
        self._dropped_by_us = False  # closed for being too slow: nothing is kept for it

    # --- handshake and lifetime ------------------------------------------------------------

    def onConnect(self, request: ConnectionRequest) -> str | None:
        # jupyter_server's clients name their session: one that comes back after a dropped
        # connection gets what it missed.
        self._session_id = (request.params.get("session_id") or [""])[0][:128]
        if wire.V1_SUBPROTOCOL in request.protocols:
            self._v1 = True
            return wire.V1_SUBPROTOCOL
        return None

    def onOpen(self) -> None:
        # Twisted's HTTP channel was the transport's producer until the upgrade.
        transport: Any = self.transport
        transport.unregisterProducer()
        transport.registerProducer(self, True)
        if isinstance(transport, tcp.Connection):  # not under TLS
            self._tcp = transport
        self.bridge.attach(self, self._session_id)
        self._attached = True
        log.info(
            "kernel {kernel_id}: websocket opened ({wire_format})",
            kernel_id=self.bridge.kernel_id,
            wire_format="v1" if self._v1 else "json",
        )

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self._attached:
            self._attached = False
            # A connection that dropped (no clean close) may come back: keep its messages.
            lost = not wasClean or code in (None, 1006)
            keep = self.max_buffer if lost and not self._dropped_by_us else 0
            self.bridge.detach(self, self._session_id, keep)
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
            self.bridge.send(self, parts)
        except wire.FrameError as e:
            log.info(
                "kernel {kernel_id}: rejected a malformed frame: {error}",
                kernel_id=self.bridge.kernel_id,
                error=str(e),
            )
            self.deliver(_error_parts(str(e), payload, self._v1))

    # --- kernel -> client ------------------------------------------------------------------

    def deliver(self, parts: wire.Parts) -> None:
        if self.state != self.STATE_OPEN:
            return
        # iopub goes to every client of a kernel: frame it once per wire format, not per client.
        wire_format = "v1" if self._v1 else "json"
        prepared = parts.frames.get(wire_format)
        if prepared is None:
            if self._v1:
                payload, is_binary = wire.parts_to_v1(parts), True
            else:
                payload, is_binary = wire.parts_to_legacy(parts)
            prepared = self.factory.prepareMessage(payload, is_binary)
            parts.frames[wire_format] = prepared
        if self._paused:
            self._behind += len(prepared.payloadHybi)
            behind = _unsent_bytes(self.transport)
            if behind is None:
                behind = self._behind
            if behind > self.max_buffer:
                log.warn(
                    "kernel {kernel_id}: closing a websocket {behind} bytes behind",
                    kernel_id=self.bridge.kernel_id,
                    behind=behind,
                )
                self._dropped_by_us = True
                self.close_for(TOO_SLOW, f"client too slow: over {self.max_buffer} bytes behind")
                self.dropConnection(abort=True)
                return
        self.sendPreparedMessage(prepared)

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
        if self._corked is not None:
            self._corked.append(data)
        elif self._tcp is None or not _send_now(self._tcp, [data]):
            transport: Any = self.transport
            transport.write(data)

    def cork(self) -> None:
        """Hold frames until uncork(): the bridge is relaying a batch of kernel messages, and
        one system call sends them all."""
        if self._corked is None:
            self._corked = []

    def uncork(self) -> None:
        frames, self._corked = self._corked, None
        if not frames:
            return
        if self._tcp is None or not _send_now(self._tcp, frames):
            transport: Any = self.transport
            transport.writeSequence(frames)

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._behind = 0

    def stopProducing(self) -> None:
        self._paused = True


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

    def __init__(self, factory: WebSocketServerFactory, bridge: ChannelBridge, max_buffer: int):
        self._factory = factory
        self._bridge = bridge
        self._max_buffer = max_buffer

    def buildProtocol(self, addr: IAddress) -> ChannelsProtocol:
        protocol = self._factory.buildProtocol(addr)
        assert isinstance(protocol, ChannelsProtocol)
        protocol.bridge = self._bridge
        protocol.max_buffer = self._max_buffer
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
    factory: WebSocketServerFactory, bridge: ChannelBridge, max_buffer: int
) -> WebSocketResource:
    """A resource that upgrades one request to a channels websocket on ``bridge``."""
    return WebSocketResource(_KernelBoundFactory(factory, bridge, max_buffer))
