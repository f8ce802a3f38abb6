"""One Jupyter client, over a gateway's websocket or straight over ZeroMQ.

Workloads talk to a kernel through :class:`Channels`: send a request, receive the next
message. :class:`WebsocketChannels` frames messages with ``kgw.channels.wire`` in the legacy
JSON format or the ``v1.kernel.websocket.jupyter.org`` subprotocol, and serves kgw and
jupyter_kernel_gateway alike; :class:`ZmqChannels` is jupyter_client's AsyncKernelClient on
the kernel's own sockets (the floor). Messages are dicts with ``channel``, ``msg_type``,
``header``, ``parent_header``, ``metadata``, ``content`` and ``buffers``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import zmq
import zmq.asyncio
from jupyter_client.asynchronous.client import AsyncKernelClient
from websockets.asyncio.client import ClientConnection, connect

from kgw.channels import wire

Message = dict[str, Any]


class Channels(Protocol):
    """One client's connection to one kernel."""

    async def send(self, msg_type: str, content: dict[str, Any], channel: str = "shell") -> str:
        """Send a request; return its msg_id."""
        ...

    async def recv(self) -> Message:
        """The next message from any channel (callers bound the wait with asyncio.timeout)."""
        ...

    async def close(self) -> None: ...


def new_message(
    msg_type: str, content: dict[str, Any], session: str, channel: str = "shell"
) -> Message:
    """A client message as jupyter_client's Session would build it."""
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "session": session,
            "username": "benchmark",
            "version": "5.3",
            "date": datetime.now(UTC).isoformat(),
        },
        "parent_header": {},
        "metadata": {},
        "content": content,
        "channel": channel,
        "buffers": [],
    }


class WebsocketChannels:
    """A kernel's channels over one websocket, in the JSON format or the v1 subprotocol."""

    def __init__(self, ws: ClientConnection, v1: bool) -> None:
        self.ws = ws
        self.v1 = v1
        self.session = uuid.uuid4().hex

    @classmethod
    async def open(cls, url: str, v1: bool, timeout: float) -> WebsocketChannels:
        ws = await connect(
            url,
            subprotocols=[wire.V1_SUBPROTOCOL] if v1 else None,  # type: ignore[list-item]
            max_size=None,
            compression=None,
            ping_interval=None,
            open_timeout=timeout,
            close_timeout=5,
        )
        if v1 and ws.subprotocol != wire.V1_SUBPROTOCOL:
            await ws.close()
            raise RuntimeError(f"server did not accept {wire.V1_SUBPROTOCOL}")
        return cls(ws, v1)

    async def send(self, msg_type: str, content: dict[str, Any], channel: str = "shell") -> str:
        message = new_message(msg_type, content, self.session, channel)
        if self.v1:
            await self.ws.send(wire.parts_to_v1(wire.message_to_parts(message)))
        else:
            payload, binary = wire.message_to_legacy(message)
            await self.ws.send(payload if binary else payload.decode("utf-8"))
        msg_id: str = message["header"]["msg_id"]
        return msg_id

    async def recv(self) -> Message:
        frame = await self.ws.recv()
        if self.v1:
            if not isinstance(frame, bytes):
                raise wire.FrameError("text frame on the v1 subprotocol")
            return wire.parts_to_message(wire.v1_to_parts(frame))
        if isinstance(frame, str):
            message: Message = json.loads(frame)
            message.setdefault("buffers", [])
            return message
        return wire.legacy_to_message(frame, True)

    async def close(self) -> None:
        await self.ws.close()


class ZmqChannels:
    """jupyter_client's AsyncKernelClient, read through one poller over shell and iopub.

    Messages are deserialized by the client's Session exactly as ``get_shell_msg`` and
    ``get_iopub_msg`` do; the poller only saves a second concurrent waiter per request.
    """

    def __init__(self, client: AsyncKernelClient) -> None:
        self.client = client
        self._poller = zmq.asyncio.Poller()
        self._readers: dict[Any, tuple[str, zmq.Socket[bytes]]] = {}
        for channel in ("shell", "iopub"):
            sock = getattr(client, f"{channel}_channel").socket
            self._poller.register(sock, zmq.POLLIN)
            self._readers[sock] = (channel, zmq.Socket.shadow(sock.underlying))
        self._pending: deque[Message] = deque()

    async def send(self, msg_type: str, content: dict[str, Any], channel: str = "shell") -> str:
        message = self.client.session.msg(msg_type, content)
        getattr(self.client, f"{channel}_channel").send(message)
        msg_id: str = message["header"]["msg_id"]
        return msg_id

    async def recv(self) -> Message:
        session = self.client.session
        while not self._pending:
            for sock, _ in await self._poller.poll():
                channel, reader = self._readers[sock]
                while True:
                    try:
                        frames = reader.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    _, frames = session.feed_identities(frames)
                    message = session.deserialize(frames)
                    message["channel"] = channel
                    self._pending.append(message)
        return self._pending.popleft()

    async def close(self) -> None:
        self._readers.clear()  # shadows: the client's channels own and close the sockets
        self.client.stop_channels()


# --- requests and replies -----------------------------------------------------------------


def execute_content(code: str) -> dict[str, Any]:
    return {
        "code": code,
        "silent": False,
        "store_history": False,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }


def parent_id(message: Message) -> str:
    parent = message.get("parent_header") or {}
    return str(parent.get("msg_id", ""))


async def collect(
    channels: Channels,
    msg_id: str,
    on_iopub: Callable[[Message], None] | None = None,
    reply_type: str | None = "execute_reply",
    on_other: Callable[[Message], None] | None = None,
) -> Message | None:
    """Read until ``msg_id`` has its reply and its ``idle`` status; return the reply.

    With ``reply_type`` None (a client that did not send the request) only the idle
    status is awaited. ``on_iopub`` sees this request's iopub messages other than status;
    ``on_other`` sees messages with any other parent.
    """
    reply: Message | None = None
    idle = False
    while not idle or (reply is None and reply_type is not None):
        message = await channels.recv()
        if parent_id(message) != msg_id:
            if on_other is not None:
                on_other(message)
            continue
        if message["channel"] == "iopub":
            if message["msg_type"] == "status":
                idle = idle or message["content"].get("execution_state") == "idle"
            elif on_iopub is not None:
                on_iopub(message)
        elif message["msg_type"] == reply_type:
            reply = message
    return reply


async def round_trip(channels: Channels, code: str = "pass") -> float:
    """Seconds from sending an execute to having both its reply and its idle status."""
    start = time.perf_counter()
    msg_id = await channels.send("execute_request", execute_content(code))
    reply = await collect(channels, msg_id)
    elapsed = time.perf_counter() - start
    content = reply["content"] if reply else {}
    if content.get("status") != "ok":
        raise RuntimeError(f"execute failed: {content}")
    return elapsed
