"""One client websocket in memory: Autobahn's protocol over a StringTransport, the bridge's
sockets in lists (see test_bridge.py)."""

from __future__ import annotations

import json
import os
import struct
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from kgw.channels import wire
from kgw.channels.bridge import ChannelBridge
from kgw.channels.protocol import ChannelsProtocol, _KernelBoundFactory, make_factory
from tests.unit.test_bridge import INFO, MemorySockets

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


class Transport(StringTransport):
    """A StringTransport with what Autobahn and Twisted's TCP transport add."""

    # What Twisted's TCP transport has not sent yet (its private fields, which kgw reads).
    dataBuffer = b""
    offset = 0
    _tempDataLen = 0

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass


class Producer:
    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...

    def stopProducing(self) -> None: ...


def open_socket(
    bridge: ChannelBridge, protocols: str = "", query: str = "", stall_timeout: float = 30
) -> tuple[ChannelsProtocol, Transport]:
    factory = make_factory()
    protocol = _KernelBoundFactory(factory, bridge, stall_timeout).buildProtocol(
        IPv4Address("TCP", "127.0.0.1", 40000)
    )
    transport = Transport()
    transport.registerProducer(Producer(), True)  # Twisted's HTTP channel, before the upgrade
    protocol.makeConnection(transport)
    lines = [
        f"GET /api/kernels/k1/channels{query} HTTP/1.1",
        "Host: 127.0.0.1:8888",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {KEY}",
        "Sec-WebSocket-Version: 13",
    ]
    if protocols:
        lines.append(f"Sec-WebSocket-Protocol: {protocols}")
    protocol.dataReceived(("\r\n".join(lines) + "\r\n\r\n").encode())
    return protocol, transport


