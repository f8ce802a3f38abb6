"""A kernel's four ZeroMQ sockets over ZeroMQ's in-process transport: no OS sockets, the
reactor a MemoryReactorClock, and the test playing the kernel with pyzmq."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import zmq
from twisted.internet.testing import MemoryReactorClock
from txzmq import ZmqFactory

from kgw.channels.sockets import KernelSockets, _address

TIMEOUT_MS = 30_000


class Kernel:
    """The kernel's end: ROUTER sockets for shell, control and stdin, a PUB for iopub."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]]) -> None:
        name = f"kgw-test-{uuid.uuid4().hex}"
        self.info = {"transport": "inproc", "ip": name, "key": ""}
        self.sockets: dict[str, zmq.Socket[bytes]] = {}
        kinds = {"shell": zmq.ROUTER, "control": zmq.ROUTER, "stdin": zmq.ROUTER, "iopub": zmq.PUB}
        for number, (channel, kind) in enumerate(kinds.items(), start=1):
            self.info[f"{channel}_port"] = number
            sock = context.socket(kind)
            sock.bind(_address(self.info, f"{channel}_port"))
            self.sockets[channel] = sock

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close(linger=0)


@pytest.fixture
def factory() -> Iterator[ZmqFactory]:
    made = ZmqFactory()
    made.reactor = MemoryReactorClock()
    yield made
    made.shutdown()


def test_frames_go_out_on_their_channel_and_come_back_with_theirs(factory: ZmqFactory) -> None:
    kernel = Kernel(factory.context)
    got: list[tuple[str, list[bytes]]] = []
    batches: list[None] = []
    sockets = KernelSockets(
        factory, kernel.info, None, lambda c, f: got.append((c, f)), lambda: batches.append(None)
    )
    try:
        sockets.send("shell", [b"<IDS|MSG>", b"request"])
        shell = kernel.sockets["shell"]
        assert shell.poll(TIMEOUT_MS)
        identity, *frames = shell.recv_multipart()
        assert frames == [b"<IDS|MSG>", b"request"]
        # stdin shares shell's identity: the kernel's input_request finds the same client.
        sockets.send("stdin", [b"<IDS|MSG>", b"input"])
        stdin_identity, *_ = kernel.sockets["stdin"].recv_multipart()
        assert stdin_identity == identity

        shell.send_multipart([identity, b"<IDS|MSG>", b"reply"])
        ours = sockets._sockets["shell"]
        assert ours.socket.poll(TIMEOUT_MS)
        ours.doRead()
        assert got == [("shell", [b"<IDS|MSG>", b"reply"])]
        assert batches, "each read ends a batch, so the bridge writes what it relayed"
    finally:
        sockets.close()
        kernel.close()


def test_a_big_read_is_cut_into_batches(
    factory: ZmqFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kgw.channels import sockets as module

    monkeypatch.setattr(module, "READ_BATCH_MESSAGES", 2)
    kernel = Kernel(factory.context)
    got: list[list[bytes]] = []
    sockets = KernelSockets(factory, kernel.info, None, lambda c, f: got.append(f), lambda: None)
    try:
        sockets.send("shell", [b"hello"])
        identity, _ = kernel.sockets["shell"].recv_multipart()
        for n in range(5):
            kernel.sockets["shell"].send_multipart([identity, str(n).encode()])
        ours = sockets._sockets["shell"]
        assert ours.socket.poll(TIMEOUT_MS)
        ours.doRead()
        assert len(got) == 2, "at most a batch per read"
        reactor: MemoryReactorClock = factory.reactor
        while len(got) < 5:
            assert reactor.getDelayedCalls(), "the rest is read on the next reactor turn"
            reactor.advance(0)
        assert [f[0] for f in got] == [b"0", b"1", b"2", b"3", b"4"]
    finally:
        sockets.close()
        kernel.close()


def test_addresses_of_every_transport() -> None:
    assert _address({"ip": "127.0.0.1", "shell_port": 5}, "shell_port") == "tcp://127.0.0.1:5"
    info = {"transport": "ipc", "ip": "/run/k", "shell_port": 5}
    assert _address(info, "shell_port") == "ipc:///run/k-5"
