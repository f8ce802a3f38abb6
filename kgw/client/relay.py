"""A kernelspec relay: a local "kernel" process whose kernel really runs on a gateway.

Tools that only know kernelspecs (``jupyter execute``, ``jupyter console``, editors) launch
``python -m kgw.client.relay -f {connection_file}`` like any kernel. The relay binds the
connection file's ZeroMQ ports, starts a kernel on the gateway and relays messages both ways
over that kernel's channels websocket, checking and re-signing them with the connection
file's key. It deletes the gateway kernel whenever it ends: after relaying a
``shutdown_reply`` (status 0), on SIGTERM or SIGINT (128 + the signal) and when the process
that launched it is gone (0). When the gateway kernel dies or its websocket is lost for good,
it exits 1 after one line on stderr saying why.

``python -m kgw.client.relay install --name NAME --gateway-url URL`` writes such a kernelspec.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import tempfile
import uuid
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, cast

import zmq
import zmq.asyncio
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.session import Session
from traitlets import TraitError

from kgw.channels import wire
from kgw.client.connection import ChannelsConnection
from kgw.client.errors import GatewayError
from kgw.client.inbox import Message
from kgw.client.manager import AsyncGatewayKernelManager

log = logging.getLogger("kgw.client.relay")

SOCKET_TYPES = {
    "shell": zmq.ROUTER,
    "control": zmq.ROUTER,
    "stdin": zmq.ROUTER,
    "iopub": zmq.PUB,
    "hb": zmq.REP,
}
LINGER_MS = 1000  # how long the last replies may take to leave when the sockets close

FromGateway = tuple[str, Message] | GatewayError


def endpoint(info: dict[str, Any], channel: str) -> str:
    """The ZeroMQ address of ``channel`` in a connection file (tcp or ipc, as jupyter_client)."""
    port = info[f"{channel}_port"]
    if info.get("transport", "tcp") == "ipc":
        return f"ipc://{info['ip']}-{port}"
    return f"tcp://{info['ip']}:{port}"


class KernelRelay:
    """The local ZeroMQ channels of a connection file, relayed to one gateway kernel."""

    def __init__(self, manager: AsyncGatewayKernelManager, info: dict[str, Any]) -> None:
        self._manager = manager
        self._info = info
        self._session = Session(
            key=str(info.get("key", "")).encode("ascii"),
            signature_scheme=info.get("signature_scheme", "hmac-sha256"),
        )
        self._context = zmq.asyncio.Context()
        self._sockets: dict[str, zmq.asyncio.Socket] = {}
        # A request's msg_id -> the ROUTER identities of the client that sent it.
        self._routes: dict[str, list[bytes]] = {}
        self._from_gateway: asyncio.Queue[FromGateway] = asyncio.Queue()
        self._connection: ChannelsConnection | None = None
        self._shutdown_id: str | None = None
        self._parent_fd: int | None = None

    async def run(self) -> int:
        """Relay until the end; return the exit status. The gateway kernel is gone after."""
        loop = asyncio.get_running_loop()
        self._done: asyncio.Future[int] = loop.create_future()
        self._watch(loop)
        tasks: list[asyncio.Task[None]] = []
        try:
            tasks = await self._start()
            return await self._done
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._close()

    def _end(self, status: int, why: str | None = None, level: int = logging.ERROR) -> None:
        """Say how the relay ends (first reason wins); ``run`` then cleans up."""
        if self._done.done():
            return
        if why:
            log.log(level, "%s", why)
        self._done.set_result(status)

    # --- start and stop --------------------------------------------------------------------

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            why = f"{signal.Signals(signum).name}: deleting the gateway kernel and ending"
            loop.add_signal_handler(signum, self._end, 128 + signum, why, logging.INFO)
        # jupyter_client names the process that launched us, as ipykernel's parent poller reads.
        parent = os.environ.get("JPY_PARENT_PID", "")
        if parent.isdigit() and hasattr(os, "pidfd_open"):
            gone = f"process {parent} that launched the relay is gone"
            try:
                self._parent_fd = os.pidfd_open(int(parent))
            except OSError:
                return self._end(0, gone, logging.WARNING)
            loop.add_reader(self._parent_fd, self._end, 0, gone, logging.WARNING)

    async def _start(self) -> list[asyncio.Task[None]]:
        try:
            for channel, kind in SOCKET_TYPES.items():
                sock = self._context.socket(kind)
                if kind == zmq.ROUTER:
                    sock.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a client may reconnect as itself
                self._sockets[channel] = sock
                sock.bind(endpoint(self._info, channel))
        except (zmq.ZMQError, KeyError) as e:
            self._end(1, f"cannot bind the connection file's ports: {e!r}")
            return []
        tasks = [self._task(self._echo_heartbeats())]
        try:
            await self._manager.start_kernel()
        except GatewayError as e:
            self._end(1, f"cannot start a kernel on the gateway: {e}")
        if self._done.done():
            return tasks
        kernel_id = self._manager.kernel_id
        log.info("kernel %s started on %s", kernel_id, self._manager.url)
        self._connection = ChannelsConnection(
            self._manager.gateway_settings(),
            kernel_id,
            uuid.uuid4().hex,
            lambda channel, message: self._from_gateway.put_nowait((channel, message)),
            self._from_gateway.put_nowait,
        )
        self._connection.start()
        tasks.append(self._task(self._relay_from_gateway()))
        tasks += [self._task(self._relay_to_gateway(c)) for c in ("shell", "control", "stdin")]
        return tasks

    def _task(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine)
        task.add_done_callback(self._task_ended)
        return task

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._end(1, f"the relay broke: {task.exception()!r}")

    async def _close(self) -> None:
        """Delete the gateway kernel if it is still there, then close the websocket and ports."""
        failed = self._done.done() and self._done.result() == 1
        if self._connection is not None:
            self._connection.kernel_shut_down()  # its closing is expected: no reconnecting
        if self._manager.has_kernel:
            try:
                await self._manager.shutdown_kernel()
            except GatewayError as e:
                # After a failure the line above already says why the gateway is unreachable.
                level = logging.DEBUG if failed else logging.WARNING
                log.log(level, "could not delete kernel %s: %s", self._manager.kernel_id, e)
        if self._connection is not None:
            await self._connection.close()
        if self._parent_fd is not None:
            asyncio.get_running_loop().remove_reader(self._parent_fd)
            os.close(self._parent_fd)
        self._context.destroy(linger=LINGER_MS)

    # --- traffic ---------------------------------------------------------------------------

    async def _echo_heartbeats(self) -> None:
        heartbeat = self._sockets["hb"]
        while True:
            await heartbeat.send_multipart(await heartbeat.recv_multipart())

    async def _relay_to_gateway(self, channel: str) -> None:
        """Check and forward a local client's messages; remember who sent each request."""
        sock = self._sockets[channel]
        while True:
            frames = await sock.recv_multipart()
            try:
                identities, split = self._session.feed_identities(frames)
                parts = cast("list[bytes]", split)  # frames copied into bytes by recv_multipart
                header = self._session.deserialize(parts, content=False)["header"]
            except (ValueError, TypeError, KeyError) as e:
                log.warning("%s: dropping a message that does not check out: %s", channel, e)
                continue
            msg_id, msg_type = header["msg_id"], header["msg_type"]
            if channel != "stdin" and msg_type.endswith("_request"):
                self._routes[msg_id] = identities
            assert self._connection is not None
            if channel == "control" and msg_type == "shutdown_request":
                self._shutdown_id = msg_id
                self._connection.kernel_shut_down()  # when its socket closes, that is why
            # The JSON parts go on as they came, now that their signature is checked.
            _, header_json, parent_json, metadata_json, content_json, *buffers = parts
            forwarded = wire.Parts(
                channel, header_json, parent_json, metadata_json, content_json, tuple(buffers)
            )
            try:
                self._connection.send(forwarded)
            except GatewayError:
                return  # the failure is on its way to _relay_from_gateway

    async def _relay_from_gateway(self) -> None:
        while True:
            event = await self._from_gateway.get()
            if isinstance(event, GatewayError):
                # A shutdown request may end the kernel before its reply; else the connection
                # has logged why.
                return self._end(0 if self._shutdown_id else 1, None)
            channel, message = event
            if channel == "iopub":
                await self._publish(message)
            else:
                await self._answer(channel, message)

    async def _publish(self, message: Message) -> None:
        msg_type = message["msg_type"]
        topic = f"kernel.{self._manager.kernel_id}.{msg_type}".encode()
        frames = self._session.serialize(message, [topic]) + list(message["buffers"])
        await self._sockets["iopub"].send_multipart(frames)
        state = message["content"].get("execution_state") if msg_type == "status" else None
        if state in ("restarting", "dead"):
            # The gateway lost the kernel's state (it died; restarting is the gateway's own
            # doing): end, so that jupyter_client sees its kernel die and applies its policy.
            kernel = f"kernel {self._manager.kernel_id}"
            if self._shutdown_id:
                self._end(0, f"{kernel} shut down on request ({state})", logging.INFO)
            else:
                self._end(1, f"{kernel} died on the gateway (the gateway reports it {state})")

    async def _answer(self, channel: str, message: Message) -> None:
        """Send a reply or an input_request to the client whose request is its parent."""
        parent_id = message["parent_header"].get("msg_id", "")
        if message["msg_type"].endswith("_reply"):
            identities = self._routes.pop(parent_id, None)
        else:
            identities = self._routes.get(parent_id)
        if identities is None:
            log.debug("%s: no client waits for %s", channel, message["msg_type"])
            return
        frames = self._session.serialize(message, identities) + list(message["buffers"])
        await self._sockets[channel].send_multipart(frames)
        if message["msg_type"] == "shutdown_reply" and parent_id == self._shutdown_id:
            self._end(0, "the kernel shut down on request", logging.INFO)