def client_frame(payload: bytes, binary: bool = False) -> bytes:
    """One masked frame, as a client sends it."""
    mask = os.urandom(4)
    head = bytes([0x80 | (2 if binary else 1)])
    size = len(payload)
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each unmasked frame the server wrote."""
    frames = []
    while data:
        opcode, size = data[0] & 0x0F, data[1] & 0x7F
        offset = 2
        if size == 126:
            (size,) = struct.unpack("!H", data[2:4])
            offset = 4
        elif size == 127:
            (size,) = struct.unpack("!Q", data[2:10])
            offset = 10
        frames.append((opcode, data[offset : offset + size]))
        data = data[offset + size :]
    return frames


def after_handshake(transport: Transport) -> bytes:
    head, _, rest = transport.value().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return rest


def execute_request(msg_id: str = "m1") -> dict[str, Any]:
    header = {
        "msg_id": msg_id,
        "msg_type": "execute_request",
        "session": "s",
        "username": "u",
        "version": "5.3",
    }
    return {"header": header, "parent_header": {}, "metadata": {}, "content": {"code": "1"}}


@pytest.fixture
def bridge() -> ChannelBridge:
    MemorySockets.opened = []
    return ChannelBridge("k1", INFO, object(), Clock(), open_sockets=MemorySockets)  # type: ignore[arg-type]


def test_a_json_frame_reaches_the_kernel_and_its_reply_comes_back(bridge: ChannelBridge) -> None:
    protocol, transport = open_socket(bridge, query="?session_id=abc")
    assert after_handshake(transport) == b""
    assert bridge.connection_count == 1
    protocol.dataReceived(client_frame(json.dumps(execute_request()).encode()))
    [(channel, sent)] = MemorySockets.opened[-1].sent
    assert (channel, sent.msg_id) == ("shell", "m1")
    transport.clear()
    MemorySockets.opened[-1].answer(sent)
    messages = [json.loads(p) for op, p in server_frames(transport.value()) if op == 1]
    assert [m["msg_type"] for m in messages] == ["status", "execute_reply", "status"]
    assert messages[1]["parent_header"]["msg_id"] == "m1"
    assert messages[1]["channel"] == "shell"


def test_the_v1_subprotocol_is_chosen_and_spoken(bridge: ChannelBridge) -> None:
    protocol, transport = open_socket(bridge, protocols=wire.V1_SUBPROTOCOL)
    assert f"Sec-WebSocket-Protocol: {wire.V1_SUBPROTOCOL}".encode() in transport.value()
    transport.clear()
    parts = wire.message_to_parts({**execute_request("v1"), "channel": "shell"})
    protocol.dataReceived(client_frame(wire.parts_to_v1(parts), binary=True))
    [(_, sent)] = MemorySockets.opened[-1].sent
    assert sent.msg_id == "v1"
    transport.clear()
    MemorySockets.opened[-1].answer(sent)
    frames = server_frames(transport.value())
    assert {op for op, _ in frames} == {2}
    assert [wire.v1_to_parts(p).msg_type for _, p in frames][1] == "execute_reply"


@pytest.mark.parametrize(
    ("payload", "said"),
    [
        (b"not json", "not valid JSON"),
        (json.dumps({**execute_request(), "channel": "iopub"}).encode(), "channel 'iopub'"),
        (json.dumps({"header": {"msg_id": "x", "msg_type": "y"}}).encode(), "header.session"),
    ],
)
def test_a_bad_frame_gets_a_gateway_error_and_the_socket_lives(
    bridge: ChannelBridge, payload: bytes, said: str
) -> None:
    protocol, transport = open_socket(bridge)
    transport.clear()
    protocol.dataReceived(client_frame(payload))
    [(_, reply)] = server_frames(transport.value())
    message = json.loads(reply)
    assert message["msg_type"] == "gateway_error"
    assert said in message["content"]["evalue"]
    assert MemorySockets.opened[-1].sent == []
    assert not transport.disconnecting


def test_a_text_frame_on_v1_is_refused(bridge: ChannelBridge) -> None:
    protocol, transport = open_socket(bridge, protocols=wire.V1_SUBPROTOCOL)
    transport.clear()
    protocol.dataReceived(client_frame(b"{}"))
    [(opcode, reply)] = server_frames(transport.value())
    assert opcode == 2
    error = wire.v1_to_parts(reply)
    assert "binary frames only" in json.loads(error.content)["evalue"]


def test_a_refused_upgrade_is_a_json_error(bridge: ChannelBridge) -> None:
    factory = make_factory()
    protocol = _KernelBoundFactory(factory, bridge, 30).buildProtocol(
        IPv4Address("TCP", "127.0.0.1", 40000)
    )
    transport = Transport()
    transport.registerProducer(Producer(), True)
    protocol.makeConnection(transport)
    request = (
        "GET /api/kernels/k1/channels HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 7\r\n\r\n"
    )
    protocol.dataReceived(request.encode())
    head, _, body = transport.value().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request")
    assert b"Content-Type: application/json" in head
    assert json.loads(body)["message"].startswith("WebSocket version 7 not supported")


def stream(text: str, msg_id: str = "o") -> wire.Parts:
    return wire.message_to_parts(
        {
            "header": {"msg_id": msg_id, "msg_type": "stream"},
            "content": {"name": "stdout", "text": text},
            "channel": "iopub",
        }
    )


def kernel_prints(*texts: str) -> None:
    for text in texts:
        MemorySockets.opened[-1].kernel_says("iopub", "stream", None, name="stdout", text=text)


def texts_in(transport: Transport) -> list[str]:
    frames = [json.loads(p) for op, p in server_frames(transport.value()) if op == 1]
    return [m["content"]["text"] for m in frames if m["msg_type"] == "stream"]


def test_a_paused_client_gets_what_waited_when_its_transport_drains(bridge: ChannelBridge) -> None:
    protocol, transport = open_socket(bridge)
    transport.clear()
    protocol.pauseProducing()  # the socket's send buffer is full
    kernel_prints("a", "b", "c")
    assert texts_in(transport) == [], "nothing is written while paused"
    protocol.resumeProducing()
    assert texts_in(transport) == ["a", "b", "c"]
    assert not transport.disconnecting


def test_a_client_that_reads_slowly_is_never_closed(bridge: ChannelBridge) -> None:
    clock: Clock = bridge.clock  # type: ignore[assignment]
    protocol, transport = open_socket(bridge, stall_timeout=30)
    transport.dataBuffer = b"x" * 1000  # unsent
    protocol.pauseProducing()
    kernel_prints("waiting")
    for sent in (100, 200, 300):
        transport.offset = sent  # the client read a little
        clock.advance(30)
    assert not [p for op, p in server_frames(after_handshake(transport)) if op == 8]


def test_a_client_that_reads_nothing_is_closed_with_1008(bridge: ChannelBridge) -> None:
    clock: Clock = bridge.clock  # type: ignore[assignment]
    protocol, transport = open_socket(bridge, query="?session_id=s1", stall_timeout=30)
    transport.dataBuffer = b"x" * 1000
    protocol.pauseProducing()
    kernel_prints("waiting")
    transport.clear()
    clock.advance(29)
    assert transport.value() == b""
    clock.advance(1)
    [(opcode, payload)] = server_frames(transport.value())
    assert (opcode, struct.unpack("!H", payload[:2])[0]) == (8, 1008)
    assert payload[2:] == b"client stalled: read nothing for 30s"
    protocol.connectionLost(Failure(ConnectionLost()))
    assert bridge.connection_count == 0
    assert "s1" not in bridge._offline, "nothing is kept for a client closed for stalling"


def test_close_for_sends_any_code(bridge: ChannelBridge) -> None:
    protocol, transport = open_socket(bridge)
    transport.clear()
    protocol.close_for(1001, "kernel shut down")
    [(opcode, payload)] = server_frames(transport.value())
    assert opcode == 8
    assert struct.unpack("!H", payload[:2])[0] == 1001
    assert payload[2:] == b"kernel shut down"


def test_a_dropped_connection_leaves_its_session_waiting(bridge: ChannelBridge) -> None:
    from twisted.internet.error import ConnectionLost
    from twisted.python.failure import Failure

    protocol, _ = open_socket(bridge, query="?session_id=s1")
    protocol.connectionLost(Failure(ConnectionLost()))
    assert bridge.connection_count == 0
    assert "s1" in bridge._offline
