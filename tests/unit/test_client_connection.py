"""The client's channels websocket: framing choice, reconnects, and how it gives up (no sockets)."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from jupyter_client.session import Session
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from kgw.channels import wire
from kgw.client import framing
from kgw.client.connection import ChannelsConnection, RetryBudget, is_permanent
from kgw.client.errors import ConnectionLost, GatewayError, GatewayHTTPError, KernelDied
from kgw.client.settings import GatewaySettings, RetryPolicy

T = TypeVar("T")
TIMEOUT = 10.0
NO_WAIT = RetryPolicy(attempts=3, interval=0.0, interval_max=0.0)


class FakeSocket:
    """A websocket whose frames the test feeds and whose sent frames it reads."""

    def __init__(self, subprotocol: str | None = wire.V1_SUBPROTOCOL) -> None:
        self.subprotocol = subprotocol
        self.sent: list[tuple[bytes, bool]] = []
        self.closed = False
        self.reading = asyncio.Event()
        self.sent_one = asyncio.Event()
        self._incoming: asyncio.Queue[str | bytes | ConnectionClosed] = asyncio.Queue()

    def feed(self, frame: str | bytes) -> None:
        self._incoming.put_nowait(frame)

    def drop(self, code: int | None = None, reason: str = "") -> None:
        """The connection ends: with a close frame from the gateway, or without one."""
        rcvd = None if code is None else Close(code, reason)
        self._incoming.put_nowait(ConnectionClosed(rcvd, None))

    async def recv(self) -> str | bytes:
        self.reading.set()
        item = await self._incoming.get()
        if isinstance(item, ConnectionClosed):
            self.closed = True
            raise item
        return item

    async def send(self, payload: bytes, text: bool) -> None:
        if self.closed:
            raise ConnectionClosed(None, None)
        self.sent.append((payload, text))
        self.sent_one.set()

    async def close(self) -> None:
        self.closed = True
        self._incoming.put_nowait(ConnectionClosed(Close(1000, ""), Close(1000, ""), False))


class FakeConnector:
    """Hands out scripted sockets, or raises scripted errors, one per connection attempt."""

    def __init__(self, *outcomes: FakeSocket | Exception) -> None:
        self.outcomes = deque(outcomes)
        self.urls: list[str] = []
        self.exhausted = asyncio.Event()

    async def __call__(self, url: str, settings: GatewaySettings) -> FakeSocket:
        self.urls.append(url)
        outcome = self.outcomes.popleft()
        if not self.outcomes:
            self.exhausted.set()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class Harness:
    """A connection wired to a fake connector, recording deliveries and its failure."""

    def __init__(self, connector: FakeConnector, retry: RetryPolicy = NO_WAIT) -> None:
        self.settings = GatewaySettings("http://gateway.test/", retry=retry)
        self.delivered: list[tuple[str, dict[str, Any]]] = []
        self.failed: asyncio.Future[GatewayError] = asyncio.get_running_loop().create_future()
        self.got_message = asyncio.Event()
        self.connection = ChannelsConnection(
            self.settings, "k1", "session-1", self.deliver, self.failed.set_result, connector
        )
        self.connection.start()

    def deliver(self, channel: str, message: dict[str, Any]) -> None:
        self.delivered.append((channel, message))
        self.got_message.set()


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), TIMEOUT)

    return asyncio.run(bounded())


def kernel_message(channel: str, msg_type: str, content: dict[str, Any]) -> wire.Parts:
    return wire.message_to_parts(
        {
            "header": {"msg_id": f"{msg_type}-1", "msg_type": msg_type, "date": "2026-01-01"},
            "parent_header": {"msg_id": "request-1"},
            "content": content,
            "channel": channel,
        }
    )


def request(code: str) -> wire.Parts:
    return framing.message_to_parts("shell", Session().msg("execute_request", {"code": code}))


def sent_code(frame: tuple[bytes, bool], v1: bool) -> str:
    payload, text = frame
    channel, message = framing.decode(payload.decode() if text else payload, v1)
    assert channel == "shell"
    code: str = message["content"]["code"]
    return code


# --- framing choice ---------------------------------------------------------------------------


def test_v1_when_the_gateway_selects_it() -> None:
    async def scenario() -> None:
        socket = FakeSocket(wire.V1_SUBPROTOCOL)
        h = Harness(FakeConnector(socket))
        h.connection.send(request("1 + 1"))
        await socket.sent_one.wait()
        payload, text = socket.sent[0]
        assert not text
        assert wire.v1_to_parts(payload).channel == "shell"
        socket.feed(wire.parts_to_v1(kernel_message("iopub", "stream", {"text": "hi"})))
        await h.got_message.wait()
        channel, message = h.delivered[0]
        assert (channel, message["content"]) == ("iopub", {"text": "hi"})
        await h.connection.close()

    run(scenario)


def test_json_frames_when_the_gateway_selects_no_subprotocol() -> None:
    async def scenario() -> None:
        socket = FakeSocket(None)
        h = Harness(FakeConnector(socket))
        h.connection.send(request("1 + 1"))
        await socket.sent_one.wait()
        payload, text = socket.sent[0]
        assert text
        assert wire.legacy_to_parts(payload, False).msg_type == "execute_request"
        comm_msg = kernel_message("iopub", "comm_msg", {"data": {}})
        frame, _ = wire.parts_to_legacy(dataclasses.replace(comm_msg, buffers=(b"\x00binary",)))
        socket.feed(frame)
        await h.got_message.wait()
        assert [bytes(b) for b in h.delivered[0][1]["buffers"]] == [b"\x00binary"]
        await h.connection.close()

    run(scenario)


def test_a_malformed_frame_is_skipped_and_the_connection_goes_on() -> None:
    async def scenario() -> None:
        socket = FakeSocket(None)
        h = Harness(FakeConnector(socket))
        socket.feed("not json")
        reply, _ = wire.parts_to_legacy(kernel_message("shell", "kernel_info_reply", {}))
        socket.feed(reply.decode())
        await h.got_message.wait()
        assert [m["msg_type"] for _, m in h.delivered] == ["kernel_info_reply"]
        await h.connection.close()
        assert not h.failed.done()

    run(scenario)


# --- reconnecting -----------------------------------------------------------------------------


def test_a_dropped_socket_is_reopened_with_the_same_session_and_the_queue_is_kept() -> None:
    async def scenario() -> None:
        first, second = FakeSocket(), FakeSocket()
        connector = FakeConnector(first, second)
        h = Harness(connector)
        await first.reading.wait()
        first.drop()  # no close frame: the network went away
        first.closed = True
        h.connection.send(request("a"))
        h.connection.send(request("b"))
        await second.reading.wait()
        while len(second.sent) < 2:
            second.sent_one.clear()
            await second.sent_one.wait()
        assert [sent_code(f, True) for f in second.sent] == ["a", "b"]
        assert connector.urls == [connector.urls[0]] * 2
        assert "session_id=session-1" in connector.urls[0]
        assert h.connection.state == "open"
        await h.connection.close()

    run(scenario)


def test_a_message_that_could_not_be_sent_goes_out_after_the_reconnect() -> None:
    async def scenario() -> None:
        first, second = FakeSocket(), FakeSocket()
        first.closed = True  # sending fails: the connection is already gone
        h = Harness(FakeConnector(first, second))
        h.connection.send(request("retry me"))
        await first.reading.wait()
        first.drop()
        await second.sent_one.wait()
        assert [sent_code(f, True) for f in second.sent] == ["retry me"]
        await h.connection.close()

    run(scenario)


def test_gateway_errors_on_the_handshake_are_retried() -> None:
    async def scenario() -> None:
        socket = FakeSocket()
        unavailable = GatewayHTTPError("GET", "ws://x", 503, "Service Unavailable", "busy")
        connector = FakeConnector(ConnectionRefusedError(), unavailable, socket)
        h = Harness(connector)
        await socket.reading.wait()
        assert len(connector.urls) == 3
        await h.connection.close()

    run(scenario)


def test_the_budget_runs_out_with_connection_lost() -> None:
    async def scenario() -> None:
        first = FakeSocket()
        refused = [ConnectionRefusedError("refused") for _ in range(NO_WAIT.attempts)]
        h = Harness(FakeConnector(first, *refused))
        await first.reading.wait()
        first.drop(1001, "going away")
        error = await h.failed
        assert isinstance(error, ConnectionLost)
        assert "gave up after 3 attempts" in str(error)
        assert h.connection.state == "failed"
        with pytest.raises(ConnectionLost):
            h.connection.send(request("too late"))

    run(scenario)


def test_a_kernel_the_gateway_does_not_know_fails_at_once() -> None:
    async def scenario() -> None:
        first = FakeSocket()
        gone = GatewayHTTPError("GET", "ws://x", 404, "Not Found", "Kernel does not exist: k1")
        connector = FakeConnector(first, gone)
        h = Harness(connector)
        await first.reading.wait()
        first.drop(1001, "kernel shut down")
        error = await h.failed
        assert isinstance(error, KernelDied)
        assert error.kernel_id == "k1"
        assert "Kernel does not exist: k1" in str(error)
        assert len(connector.urls) == 2

    run(scenario)


def test_a_refused_token_fails_at_once_with_the_gateways_reason() -> None:
    async def scenario() -> None:
        refused = GatewayHTTPError("GET", "ws://x", 401, "Unauthorized", "A valid token...")
        h = Harness(FakeConnector(refused))
        error = await h.failed
        assert isinstance(error, GatewayHTTPError)
        assert (error.status, error.reason) == (401, "Unauthorized")

    run(scenario)


def test_no_reconnect_after_the_manager_shut_the_kernel_down() -> None:
    async def scenario() -> None:
        socket = FakeSocket()
        connector = FakeConnector(socket)
        h = Harness(connector)
        await socket.reading.wait()
        h.connection.kernel_shut_down()
        socket.drop(1001, "kernel shut down")
        error = await h.failed
        assert isinstance(error, KernelDied)
        assert len(connector.urls) == 1

    run(scenario)


def test_close_stops_a_connection_that_is_waiting_to_retry() -> None:
    async def scenario() -> None:
        slow = RetryPolicy(attempts=3, interval=3600.0, interval_max=3600.0)
        connector = FakeConnector(ConnectionRefusedError(), ConnectionRefusedError())
        h = Harness(connector, slow)
        await connector.exhausted.wait()  # the next attempt is an hour away
        await h.connection.close()
        assert h.connection.state == "closed"
        assert not h.failed.done()

    run(scenario)


# --- the budget -------------------------------------------------------------------------------


def test_retry_delays_start_at_zero_double_and_are_capped() -> None:
    budget = RetryBudget(RetryPolicy(attempts=6, interval=0.5, interval_max=3.0))
    assert [budget.next_delay() for _ in range(7)] == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0, None]


def test_a_connection_that_stayed_up_renews_the_budget_and_a_flapping_one_does_not() -> None:
    budget = RetryBudget(RetryPolicy(attempts=2, stable_after=10.0))
    assert budget.next_delay() == 0.0
    budget.opened(now=100.0)
    budget.dropped(now=101.0)  # up one second: still the same trouble
    assert budget.next_delay() is not None
    assert budget.next_delay() is None
    budget.opened(now=200.0)
    budget.dropped(now=260.0)
    assert budget.next_delay() == 0.0


def test_which_handshake_errors_are_permanent() -> None:
    def http(status: int) -> GatewayHTTPError:
        return GatewayHTTPError("GET", "ws://x", status, "", "")

    assert is_permanent(KernelDied("k", "gone"))
    assert is_permanent(http(401)) and is_permanent(http(403))
    assert not is_permanent(http(429)) and not is_permanent(http(502))
    assert not is_permanent(GatewayError("connection refused"))
    assert not is_permanent(ConnectionRefusedError())
    assert is_permanent(ssl.SSLCertVerificationError("certificate verify failed"))


def test_a_failure_inside_the_connection_fails_it_instead_of_hanging() -> None:
    async def scenario() -> None:
        socket = FakeSocket()
        h = Harness(FakeConnector(socket))

        def broken(channel: str, message: dict[str, Any]) -> None:
            raise ZeroDivisionError("a bug")

        h.connection._deliver = broken
        socket.feed(wire.parts_to_v1(kernel_message("iopub", "stream", {"text": "hi"})))
        error = await h.failed
        assert "ZeroDivisionError" in str(error)

    run(scenario)
