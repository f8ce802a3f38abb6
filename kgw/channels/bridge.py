"""One set of txZMQ sockets per kernel, shared by all of its websocket connections."""

from __future__ import annotations

import functools
from collections.abc import Hashable, Mapping
from datetime import datetime
from typing import Any

import zmq
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from txzmq import ZmqFactory

from kgw.channels import wire
from kgw.channels.activity import Activity
from kgw.channels.backlog import BacklogSettings, Consumer, Reader
from kgw.channels.gateway_client import GatewayClient
from kgw.channels.inflight import InFlight
from kgw.channels.offline import OfflineSessions
from kgw.channels.router import Router
from kgw.channels.sockets import KernelSockets, OpenSockets, Sockets
from kgw.channels.traffic import TO_CLIENTS, TO_KERNEL, Traffic

log = Logger()


class ChannelBridge:
    """Relays Jupyter messages between one kernel's ZeroMQ channels and its connections."""

    def __init__(
        self,
        kernel_id: str,
        connection_info: Mapping[str, Any],
        zmq_factory: ZmqFactory,
        clock: IReactorTime,
        traffic: Traffic | None = None,
        open_sockets: OpenSockets | None = None,
        backlog: BacklogSettings | None = None,
    ) -> None:
        self.kernel_id = kernel_id
        self._traffic = traffic or Traffic()
        self._clock = clock
        self._router: Router[Hashable] = Router()
        self._sockets: Sockets | None = None
        self._open_sockets: OpenSockets = open_sockets or functools.partial(
            KernelSockets, zmq_factory
        )
        # The kernel's broadcasts, kept once until every client has read them.
        self._backlog = (backlog or BacklogSettings()).open(kernel_id)
        self._offline = OfflineSessions(kernel_id, self._forget, clock)
        # The gateway's own requests (readiness checks, seed cells, env handouts).
        self.gateway = GatewayClient(kernel_id, clock, self.send, self._stdin_connected)
        self._appended = False  # broadcasts came in this socket read
        # Clients' shell requests kept while the kernel restarts (see hold()).
        self._held: list[tuple[Hashable, wire.Parts]] | None = None
        self._in_flight = InFlight()  # clients' shell requests the kernel has not answered
        self.activity = Activity(clock)  # execution state and last activity, for the model
        self.connect(connection_info)
        self._router.attach(self.gateway)

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
        self._sockets = self._open_sockets(info, curve, self._from_kernel, self._end_batch)
        self._router.clear_requests()

    def _stdin_connected(self) -> Deferred[None] | None:
        return self._sockets.stdin_connected() if self._sockets is not None else None

    def disconnect(self) -> None:
        """Close the kernel's sockets (it died); clients stay connected."""
        self._close_sockets()

    def _close_sockets(self) -> None:
        if self._sockets is not None:
            self._sockets.close()
            self._sockets = None

    def close(self, code: int = 1001, reason: str = "kernel shut down") -> None:
        """Close every client connection and every socket."""
        self._offline.drop_all(reason)
        for reader in self._backlog.readers:
            reader.close_for(code, reason)
        self.gateway.close_for(code, reason)
        self._in_flight.clear()
        self._close_sockets()
        self._backlog.close()

    # --- connections -----------------------------------------------------------------------

    @property
    def clock(self) -> IReactorTime:
        return self._clock

    @property
    def connection_count(self) -> int:
        return len([r for r in self._backlog.readers if r.consumer is not None])

    @property
    def backlog_bytes(self) -> tuple[int, int]:
        """Bytes of broadcasts kept for clients behind: (in memory, on disk)."""
        return self._backlog.memory, self._backlog.disk

    def attach(self, consumer: Consumer, session_id: str = "") -> Reader:
        """Connect a client; one coming back with the id of a session that dropped reads on
        from where it stopped, replies included (jupyter_server's buffer_offline_messages)."""
        reader = self._offline.come_back(session_id) if session_id else None
        if reader is None:
            reader = self._backlog.reader()
            self._router.attach(reader)
        reader.consumer = consumer
        reader.pump()
        return reader

    def detach(self, reader: Reader, session_id: str = "", keep: bool = False) -> None:
        """Disconnect a client. With a session id and ``keep`` (and while the kernel runs),
        its reader stays: what the session's requests and the kernel's broadcasts produce
        waits for it to reconnect."""
        if session_id and keep and self._sockets is not None:
            self._offline.go_away(reader, session_id)
        else:
            self._forget(reader)

    def _forget(self, reader: Reader) -> None:
        reader.consumer = None
        self._router.detach(reader)
        self._backlog.remove(reader)

    def hold(self) -> None:
        """Keep clients' shell requests from now on, until release(): the kernel restarts.

        They then run after the gateway's own readiness check and seed cells, in the order
        they came, rather than before the seed or on the sockets of the process that died.
        """
        if self._held is None:
            if self._sockets is not None:
                self._sockets.drain()  # a busy status still on its way marks a request begun
            # Requests queued behind the one the kernel was running (sent after it died, or
            # waiting when it did) come first: they were sent before anything held from now on.
            self._held = self._in_flight.queued()

    def release(self) -> None:
        """Send the requests kept since hold(); when the kernel is not running (it ended
        dead, or shut down), answer each with a ``gateway_error`` saying so."""
        held, self._held = self._held or [], None
        for connection, parts in self._in_flight.unanswered():
            self._refuse(
                connection,
                parts,
                "the kernel restarted while this request may have been running; "
                "it was not run again",
            )
        for connection, parts in held:
            try:
                self.send(connection, parts)
            except wire.FrameError as e:
                log.info(
                    "kernel {kernel_id}: a {msg_type} held during a restart was not sent: {error}",
                    kernel_id=self.kernel_id,
                    msg_type=parts.msg_type,
                    error=str(e),
                )
                self._refuse(connection, parts, str(e))

    def _refuse(self, connection: Hashable, parts: wire.Parts, error: str) -> None:
        """Answer a client's request with a ``gateway_error`` instead of a reply."""
        deliver = getattr(connection, "deliver", None)
        if deliver is not None:
            deliver(wire.gateway_error(error, parts.parsed_header(), parts.channel))

    def send(self, connection: Hashable, parts: wire.Parts) -> None:
        """Send a client's message to the kernel on the channel it names."""
        if parts.channel not in ("shell", "control", "stdin"):
            raise wire.FrameError(f"unknown channel {parts.channel!r}")
        client = getattr(connection, "is_client", True)
        if self._held is not None and client and parts.channel == "shell":
            self._held.append((connection, parts))
            return
        if self._sockets is None:
            raise wire.FrameError("the kernel is not running")
        frames = wire.parts_to_zmq(parts, self._signer)
        try:
            self._sockets.send(parts.channel, frames)
        except zmq.Again:  # its ZeroMQ queue is full: the kernel has not read for a while
            raise wire.FrameError(
                f"the kernel is not reading its {parts.channel} channel (queue full); "
                "try again later"
            ) from None
        # Replies come back through the reactor, after this returns.
        self._router.request(connection, parts)
        if parts.channel == "shell" and client:
            self._in_flight.sent(connection, parts)
        self._traffic.add(parts.channel, TO_KERNEL, sum(map(len, frames)))

    @property
    def execution_state(self) -> str:
        return self.activity.execution_state

    @execution_state.setter
    def execution_state(self, state: str) -> None:
        self.activity.execution_state = state

    @property
    def last_activity(self) -> datetime:
        return self.activity.last_activity

    def _from_kernel(self, channel: str, frames: list[bytes]) -> None:
        self._traffic.add(channel, TO_CLIENTS, sum(map(len, frames)))
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
        if channel == "iopub":
            self.activity.seen(parts)
        if self._in_flight and channel in ("iopub", "shell"):
            self._note_progress(channel, msg_type, parts)
        recipients = self._router.route(parts)
        if channel != "iopub":  # a reply, or an input_request, for one connection
            for connection in recipients:
                connection.deliver(parts)  # type: ignore[attr-defined]
            return
        clients = len(recipients)
        if self.gateway in recipients:
            self.gateway.deliver(parts)
            clients -= 1
        if clients:
            # Kept once for every client; each is written from the backlog as its transport
            # takes it, at the end of this socket read. The client whose request the
            # message reports on is written at once, ahead of the others (often many idle
            # viewers).
            self._backlog.append(parts)
            self._appended = True
            requester = self._router.requester(parts) if clients > 1 else None
            if isinstance(requester, Reader):
                requester.pump(release=False)

    def _end_batch(self) -> None:
        """A socket read ended: write what it brought to each client."""
        if self._appended:
            self._appended = False
            self._pump_all()

    def _pump_all(self) -> None:
        for reader in self._backlog.readers:
            if reader.pending:
                reader.pump(release=False)
        self._backlog.release()

    def _note_progress(self, channel: str, msg_type: str, parts: wire.Parts) -> None:
        """A client request begun (a busy status about it) or answered (its shell reply)."""
        if channel == "iopub" and msg_type != "status":
            return
        try:
            parent = parts.parent_msg_id()
        except wire.FrameError:
            return
        if channel == "shell":
            self._in_flight.answered(parent)
        elif b'"busy"' in parts.content:
            self._in_flight.begun(parent)

    def broadcast_status(self, execution_state: str) -> None:
        """Tell every client the kernel's state, as jupyter_server does around restarts."""
        self.execution_state = execution_state
        parts = self.gateway.message("status", {"execution_state": execution_state}, "iopub")
        if self._backlog.readers:
            self._backlog.append(parts)
            self._pump_all()
