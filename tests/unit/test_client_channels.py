"""The gateway kernel clients against a scripted kernel behind a fake websocket (no sockets)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from queue import Empty
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from kgw.channels import wire
from kgw.client import (
    AsyncGatewayKernelClient,
    ChannelsStopped,
    ConnectionLost,
    GatewayKernelClient,
    GatewaySettings,
    KernelDied,
    RetryPolicy,
)
from kgw.client.connection import Connector, Socket
from kgw.client.inbox import Message

TIMEOUT = 10.0


class ScriptedKernel:
    """Answers requests the way ipykernel does, on a fake websocket (v1 or JSON frames).

    ``input("...")`` in the code asks for input on stdin and prints the answer; ``die``
    reports the kernel dead; ``drop`` closes the websocket without a close frame.
    """

    def __init__(self, v1: bool = True) -> None:
        self.subprotocol = wire.V1_SUBPROTOCOL if v1 else None
        self.v1 = v1
        self.input_replies: list[Message] = []
        self._incoming: asyncio.Queue[str | bytes | None] | None = None
        self._waiting_for_input: Message | None = None

    @property
    def incoming(self) -> asyncio.Queue[str | bytes | None]:
        if self._incoming is None:
            self._incoming = asyncio.Queue()
        return self._incoming

    async def recv(self) -> str | bytes:
        frame = await self.incoming.get()
        if frame is None:
            raise ConnectionClosed(None, None)
        return frame

    async def close(self) -> None:
        self.incoming.put_nowait(None)

    async def send(self, payload: bytes, text: bool) -> None:
        parts = wire.v1_to_parts(payload) if self.v1 else wire.legacy_to_parts(payload, not text)
        request = wire.parts_to_message(parts)
        msg_type, content = request["msg_type"], request["content"]
        if msg_type == "kernel_info_request":
            self.answer(request, "iopub", "status", {"execution_state": "busy"})
            self.answer(request, "shell", "kernel_info_reply", {"protocol_version": "5.3"})
            self.answer(request, "iopub", "status", {"execution_state": "idle"})
        elif msg_type == "execute_request":
            self.execute(request, content["code"])
        elif msg_type == "input_reply":
            self.input_replies.append(request)
            asked, self._waiting_for_input = self._waiting_for_input, None
            assert asked is not None
            self.answer(asked, "iopub", "stream", {"name": "stdout", "text": content["value"]})
            self.finish(asked)

    def execute(self, request: Message, code: str) -> None:
        self.answer(request, "iopub", "status", {"execution_state": "busy"})
        if code == "die":
            self.answer({"header": {}}, "iopub", "status", {"execution_state": "dead"})
        elif code == "drop":
            self.incoming.put_nowait(None)
        elif code.startswith("input"):
            self._waiting_for_input = request
            self.answer(request, "stdin", "input_request", {"prompt": "? ", "password": False})
        else:
            self.answer(request, "iopub", "stream", {"name": "stdout", "text": f"ran {code}"})
            self.finish(request)

    def finish(self, request: Message) -> None:
        self.answer(request, "shell", "execute_reply", {"status": "ok", "execution_count": 1})
        self.answer(request, "iopub", "status", {"execution_state": "idle"})

    def answer(self, parent: Message, channel: str, msg_type: str, content: dict[str, Any]) -> None:
        header = {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "date": "2026-01-01T00:00:00.000000Z",
        }
        parts = wire.message_to_parts(
            {
                "header": header,
                "parent_header": parent["header"],
                "content": content,
                "channel": channel,
            }
        )
        if self.v1:
            self.incoming.put_nowait(wire.parts_to_v1(parts))
        else:
            payload, binary = wire.parts_to_legacy(parts)
            self.incoming.put_nowait(payload if binary else payload.decode())


class Scripted:
    """A connector that hands out the given kernels' sockets, one per connection attempt."""

    def __init__(self, *kernels: ScriptedKernel) -> None:
        self.kernels = list(kernels)
        self.urls: list[str] = []

    async def __call__(self, url: str, settings: GatewaySettings) -> Socket:
        self.urls.append(url)
        if not self.kernels:
            raise ConnectionRefusedError("no more sockets")
        return self.kernels.pop(0)


def client_class(base: type[Any], connector: Scripted) -> type[Any]:
    class Client(base):  # type: ignore[misc]
        def websocket_connector(self) -> Connector:
            return connector

    return Client


SETTINGS = GatewaySettings("http://gateway.test/", retry=RetryPolicy(attempts=1, interval=0.0))


@pytest.fixture
def kernel() -> ScriptedKernel:
    return ScriptedKernel()


