"""The bridge in memory: a kernel's sockets replaced by lists, time by a Clock."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from kgw.channels import wire
from kgw.channels.backlog import BacklogSettings, Reader
from kgw.channels.bridge import ChannelBridge
from kgw.channels.gateway_client import KernelExited

KEY = b"secret-key"
INFO = {"key": KEY.decode(), "signature_scheme": "hmac-sha256"}


class MemorySockets:
    """A kernel's four sockets: what the bridge sends is kept; the test plays the kernel."""

    opened: list[MemorySockets] = []

    def __init__(
        self,
        info: Mapping[str, Any],
        curve: Any,
        on_message: Callable[[str, list[bytes]], None],
        on_batch_end: Callable[[], None],
    ) -> None:
        self.sent: list[tuple[str, wire.Parts]] = []
        self.closed = False
        self.stdin = Deferred[None]()
        self.stdin.callback(None)
        self._on_message = on_message
        self._on_batch_end = on_batch_end
        self._signer = wire.Signer(KEY)
        MemorySockets.opened.append(self)

    def send(self, channel: str, frames: list[bytes]) -> None:
        self.sent.append((channel, wire.zmq_to_parts(channel, frames, self._signer)))

    def stdin_connected(self) -> Deferred[None]:
        return self.stdin

    def drain(self) -> None:
        self.drained = True

    def close(self) -> None:
        self.closed = True

    def kernel_says(
        self, channel: str, msg_type: str, parent: wire.Parts | None, **content: Any
    ) -> None:
        header = {"msg_id": f"k-{len(self.sent)}-{msg_type}", "msg_type": msg_type, "session": "k"}
        parts = wire.message_to_parts(
            {
                "header": header,
                "parent_header": parent.parsed_header() if parent else {},
                "content": content,
                "channel": channel,
            }
        )
        frames = wire.parts_to_zmq(
            parts, self._signer, (b"kernel.iopub",) if channel == "iopub" else ()
        )
        self._on_message(channel, frames)
        self._on_batch_end()

    def answer(self, request: wire.Parts, **content: Any) -> None:
        """The kernel's whole answer to a shell request: busy, the reply, idle."""
        self.kernel_says("iopub", "status", request, execution_state="busy")
        reply = request.msg_type.replace("_request", "_reply")
        self.kernel_says("shell", reply, request, status="ok", **content)
        self.kernel_says("iopub", "status", request, execution_state="idle")


def unframe(data: bytes) -> wire.Parts:
    """The message in one of the bridge's websocket frames (v1)."""
    length = data[1] & 0x7F
    start = {126: 4, 127: 10}.get(length, 2)
    return wire.v1_to_parts(data[start:])