# --- command line ----------------------------------------------------------------------------


def relay_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kgw.client.relay",
        description="Run a gateway kernel behind a local connection file (a kernelspec's argv).",
        epilog="'python -m kgw.client.relay install --help': write a kernelspec that runs this.",
    )
    parser.add_argument("-f", dest="connection_file", required=True, help="connection file")
    parser.add_argument("--gateway-url", help="default: JUPYTER_GATEWAY_URL")
    parser.add_argument("--auth-token", help="default: JUPYTER_GATEWAY_AUTH_TOKEN")
    parser.add_argument("--kernel-name", default="", help="default: the gateway's default")
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser


def install_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kgw.client.relay install",
        description="Install a kernelspec whose kernel runs on a gateway, through the relay.",
    )
    parser.add_argument("--name", required=True, help="the kernelspec's name, here")
    parser.add_argument("--gateway-url", help="default: JUPYTER_GATEWAY_URL when it runs")
    parser.add_argument("--kernel-name", default="", help="kernelspec on the gateway")
    parser.add_argument("--display-name", help="default: '<kernel name> (gateway)'")
    parser.add_argument("--language", default="python", help="default: python")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="in the user's Jupyter data dir")
    where.add_argument("--prefix", help="in PREFIX/share/jupyter/kernels")
    return parser