@pytest.fixture
def kc(kernel: ScriptedKernel) -> Iterator[GatewayKernelClient]:
    client = client_class(GatewayKernelClient, Scripted(kernel))(kernel_id="k1", settings=SETTINGS)
    client.start_channels()
    client.wait_for_ready(timeout=TIMEOUT)
    yield client
    client.stop_channels()


@pytest.mark.parametrize("v1", [True, False], ids=["v1", "json"])
def test_execute_interactive_streams_output_and_answers_input(v1: bool) -> None:
    kernel = ScriptedKernel(v1)
    kc = client_class(GatewayKernelClient, Scripted(kernel))(kernel_id="k1", settings=SETTINGS)
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=TIMEOUT)
        seen: list[str] = []
        reply = kc.execute_interactive(
            "input('? ')",
            allow_stdin=True,
            output_hook=lambda msg: seen.append(msg["msg_type"]),
            stdin_hook=lambda msg: kc.input("Ada"),
            timeout=TIMEOUT,
        )
    finally:
        kc.stop_channels()
    assert reply["content"]["status"] == "ok"
    assert seen == ["status", "stream", "status"]
    [answer] = kernel.input_replies
    assert answer["content"] == {"value": "Ada"}
    assert answer["parent_header"]["msg_type"] == "input_request"


def test_replies_come_with_jupyter_clients_message_shape(kc: GatewayKernelClient) -> None:
    reply = kc.execute("1", reply=True, timeout=TIMEOUT)
    assert set(reply) == {
        "header",
        "msg_id",
        "msg_type",
        "parent_header",
        "metadata",
        "content",
        "buffers",
    }
    assert reply["header"]["date"].year == 2026  # dates parsed, as Session.deserialize does


def test_channel_get_msg_blocks_in_plain_code_and_is_awaitable_in_a_coroutine(
    kc: GatewayKernelClient,
) -> None:
    kc.execute("1")
    assert kc.shell_channel.get_msg(timeout=TIMEOUT)["msg_type"] == "execute_reply"

    async def in_a_loop() -> Message:
        kc.execute("2")
        reply: Message = await kc.shell_channel.get_msg(timeout=TIMEOUT)
        return reply

    assert asyncio.run(in_a_loop())["msg_type"] == "execute_reply"
    with pytest.raises(Empty):
        kc.get_shell_msg(timeout=0.05)


def test_a_kernel_reported_dead_raises_once_its_messages_are_read(kc: GatewayKernelClient) -> None:
    kc.execute("die")
    states = []
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=TIMEOUT)
        except KernelDied as e:
            assert e.kernel_id == "k1"
            break
        states.append(msg["content"]["execution_state"])
    assert states[-1] == "dead"
    with pytest.raises(KernelDied):
        kc.get_shell_msg(timeout=TIMEOUT)
    assert not kc.is_alive()


def test_a_connection_that_cannot_be_reopened_fails_every_wait(kc: GatewayKernelClient) -> None:
    kc.execute("drop")
    with pytest.raises(ConnectionLost):
        kc.get_shell_msg(timeout=TIMEOUT)
    with pytest.raises(ConnectionLost):
        kc.execute("1")
    assert not kc.is_alive()


def test_stopped_channels_refuse_and_can_be_started_again() -> None:
    connector = Scripted(ScriptedKernel(), ScriptedKernel())
    kc = client_class(GatewayKernelClient, connector)(kernel_id="k1", settings=SETTINGS)
    kc.start_channels()
    old_shell = kc.shell_channel
    kc.stop_channels()
    with pytest.raises(ChannelsStopped):
        old_shell.get_msg(timeout=TIMEOUT)
    with pytest.raises(ChannelsStopped):
        kc.execute("1")
    kc.start_channels()
    try:
        assert kc.execute("1", reply=True, timeout=TIMEOUT)["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
    assert connector.urls[0] == connector.urls[1]


def test_the_async_client() -> None:
    kernel = ScriptedKernel(v1=False)

    async def scenario() -> list[str]:
        kc = client_class(AsyncGatewayKernelClient, Scripted(kernel))(
            kernel_id="k1", settings=SETTINGS
        )
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=TIMEOUT)
            texts: list[str] = []

            def output(msg: Message) -> None:
                if msg["msg_type"] == "stream":
                    texts.append(msg["content"]["text"])

            reply = await kc.execute_interactive("6 * 7", output_hook=output, timeout=TIMEOUT)
            assert reply["content"]["status"] == "ok"
            assert await kc.is_alive()
            return texts
        finally:
            kc.stop_channels()

    assert asyncio.run(scenario()) == ["ran 6 * 7"]
