"""The one crossing from asyncio (jupyter_client) into Twisted."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from twisted.internet.defer import Deferred

T = TypeVar("T")


def as_deferred(coro: Awaitable[T]) -> Deferred[T]:
    """Run an asyncio coroutine on the asyncio reactor's loop; its result as a Deferred.

    Awaiting a Deferred inside an asyncio task fails ("Task got bad yield"), so jupyter_client
    coroutines are always wrapped here before Twisted code awaits them. A Deferred (what the
    in-memory test doubles of a kernel manager return) passes through as it is.
    """
    if isinstance(coro, Deferred):
        return coro
    return Deferred.fromFuture(asyncio.ensure_future(coro))
