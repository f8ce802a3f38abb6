"""Frames written straight to the socket: what it does not take goes to the transport, in order."""

from __future__ import annotations

from typing import Any

import pytest

from kgw.channels.protocol import _send_now


class FakeSocket:
    def __init__(self, takes: int | Exception) -> None:
        self.takes = takes
        self.calls: list[list[bytes]] = []

    def sendmsg(self, frames: list[bytes]) -> int:
        self.calls.append(list(frames))
        if isinstance(self.takes, Exception):
            raise self.takes
        return min(self.takes, sum(map(len, frames)))


class FakeTransport:
    """The parts of twisted.internet.tcp.Connection that _send_now reads and calls."""

    def __init__(self, socket: FakeSocket, buffered: bytes = b"") -> None:
        self.socket = socket
        self.dataBuffer = buffered
        self.offset = 0
        self._tempDataLen = 0
        self.connected = True
        self.disconnecting = False
        self.written: list[bytes] = []

    def writeSequence(self, frames: list[bytes]) -> None:
        self.written.extend(frames)


def send(transport: FakeTransport, frames: list[bytes]) -> bool:
    fake: Any = transport
    return _send_now(fake, frames)


def test_all_sent_at_once_in_one_call() -> None:
    transport = FakeTransport(FakeSocket(takes=100))
    assert send(transport, [b"abc", b"defg"])
    assert transport.socket.calls == [[b"abc", b"defg"]]
    assert transport.written == []


@pytest.mark.parametrize(
    ("takes", "rest"),
    [
        (0, [b"abc", b"defg", b"hi"]),
        (2, [b"c", b"defg", b"hi"]),
        (3, [b"defg", b"hi"]),
        (5, [b"fg", b"hi"]),
        (8, [b"i"]),
    ],
)
def test_what_the_socket_does_not_take_goes_to_the_transport_in_order(
    takes: int, rest: list[bytes]
) -> None:
    transport = FakeTransport(FakeSocket(takes=takes))
    assert send(transport, [b"abc", b"defg", b"hi"])
    assert transport.written == rest


def test_nothing_jumps_ahead_of_data_the_transport_already_holds() -> None:
    transport = FakeTransport(FakeSocket(takes=100), buffered=b"earlier")
    assert not send(transport, [b"later"])
    assert transport.socket.calls == []


def test_socket_errors_are_left_to_the_transport() -> None:
    transport = FakeTransport(FakeSocket(takes=BlockingIOError()))
    assert not send(transport, [b"abc"])
    assert transport.written == []


def test_a_closing_transport_is_left_alone() -> None:
    transport = FakeTransport(FakeSocket(takes=100))
    transport.disconnecting = True
    assert not send(transport, [b"abc"])
    assert transport.socket.calls == []


def real_connection() -> tuple[Any, Any]:
    """A real twisted.internet.tcp.Connection over one end of a socket pair, and the other."""
    import socket

    from twisted.internet import tcp
    from twisted.internet.protocol import Protocol
    from twisted.internet.testing import MemoryReactor

    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    connection = tcp.Connection(ours, Protocol(), reactor=MemoryReactor())
    connection.connected = True
    return connection, theirs


def test_the_fast_path_on_a_real_twisted_connection() -> None:
    """The private fields _send_now reads are those of Twisted's own tcp.Connection."""
    connection, theirs = real_connection()
    try:
        assert _send_now(connection, [b"abc", b"def"])
        assert theirs.recv(100) == b"abcdef"
        connection.write(b"queued")  # buffered by the transport: order must be kept
        assert not _send_now(connection, [b"later"])
    finally:
        connection.socket.close()
        theirs.close()


def test_the_fast_path_steps_aside_when_twisted_changes_its_fields() -> None:
    connection, theirs = real_connection()
    try:
        # A Connection whose buffer fields are gone or renamed (a future Twisted):
        del connection._tempDataLen
        assert not _send_now(connection, [b"abc"]), "the public path is used"
    finally:
        connection.socket.close()
        theirs.close()
