"""The gateway's own client of a kernel: readiness checks, seed cells, env handouts.

It is one more connection of the kernel's router, like a websocket client: its requests go
out through the bridge and their replies come back through ``deliver()``. A request counts
as done once both its reply and the kernel's ``idle`` status for it have come, so that all
of the request's output has been published when the caller goes on.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from kgw.channels import wire

# How often a gateway request that was given a liveness check looks at the kernel's process.
LIVENESS_INTERVAL = 1.0


class KernelExited(Exception):
    """The kernel's process ended before it answered."""


class _Pending:
    """A request of the gateway's own: done once both its reply and its idle status came."""

    def __init__(self, done: Deferred[dict[str, Any]]) -> None:
        self.done = done
        self.reply: dict[str, Any] | None = None
        self.idle = False

    def settle(self) -> None:
        if self.reply is not None and self.idle and not self.done.called:
            self.done.callback(self.reply)


class GatewayClient:
    """The gateway's connection to one kernel (see the module docstring)."""

    is_client = False  # not one of the kernel's clients: not counted, not held, not replayed

    def __init__(
        self,
        kernel_id: str,
        clock: IReactorTime,
        send: Callable[[GatewayClient, wire.Parts], None],
        stdin_connected: Callable[[], Deferred[None] | None] = lambda: None,
    ) -> None:
        self.kernel_id = kernel_id
        self._clock = clock
        self._send = send
        # Fires once the kernel's stdin socket has its handshake (None: nothing to wait for).
        self._stdin_connected = stdin_connected
        self.session = uuid.uuid4().hex
        self._pending: dict[str, _Pending] = {}

    def message(
        self, msg_type: str, content: dict[str, Any], channel: str = "shell", parent: Any = None
    ) -> wire.Parts:
        """A message from the gateway itself (readiness checks, seed cells, status)."""
        header = {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "session": self.session,
            "username": "kgw",
            "date": datetime.now(UTC).isoformat(),
            "version": "5.3",
        }
        return wire.message_to_parts(
            {
                "header": header,
                "parent_header": parent or {},
                "content": content,
                "channel": channel,
            }
        )

    # --- a router connection ----------------------------------------------------------------

    def deliver(self, parts: wire.Parts) -> None:
        if not self._pending:
            return
        if parts.channel == "iopub":
            if parts.msg_type != "status" or b'"idle"' not in parts.content:
                return
            pending = self._pending.get(parts.parent_msg_id())
            if pending is not None:
                pending.idle = True
                pending.settle()
            return
        pending = self._pending.get(parts.parent_msg_id())
        if pending is not None and parts.msg_type.endswith("_reply"):
            pending.reply = json.loads(parts.content)
            pending.settle()

    def close_for(self, code: int, reason: str) -> None:
        """The kernel is shut down: fail what still waits."""
        for pending in list(self._pending.values()):
            if not pending.done.called:
                pending.done.errback(ConnectionError(reason))
        self._pending.clear()

    # --- requests ---------------------------------------------------------------------------

    async def request(
        self,
        msg_type: str,
        content: dict[str, Any],
        timeout: float,
        alive: Callable[[], Awaitable[bool]] | None = None,
    ) -> dict[str, Any]:
        """Send a shell request; return the reply's content (see the module docstring).

        With ``alive``, the kernel's life is checked every LIVENESS_INTERVAL while the
        request waits, and KernelExited raised when it has ended (rather than waiting out
        the timeout).
        """
        parts = self.message(msg_type, content)
        done: Deferred[dict[str, Any]] = Deferred()
        self._pending[parts.msg_id] = _Pending(done)
        done.addTimeout(timeout, self._clock)
        stop_watching = self.fail_if_it_exits(done, alive)
        try:
            self._send(self, parts)
            return await done
        except defer.TimeoutError:
            raise TimeoutError(f"kernel {self.kernel_id}: no {msg_type} reply") from None
        finally:
            stop_watching()
            self._pending.pop(parts.msg_id, None)

    async def execute(
        self,
        code: str,
        timeout: float,
        alive: Callable[[], Awaitable[bool]] | None = None,
        silent: bool = False,
    ) -> dict[str, Any]:
        """Run ``code`` for the gateway (nothing kept in the kernel's history, no stdin);
        return the execute_reply's content."""
        content = {
            "code": code,
            "silent": silent,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        return await self.request("execute_request", content, timeout, alive)

    def fail_if_it_exits(
        self, waiting: Deferred[Any], alive: Callable[[], Awaitable[bool]] | None
    ) -> Callable[[], None]:
        """Fail ``waiting`` with KernelExited once ``alive`` says the kernel has ended, asking
        every LIVENESS_INTERVAL; return what stops the asking."""
        if alive is None:
            return lambda: None
        check: IDelayedCall | None = None

        async def ask() -> bool:
            return await alive()

        def answered(is_alive: bool) -> None:
            nonlocal check
            if waiting.called:
                return
            if is_alive:
                check = self._clock.callLater(LIVENESS_INTERVAL, look)
            else:
                waiting.errback(KernelExited(f"kernel {self.kernel_id} exited"))

        def look() -> None:
            asked: Deferred[bool] = Deferred.fromCoroutine(ask())
            asked.addCallback(answered)
            asked.addErrback(lambda failure: answered(True))  # unknown: go on waiting

        def stop() -> None:
            if check is not None and check.active():
                check.cancel()

        check = self._clock.callLater(LIVENESS_INTERVAL, look)
        return stop

    async def wait_ready(
        self,
        timeout: float,
        first_wait: float = 0.1,
        longest_wait: float = 1.0,
        alive: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        """Wait until the kernel answers kernel_info and reports idle on iopub, and its
        stdin channel is connected.

        A SUB socket misses what is published before it has joined, so the request is
        repeated until iopub carries the answer (jupyter_server calls this a nudge). The
        waits between attempts start short and double up to ``longest_wait``: a kernel that
        is up soon is found soon, and a slow one gets few extra requests.
        """
        deadline = self._clock.seconds() + timeout
        wait = first_wait
        while (remaining := deadline - self._clock.seconds()) > 0:
            try:
                await self.request("kernel_info_request", {}, min(wait, remaining))
                break
            except TimeoutError:
                if alive is not None and not await alive():
                    raise KernelExited(f"kernel {self.kernel_id} exited while starting") from None
                wait = min(wait * 2, longest_wait)
        else:
            raise TimeoutError(f"kernel {self.kernel_id} did not answer within {timeout:.0f}s")
        # The kernel listens on every port once it answers; stdin may still be reconnecting.
        joined = self._stdin_connected()
        if joined is None:
            return
        joined.addTimeout(max(0.0, deadline - self._clock.seconds()), self._clock)
        stop_watching = self.fail_if_it_exits(joined, alive)
        try:
            await joined
        except defer.TimeoutError:
            raise TimeoutError(
                f"kernel {self.kernel_id}: its stdin channel did not connect"
            ) from None
        finally:
            stop_watching()