def kernel_spec(options: argparse.Namespace) -> dict[str, Any]:
    """The kernel.json of a relay kernelspec. The token is never written in it."""
    argv = [sys.executable, "-m", "kgw.client.relay"]
    if options.gateway_url:
        argv += ["--gateway-url", options.gateway_url]
    if options.kernel_name:
        argv += ["--kernel-name", options.kernel_name]
    return {
        "argv": [*argv, "-f", "{connection_file}"],
        "display_name": options.display_name or f"{options.kernel_name or 'Kernel'} (gateway)",
        "language": options.language,
        "interrupt_mode": "message",  # a SIGINT would end the relay, not interrupt the kernel
    }


def install(options: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as source:
        spec = json.dumps(kernel_spec(options), indent=1)
        Path(source, "kernel.json").write_text(spec, encoding="utf-8")
        try:  # it logs where the kernelspec went, as `jupyter kernelspec install` does
            KernelSpecManager().install_kernel_spec(
                source, options.name, user=options.user, prefix=options.prefix
            )
        except OSError as e:
            log.error("cannot install kernelspec %s: %s", options.name, e)
            return 1
    return 0


def relay(options: argparse.Namespace) -> int:
    given = {"url": options.gateway_url, "auth_token": options.auth_token}
    try:
        manager = AsyncGatewayKernelManager(
            kernel_name=options.kernel_name, **{k: v for k, v in given.items() if v}
        )
        info = json.loads(Path(options.connection_file).read_text(encoding="utf-8"))
    except (TraitError, OSError, ValueError) as e:
        log.error("cannot relay: %s", e)
        return 2
    if not manager.url:
        log.error("cannot relay: no gateway URL: pass --gateway-url or set JUPYTER_GATEWAY_URL")
        return 2
    return asyncio.run(KernelRelay(manager, info).run())


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kgw.client.relay [install] ...``; return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["install"]:
        return install(install_parser().parse_args(args[1:]))
    options = relay_parser().parse_args(args)
    level = logging.getLevelNamesMapping()[options.log_level]
    logging.basicConfig(level=level, format="[kgw relay] %(message)s")
    log.setLevel(level)
    # The websocket's reconnection warnings are progress, not news (what ends the relay is an
    # error line), so they show from INFO on: a failure reads as one line on stderr.
    logging.getLogger("kgw.client").setLevel(level if level < logging.WARNING else logging.ERROR)
    return relay(options)


if __name__ == "__main__":
    sys.exit(main())