class Client:
    """A websocket client's end of the bridge: it reads every frame at once, unless paused."""

    wire_format = "v1"

    def __init__(self) -> None:
        self.got: list[wire.Parts] = []
        self.closed: tuple[int, str] | None = None
        self.paused = False
        self.reader: Reader

    def writable(self) -> bool:
        return not self.paused

    def write_frames(self, data: list[bytes]) -> None:
        self.got.extend(map(unframe, data))

    def close_for(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def types(self) -> list[str]:
        return [p.msg_type for p in self.got]


def request(msg_type: str = "execute_request", msg_id: str = "r1", **content: Any) -> wire.Parts:
    header = {
        "msg_id": msg_id,
        "msg_type": msg_type,
        "session": "s",
        "username": "u",
        "version": "5.3",
    }
    return wire.message_to_parts({"header": header, "content": content, "channel": "shell"})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bridge(clock: Clock) -> ChannelBridge:
    MemorySockets.opened = []
    return ChannelBridge("k1", INFO, object(), clock, open_sockets=MemorySockets)  # type: ignore[arg-type]


def sockets() -> MemorySockets:
    return MemorySockets.opened[-1]


def test_a_reply_goes_to_the_client_that_asked_and_iopub_to_all(bridge: ChannelBridge) -> None:
    asker, viewer = Client(), Client()
    asker.reader = bridge.attach(asker)
    viewer.reader = bridge.attach(viewer)
    sent = request()
    bridge.send(asker.reader, sent)
    [(channel, relayed)] = sockets().sent
    assert (channel, relayed.msg_id) == ("shell", "r1")
    sockets().answer(relayed)
    assert asker.types() == ["status", "execute_reply", "status"]
    assert viewer.types() == ["status", "status"]
    assert bridge.execution_state == "idle"


def test_held_requests_go_to_the_restarted_process_in_order(bridge: ChannelBridge) -> None:
    client = Client()
    client.reader = bridge.attach(client)
    bridge.hold()
    bridge.send(client.reader, request(msg_id="a"))
    bridge.send(client.reader, request(msg_id="b"))
    assert sockets().sent == []
    bridge.connect(INFO)  # the new process
    bridge.release()
    assert [p.msg_id for _, p in sockets().sent] == ["a", "b"]


def test_requests_queued_behind_the_running_one_are_sent_again(bridge: ChannelBridge) -> None:
    """The kernel died while running one request: those waiting behind it (sent before or
    after it died) go to the restarted process; the running one is answered with an error,
    never run twice."""
    client = Client()
    client.reader = bridge.attach(client)
    for msg_id in ("running", "queued-1", "queued-2"):
        bridge.send(client.reader, request(msg_id=msg_id))
    old = sockets()
    bridge.hold()  # the kernel died
    assert getattr(old, "drained", False), "what the kernel said last is read first"
    bridge.connect(INFO)
    bridge.release()
    assert old.closed
    assert [p.msg_id for _, p in sockets().sent] == ["queued-1", "queued-2"]
    [error] = [p for p in client.got if p.msg_type == "gateway_error"]
    assert json.loads(error.parent_header)["msg_id"] == "running"
    assert "was not run again" in json.loads(error.content)["evalue"]


def test_held_requests_of_a_kernel_that_ends_dead_are_answered(bridge: ChannelBridge) -> None:
    client = Client()
    client.reader = bridge.attach(client)
    bridge.hold()
    bridge.send(client.reader, request(msg_id="a"))
    bridge.disconnect()
    bridge.release()
    [error] = client.got
    assert error.msg_type == "gateway_error"
    assert json.loads(error.content)["evalue"] == "the kernel is not running"
    with pytest.raises(wire.FrameError, match="not running"):
        bridge.send(client.reader, request(msg_id="b"))


def test_the_gateways_own_request_waits_for_reply_and_idle(bridge: ChannelBridge) -> None:
    done = Deferred.fromCoroutine(bridge.gateway.request("kernel_info_request", {}, 10))
    [(_, sent)] = sockets().sent
    sockets().kernel_says("iopub", "status", sent, execution_state="busy")
    sockets().kernel_says("shell", "kernel_info_reply", sent, status="ok", implementation="x")
    assert not done.called, "its output may still come: wait for idle"
    sockets().kernel_says("iopub", "status", sent, execution_state="idle")
    assert done.result["implementation"] == "x"


def test_the_gateways_request_times_out_on_the_clock(bridge: ChannelBridge, clock: Clock) -> None:
    done = Deferred.fromCoroutine(bridge.gateway.request("kernel_info_request", {}, 5))
    clock.advance(5)
    failure = done.result
    done.addErrback(lambda _: None)
    assert isinstance(failure.value, TimeoutError)


def test_wait_ready_nudges_with_doubling_waits(bridge: ChannelBridge, clock: Clock) -> None:
    ready = Deferred.fromCoroutine(bridge.gateway.wait_ready(10, first_wait=0.1, longest_wait=0.4))
    for wait in (0.1, 0.2, 0.4, 0.4):
        assert not ready.called
        clock.advance(wait)
    nudges = [p for _, p in sockets().sent if p.msg_type == "kernel_info_request"]
    assert len(nudges) == 5
    sockets().answer(nudges[-1])
    assert ready.called and ready.result is None


def test_wait_ready_stops_when_the_process_is_gone(bridge: ChannelBridge, clock: Clock) -> None:
    ready = Deferred.fromCoroutine(bridge.gateway.wait_ready(10, alive=lambda: _false()))
    clock.advance(0.1)
    failure = ready.result
    ready.addErrback(lambda _: None)
    assert isinstance(failure.value, KernelExited)


async def _false() -> bool:
    return await succeed(False)


def test_a_session_away_gets_what_it_missed_when_it_comes_back(bridge: ChannelBridge) -> None:
    client = Client()
    client.reader = bridge.attach(client, "sess")
    sent = request(msg_id="r")
    bridge.send(client.reader, sent)
    bridge.detach(client.reader, "sess", keep=True)
    assert bridge.connection_count == 0
    sockets().answer(sent)
    back = Client()
    back.reader = bridge.attach(back, "sess")
    assert back.types() == ["status", "execute_reply", "status"]


def test_close_tells_every_client(bridge: ChannelBridge) -> None:
    clients = [Client(), Client()]
    for client in clients:
        client.reader = bridge.attach(client)
    bridge.close(1001, "kernel shut down")
    assert [c.closed for c in clients] == [(1001, "kernel shut down")] * 2
    assert sockets().closed


def test_last_activity_is_the_reactors_time_of_user_activity(
    bridge: ChannelBridge, clock: Clock
) -> None:
    clock.advance(1000)
    sockets().kernel_says("iopub", "status", request("kernel_info_request"), execution_state="idle")
    assert bridge.last_activity.timestamp() == 0, "a nudge is not activity"
    sockets().kernel_says("iopub", "status", request(), execution_state="busy")
    assert bridge.last_activity.timestamp() == 1000


def test_status_broadcast_reaches_every_client(bridge: ChannelBridge) -> None:
    client = Client()
    client.reader = bridge.attach(client)
    bridge.broadcast_status("restarting")
    assert client.types() == ["status"]
    assert json.loads(client.got[0].content) == {"execution_state": "restarting"}
    assert bridge.execution_state == "restarting"


def test_a_session_away_is_forgotten_after_its_time(bridge: ChannelBridge, clock: Clock) -> None:
    from kgw.channels.offline import OFFLINE_SECONDS

    client = Client()
    client.reader = bridge.attach(client, "sess")
    bridge.detach(client.reader, "sess", keep=True)
    assert "sess" in bridge._offline
    clock.advance(OFFLINE_SECONDS)
    assert "sess" not in bridge._offline
    back = Client()
    back.reader = bridge.attach(back, "sess")
    assert back.got == []


def test_only_the_newest_sessions_away_are_kept(bridge: ChannelBridge) -> None:
    from kgw.channels.offline import MAX_OFFLINE_SESSIONS

    for n in range(MAX_OFFLINE_SESSIONS + 1):
        client = Client()
        client.reader = bridge.attach(client, f"s{n}")
        bridge.detach(client.reader, f"s{n}", keep=True)
    assert "s0" not in bridge._offline
    assert f"s{MAX_OFFLINE_SESSIONS}" in bridge._offline


def test_a_session_away_past_the_backlog_limit_is_told_what_it_missed(clock: Clock) -> None:
    small = BacklogSettings(memory_budget=300, limit=1000)
    bridge = ChannelBridge("k1", INFO, object(), clock, open_sockets=MemorySockets, backlog=small)  # type: ignore[arg-type]
    client = Client()
    client.reader = bridge.attach(client, "sess")
    bridge.detach(client.reader, "sess", keep=True)
    for n in range(5):
        sockets().kernel_says("iopub", "stream", request(), name="stdout", text=f"{n}" * 200)
    back = Client()
    back.reader = bridge.attach(back, "sess")
    notice, *rest = back.got
    missed = json.loads(notice.metadata)["kgw_missed"]
    assert json.loads(notice.content)["name"] == "stderr"
    assert json.loads(notice.parent_header)["msg_id"] == "r1", "shown in the cell it cut"
    texts = [json.loads(p.content)["text"] for p in rest]
    assert missed["messages"] + len(texts) == 5
    assert texts == [f"{n}" * 200 for n in range(5 - len(texts), 5)], "the newest, in order"


def test_a_gateway_request_to_a_kernel_that_lives_goes_on_waiting(
    bridge: ChannelBridge, clock: Clock
) -> None:
    asked: list[None] = []

    async def alive() -> bool:
        asked.append(None)
        return True

    done = Deferred.fromCoroutine(bridge.gateway.request("kernel_info_request", {}, 10, alive))
    clock.advance(1.0)
    clock.advance(1.0)
    assert len(asked) == 2 and not done.called
    [(_, sent)] = sockets().sent
    sockets().answer(sent)
    assert done.called


def test_a_gateway_request_fails_when_the_kernel_is_shut_down(bridge: ChannelBridge) -> None:
    done = Deferred.fromCoroutine(bridge.gateway.request("kernel_info_request", {}, 10))
    bridge.close(1001, "kernel shut down")
    failure = done.result
    done.addErrback(lambda _: None)
    assert isinstance(failure.value, ConnectionError)


def test_a_kernel_whose_queue_is_full_is_a_frame_error_not_a_crash(
    bridge: ChannelBridge,
) -> None:
    import zmq

    def full(channel: str, frames: list[bytes]) -> None:
        raise zmq.Again()

    sockets().send = full  # type: ignore[method-assign]
    client = Client()
    client.reader = bridge.attach(client)
    with pytest.raises(wire.FrameError, match="queue full"):
        bridge.send(client.reader, request())


def test_the_gateways_code_runs_without_history_or_stdin(bridge: ChannelBridge) -> None:
    done = Deferred.fromCoroutine(bridge.gateway.execute("x = 1", 10, silent=True))
    [(_, sent)] = sockets().sent
    assert sent.msg_type == "execute_request"
    assert json.loads(sent.content) == {
        "code": "x = 1",
        "silent": True,
        "store_history": False,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }
    sockets().answer(sent)
    assert done.result["status"] == "ok"
