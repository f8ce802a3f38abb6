"""Per-channel inboxes: waits from threads and event loops, timeouts, errors after draining."""

from __future__ import annotations

import asyncio
import threading

import pytest

from kgw.client.errors import KernelDied
from kgw.client.inbox import Inbox, await_any, wait_any

TIMEOUT = 10.0


def test_messages_come_out_in_order_then_the_error() -> None:
    inbox = Inbox("shell")
    inbox.put({"n": 1})
    inbox.put({"n": 2})
    inbox.set_error(KernelDied("k", "dead"))
    assert inbox.take() == {"n": 1}
    assert inbox.take() == {"n": 2}
    with pytest.raises(KernelDied):
        inbox.take()
    inbox.set_error(None)
    assert inbox.take() is None


def test_a_blocking_wait_times_out_with_none() -> None:
    assert wait_any([Inbox("a"), Inbox("b")], 0.01) is None


def test_a_blocking_wait_wakes_for_a_message_from_another_thread() -> None:
    iopub, stdin = Inbox("iopub"), Inbox("stdin")
    putter = threading.Thread(target=stdin.put, args=({"msg_type": "input_request"},))
    putter.start()
    assert wait_any([iopub, stdin], TIMEOUT) is stdin
    putter.join()
    assert iopub.take() is None


def test_an_error_ends_a_wait() -> None:
    inbox = Inbox("shell")
    failer = threading.Thread(target=inbox.set_error, args=(KernelDied("k", "gone"),))
    failer.start()
    assert wait_any([inbox], TIMEOUT) is inbox
    failer.join()


def test_an_event_loop_wait_wakes_for_a_message_from_another_thread() -> None:
    inbox = Inbox("iopub")

    async def scenario() -> Inbox | None:
        threading.Thread(target=inbox.put, args=({"n": 1},)).start()
        return await await_any([inbox], TIMEOUT)

    assert asyncio.run(scenario()) is inbox
    assert inbox.take() == {"n": 1}


def test_an_event_loop_wait_times_out_and_cancelling_one_loses_nothing() -> None:
    inbox = Inbox("iopub")

    async def scenario() -> None:
        assert await await_any([inbox], 0.01) is None
        waiter = asyncio.ensure_future(await_any([inbox], None))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        inbox.put({"n": 1})

    asyncio.run(scenario())
    assert inbox.take() == {"n": 1}
