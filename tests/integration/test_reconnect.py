"""A client whose connection drops comes back with its session id and gets what it missed."""

from __future__ import annotations

import socket
import uuid

from tests.integration.harness import Gateway, KernelSocket, stream_text

# Runs on after the connection is gone: its output and reply arrive while nobody listens.
LATER = "import time\ntime.sleep(1.5)\nprint('while you were away')"


def drop(ks: KernelSocket) -> None:
    """Lose the connection without a websocket close, as a network failure does."""
    sock = ks.ws.socket
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def test_a_dropped_session_gets_what_it_missed(gateway: Gateway, kernel_id: str) -> None:
    session = uuid.uuid4().hex
    ks = gateway.connect(kernel_id, query=f"?session_id={session}")
    msg_id = ks.send_execute(LATER)
    drop(ks)
    with gateway.connect(kernel_id, query=f"?session_id={session}") as back:
        reply, iopub = back.collect(msg_id)
    assert reply["content"]["status"] == "ok"
    assert stream_text(iopub) == "while you were away\n"


def test_another_session_or_a_clean_close_gets_nothing_back(
    gateway: Gateway, kernel_id: str
) -> None:
    dropped, closed = uuid.uuid4().hex, uuid.uuid4().hex
    ks = gateway.connect(kernel_id, query=f"?session_id={dropped}")
    ks.send_execute(LATER)
    drop(ks)
    with gateway.connect(kernel_id, query=f"?session_id={closed}") as other:
        # Its own request comes after the other one: by its reply, the first has finished.
        mine = other.send_execute("print('mine')")
        reply, iopub = other.collect(mine)
        assert reply["content"]["status"] == "ok"
        assert stream_text(iopub) == "mine\n"
        other.send_execute(LATER)  # still running when this client leaves cleanly
    # A clean close keeps nothing, even for a session id. (iopub goes to every client, so
    # only replies tell whose requests a client is answered for.)
    with gateway.connect(kernel_id, query=f"?session_id={closed}") as again:
        last = again.send_execute("print('last')")
        replies = []
        for message in again.messages():
            if message["msg_type"] == "execute_reply":
                replies.append(message["parent_header"]["msg_id"])
                if replies[-1] == last:
                    break
    assert replies == [last]
