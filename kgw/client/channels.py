"""jupyter_client's KernelClient interface over one channels websocket to a gateway.

``AsyncGatewayKernelClient`` and ``GatewayKernelClient`` are jupyter_client's
``AsyncKernelClient`` and ``BlockingKernelClient`` with their ZeroMQ channels replaced: every
channel object sends through one websocket (run by a :class:`ChannelsConnection` on the
client's I/O thread) and reads from its own :class:`Inbox`. Everything else (``execute``,
``kernel_info``, ``wait_for_ready``, ``get_shell_msg``, reply matching) is jupyter_client's.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.client import KernelClient
from jupyter_client.manager import KernelManager
from jupyter_core.utils import run_sync
from traitlets import Instance, Unicode

from kgw.client import framing
from kgw.client.channel import AsyncGatewayChannel, Channel, GatewayChannel, GatewayHBChannel
from kgw.client.connection import CLOSE_TIMEOUT, ChannelsConnection, Connector, open_websocket
from kgw.client.errors import ChannelsStopped, GatewayError, KernelDied
from kgw.client.inbox import Inbox, Message, await_any
from kgw.client.iothread import EventLoopThread
from kgw.client.settings import GatewaySettings

CHANNELS = ("shell", "iopub", "stdin", "control")


class _GatewayClientMixin(KernelClient):
    """Channels over a gateway websocket; the flavours below add jupyter_client's API."""

    kernel_id = Unicode(None, allow_none=True, help="The gateway's id of the kernel.")
    settings = Instance(GatewaySettings, allow_none=True, help="Where the gateway is.")

    channel_class: type[Channel] = Channel

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._inboxes = {name: Inbox(name) for name in CHANNELS}
        self._connection: ChannelsConnection | None = None
        self._io: EventLoopThread | None = None
        self._routed: frozenset[str] = frozenset()
        self._input_parent: dict[str, Any] = {}
        self._dead: KernelDied | None = None

    # --- channels --------------------------------------------------------------------------

    def _channel(self, name: str) -> Any:
        attribute = f"_{name}_channel"
        channel = getattr(self, attribute)
        if channel is None:
            channel = self.channel_class(name, self._inboxes[name], self._send, self._is_current)
            setattr(self, attribute, channel)
        return channel

    @property
    def shell_channel(self) -> Any:
        return self._channel("shell")

    @property
    def iopub_channel(self) -> Any:
        return self._channel("iopub")

    @property
    def stdin_channel(self) -> Any:
        return self._channel("stdin")

    @property
    def control_channel(self) -> Any:
        return self._channel("control")

    @property
    def hb_channel(self) -> Any:
        if self._hb_channel is None:
            self._hb_channel = GatewayHBChannel(lambda: self.channels_running, self._socket_open)
        return self._hb_channel

    def _is_current(self, inbox: Inbox) -> bool:
        return self.channels_running and inbox is self._inboxes[inbox.name]

    def _socket_open(self) -> bool:
        connection = self._connection
        return connection is not None and connection.state == "open"

    @property
    def channels_running(self) -> bool:
        connection = self._connection
        return connection is not None and connection.failure is None

    def start_channels(
        self,
        shell: bool = True,
        iopub: bool = True,
        stdin: bool = True,
        hb: bool = True,
        control: bool = True,
    ) -> None:
        """Open the websocket; the channels asked for get their messages, the rest are dropped.

        This returns at once: messages sent before the socket is open wait for it.
        """
        if self._connection is not None:
            return
        if not self.kernel_id or self.settings is None:
            raise GatewayError("the client needs a kernel_id and settings (use km.client())")
        self.allow_stdin = stdin
        wanted = {"shell": shell, "iopub": iopub, "stdin": stdin, "control": control}
        self._routed = frozenset(name for name, on in wanted.items() if on)
        io = EventLoopThread(f"kgw-client-{self.kernel_id}")
        connection = ChannelsConnection(
            self.settings,
            self.kernel_id,
            self.session.session,
            self._deliver,
            self._failed,
            connector=self.websocket_connector(),
        )
        io.start()
        io.call(connection.start, CLOSE_TIMEOUT)
        self._io, self._connection = io, connection

    def stop_channels(self) -> None:
        """Close the websocket and stop the I/O thread; channels can be started again."""
        connection, io = self._connection, self._io
        self._connection, self._io = None, None
        if connection is not None and io is not None:
            try:
                io.submit(connection.close()).result(CLOSE_TIMEOUT * 2)
            except Exception as e:
                self.log.debug("kernel %s: closing the websocket: %s", self.kernel_id, e)
        if io is not None:
            io.stop(CLOSE_TIMEOUT)
        stopped = ChannelsStopped(f"the channels of kernel {self.kernel_id} were stopped")
        for inbox in self._inboxes.values():
            inbox.set_error(stopped)
        self._inboxes = {name: Inbox(name) for name in CHANNELS}
        self._shell_channel = self._iopub_channel = None
        self._stdin_channel = self._control_channel = None
        self._dead = None

    def websocket_connector(self) -> Connector:
        """What opens the websocket (tests hand in a fake one)."""
        return open_websocket

    def kernel_shut_down(self) -> None:
        """Told by the manager: the websocket will close for good, do not reconnect."""
        if self._connection is not None:
            self._connection.kernel_shut_down()

    # --- traffic ---------------------------------------------------------------------------

    def _send(self, channel: str, msg: Message) -> None:
        connection = self._connection
        if connection is None:
            raise ChannelsStopped(f"the channels of kernel {self.kernel_id} are not started")
        connection.send(framing.message_to_parts(channel, msg))

    def _deliver(self, channel: str, msg: Message) -> None:
        """Called on the I/O thread with each message from the gateway."""
        if channel not in self._routed:
            return
        msg_type = msg["msg_type"]
        if channel == "stdin" and msg_type == "input_request":
            self._input_parent = msg["header"]
        self._inboxes[channel].put(msg)
        if channel == "iopub" and msg_type == "status":
            self._kernel_status(str(msg["content"].get("execution_state")))

    def _kernel_status(self, state: str) -> None:
        if state == "dead":
            self._dead = KernelDied(self.kernel_id, "the gateway reports it dead")
            for inbox in self._inboxes.values():
                if inbox.error is None:
                    inbox.set_error(self._dead)
        elif self._dead is not None:  # restarted (POST .../restart): waiting is worth it again
            for inbox in self._inboxes.values():
                if inbox.error is self._dead:
                    inbox.set_error(None)
            self._dead = None

    def _failed(self, error: GatewayError) -> None:
        for inbox in self._inboxes.values():
            inbox.set_error(error)

    def input(self, string: str) -> None:
        """Answer the kernel's last ``input_request`` (its header is the reply's parent)."""
        msg = self.session.msg("input_reply", {"value": string}, parent=self._input_parent)
        self.stdin_channel.send(msg)

    # --- jupyter_client's methods that assume ZeroMQ ---------------------------------------

    async def _async_is_alive(self) -> bool:
        """False once the gateway reports the kernel gone or dead; else ask the manager."""
        connection = self._connection
        if self._dead is not None or (
            connection is not None and isinstance(connection.failure, KernelDied)
        ):
            return False
        if isinstance(self.parent, KernelManager):
            alive: bool = await self.parent._async_is_alive()
            return alive
        return connection is not None and connection.failure is None

    async def _async_execute_interactive(
        self,
        code: str,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, Any] | None = None,
        allow_stdin: bool | None = None,
        stop_on_error: bool = True,
        timeout: float | None = None,
        output_hook: Callable[[Message], Any] | None = None,
        stdin_hook: Callable[[Message], Any] | None = None,
    ) -> Message:
        """Run code; pass its output to ``output_hook`` as it arrives (default: print it),
        answer ``input()`` with ``stdin_hook`` (default: ask on the terminal); return the
        execute_reply. ``TimeoutError`` after ``timeout`` seconds."""
        if allow_stdin is None:
            allow_stdin = self.allow_stdin
        msg_id: str = self.execute(
            code,
            silent=silent,
            store_history=store_history,
            user_expressions=user_expressions,
            allow_stdin=allow_stdin,
            stop_on_error=stop_on_error,
        )
        on_output = output_hook or self._output_hook_default
        on_input = stdin_hook or self._stdin_hook_default
        deadline = None if timeout is None else time.monotonic() + timeout
        iopub, stdin = self._inboxes["iopub"], self._inboxes["stdin"]
        watched = [stdin, iopub] if allow_stdin else [iopub]
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            inbox = await await_any(watched, remaining)
            if inbox is None:
                raise TimeoutError("Timeout waiting for output")
            msg = inbox.take()
            if msg is None:
                continue
            if inbox is stdin:
                answered = on_input(msg)
                if inspect.isawaitable(answered):
                    await answered
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            on_output(msg)
            if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                break
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        reply: Message = await self._async_recv_reply(msg_id, timeout=remaining)
        return reply


class AsyncGatewayKernelClient(_GatewayClientMixin, AsyncKernelClient):
    """An ``AsyncKernelClient`` for a kernel on a gateway: every ``get_*`` is a coroutine."""

    channel_class = AsyncGatewayChannel
    is_alive = _GatewayClientMixin._async_is_alive
    execute_interactive = _GatewayClientMixin._async_execute_interactive


class GatewayKernelClient(_GatewayClientMixin, BlockingKernelClient):
    """A ``BlockingKernelClient`` for a kernel on a gateway.

    Its methods block, as jupyter_client's do. Its channel objects' ``get_msg`` blocks too,
    except where an event loop runs in the calling thread: there it returns an awaitable,
    which is what lets nbclient drive this client.
    """

    channel_class = GatewayChannel
    is_alive = run_sync(_GatewayClientMixin._async_is_alive)
    execute_interactive = run_sync(_GatewayClientMixin._async_execute_interactive)
