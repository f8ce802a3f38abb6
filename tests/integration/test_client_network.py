"""kgw.client when the network or the gateway says no: drops, gone kernels, HTTP errors, TLS."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from kgw.client import (
    ConnectionLost,
    GatewayError,
    GatewayHTTPError,
    GatewayKernelClient,
    GatewayKernelManager,
    KernelDied,
)
from tests.certs import Authority
from tests.integration.harness import Gateway

TIMEOUT = 60.0


class Proxy:
    """A TCP forwarder to the gateway whose connections the test can cut, as a network would.

    It remembers the first line of every connection (the HTTP request line).
    """

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/"
        self.request_lines: list[str] = []
        self.new_request = threading.Condition()
        self.open = threading.Event()  # cleared: new connections wait, as during an outage
        self.open.set()
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.open.wait(TIMEOUT)
            upstream = socket.create_connection(self._target, timeout=TIMEOUT)
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            for source, sink, first in ((client, upstream, True), (upstream, client, False)):
                thread = threading.Thread(target=self._pump, args=(source, sink, first))
                thread.daemon = True
                thread.start()
                self._threads.append(thread)

    def _pump(self, source: socket.socket, sink: socket.socket, first: bool) -> None:
        try:
            while data := source.recv(65536):
                if first:
                    first = False
                    with self.new_request:
                        self.request_lines.append(data.split(b"\r\n", 1)[0].decode())
                        self.new_request.notify_all()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def channels_requests(self) -> list[str]:
        return [line for line in self.request_lines if "/channels" in line]

    def wait_for_channels_requests(self, count: int) -> list[str]:
        with self.new_request:
            assert self.new_request.wait_for(
                lambda: len(self.channels_requests()) >= count, TIMEOUT
            ), self.request_lines
            return self.channels_requests()

    def cut(self) -> None:
        """Drop every connection without a close frame (no FIN from the gateway's side)."""
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone does not
        except OSError:
            pass
        self._listener.close()
        self.cut()
        for sock in self._sockets:
            sock.close()
        for thread in self._threads:
            thread.join(TIMEOUT)


@pytest.fixture
def proxy(gateway: Gateway) -> Iterator[Proxy]:
    forwarder = Proxy(gateway.url)
    yield forwarder
    forwarder.close()


@contextmanager
def ready_client(url: str) -> Iterator[tuple[GatewayKernelManager, GatewayKernelClient]]:
    """A kernel started through ``url`` and its ready client; both gone afterwards."""
    km = GatewayKernelManager(url=url)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=TIMEOUT)
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel()  # a kernel already gone: nothing to do, no error


def test_a_dropped_websocket_reconnects_with_the_same_session(proxy: Proxy) -> None:
    with ready_client(proxy.url) as (_, kc):
        kc.execute("x = 41", reply=True, timeout=TIMEOUT)
        proxy.cut()
        first, second = proxy.wait_for_channels_requests(2)
        assert first == second  # same kernel, same ?session_id=
        assert f"session_id={kc.session.session}" in first
        reply = kc.execute("x + 1", reply=True, timeout=TIMEOUT)
        assert reply["content"]["status"] == "ok"
        assert kc.is_alive()


def test_a_gateway_that_stays_away_ends_in_connection_lost(gateway: Gateway) -> None:
    forwarder = Proxy(gateway.url)
    km = GatewayKernelManager(url=forwarder.url, reconnect_attempts=2, reconnect_interval=0.01)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=TIMEOUT)
        forwarder.close()  # stops listening too: every reconnection is refused
        with pytest.raises(ConnectionLost, match="gave up after 2 attempts"):
            kc.get_shell_msg(timeout=TIMEOUT)
        with pytest.raises(ConnectionLost):
            kc.execute("1")
    finally:
        kc.stop_channels()
        gateway.request("DELETE", f"api/kernels/{km.kernel_id}")


def test_a_kernel_deleted_by_someone_else_raises_kernel_died(gateway: Gateway) -> None:
    with ready_client(gateway.url) as (km, kc):
        assert gateway.request("DELETE", f"api/kernels/{km.kernel_id}").status_code == 204
        with pytest.raises(KernelDied, match="Kernel does not exist") as caught:
            while True:
                kc.get_shell_msg(timeout=TIMEOUT)
        assert caught.value.kernel_id == km.kernel_id
        assert not kc.is_alive()
        assert not km.is_alive()
        with pytest.raises(KernelDied):
            km.interrupt_kernel()


def test_http_errors_carry_the_gateways_reason_and_message() -> None:
    with Gateway("--max-kernels", "1", token="right") as gw:
        with pytest.raises(GatewayHTTPError) as caught:
            GatewayKernelManager(url=gw.url, auth_token="wrong").start_kernel()
        assert (caught.value.status, caught.value.reason) == (401, "Unauthorized")

        unknown = GatewayKernelManager(url=gw.url, auth_token="right", kernel_name="nope")
        with pytest.raises(GatewayHTTPError) as caught:
            unknown.start_kernel()
        assert (caught.value.status, caught.value.message) == (
            404,
            "Kernel spec does not exist: nope",
        )
        assert not isinstance(caught.value, KernelDied)

        km = GatewayKernelManager(url=gw.url, auth_token="right")
        km.start_kernel()
        try:
            with pytest.raises(GatewayHTTPError) as caught:
                GatewayKernelManager(url=gw.url, auth_token="right").start_kernel()
            assert (caught.value.status, caught.value.reason) == (403, "Resource Limit")

            intruder = GatewayKernelManager(url=gw.url, auth_token="wrong")
            intruder.kernel_id = km.kernel_id  # the right kernel, the wrong token
            kc = intruder.client()
            kc.start_channels()
            try:
                with pytest.raises(GatewayHTTPError) as caught:
                    kc.get_shell_msg(timeout=TIMEOUT)
                assert caught.value.status == 401
            finally:
                kc.stop_channels()
        finally:
            km.shutdown_kernel()


def test_a_gateway_that_is_not_there_fails_within_the_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"  # bound, not listening: refused
        with pytest.raises(GatewayError, match=r"POST .*/api/kernels failed"):
            GatewayKernelManager(url=url, connect_timeout=5.0).start_kernel()


# --- TLS ----------------------------------------------------------------------------------------


def test_tls_is_verified_against_the_ca_bundle(tmp_path: Path) -> None:
    authority = Authority(tmp_path, "ca")
    server = authority.issue("localhost", server=True)  # for 127.0.0.1 too
    ca = authority.cert
    endpoint = f"ssl:0:interface=127.0.0.1:certKey={server.cert}:privateKey={server.key}"
    with Gateway("--listen", endpoint) as gw:
        url = gw.wait_for_line(re.compile(r"listening on (https://\S+)"), TIMEOUT).group(1)
        with pytest.raises(GatewayError, match="CERTIFICATE_VERIFY_FAILED"):
            GatewayKernelManager(url=url).start_kernel()

        km = GatewayKernelManager(url=url, ca_certs=str(ca))
        km.start_kernel()
        kc = km.client()
        kc.start_channels()
        try:
            reply = kc.execute("6 * 7", reply=True, timeout=TIMEOUT)
            assert reply["content"]["status"] == "ok"
            assert km.gateway_settings().ws_url.startswith("wss://")
        finally:
            kc.stop_channels()
            km.shutdown_kernel()


def wait_until_idle(gateway: Gateway, kernel_id: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while gateway.request("GET", f"api/kernels/{kernel_id}").json()["execution_state"] != "idle":
        assert time.monotonic() < deadline, "the kernel stayed busy"
        time.sleep(0.05)


def test_a_cell_running_across_a_drop_still_delivers_its_reply_and_output(
    gateway: Gateway, proxy: Proxy
) -> None:
    with ready_client(proxy.url) as (km, kc):
        msg_id = kc.execute("import time\ntime.sleep(2)\nprint('across the drop')")
        # The request must have reached the kernel before the cut (one still in flight is lost
        # with the connection, as on any network): its execute_input says it is running.
        while True:
            message = kc.get_iopub_msg(timeout=TIMEOUT)
            started = message["msg_type"] == "execute_input"
            if started and message["parent_header"].get("msg_id") == msg_id:
                break
        # The network goes down while the cell sleeps, and stays down until it has finished:
        # its output and reply are sent while the client is away.
        proxy.open.clear()
        proxy.cut()
        gateway.wait_for_line(re.compile(rf"kernel {km.kernel_id}: websocket closed"), TIMEOUT)
        wait_until_idle(gateway, km.kernel_id)
        proxy.open.set()
        reply = kc.get_shell_msg(timeout=TIMEOUT)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "ok"
        text = ""
        while True:
            message = kc.get_iopub_msg(timeout=TIMEOUT)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "stream":
                text += message["content"]["text"]
            if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                break
        assert text == "across the drop\n"


def test_attach_to_a_kernel_that_already_runs_on_the_gateway(gateway: Gateway) -> None:
    """A kernel a dashboard (here: plain REST) started is used through kgw.client."""
    kernel_id = gateway.start_kernel()
    with gateway.connect(kernel_id) as ks:
        ks.execute("answer = 42")
    try:
        km = GatewayKernelManager(url=gateway.url)
        km.attach_kernel(kernel_id)
        assert (km.kernel_id, km.kernel_name) == (kernel_id, "python3")
        assert km.is_alive()
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=TIMEOUT)
            reply = kc.execute("answer", reply=True, timeout=TIMEOUT)
            assert reply["content"]["status"] == "ok"
            result = kc.get_iopub_msg(timeout=TIMEOUT)
            while result["msg_type"] != "execute_result":
                result = kc.get_iopub_msg(timeout=TIMEOUT)
            assert result["content"]["data"]["text/plain"] == "42"
        finally:
            kc.stop_channels()
        km.cleanup_resources()  # nbclient's cleanup: an attached kernel keeps running
        assert gateway.request("GET", f"api/kernels/{kernel_id}").status_code == 200
        # jupyter_server's spelling: start_kernel(kernel_id=...) attaches too.
        again = GatewayKernelManager(url=gateway.url)
        again.start_kernel(kernel_id=kernel_id)
        assert again.kernel_id == kernel_id
        again.shutdown_kernel()  # asked for explicitly: deleted
        assert gateway.request("GET", f"api/kernels/{kernel_id}").status_code == 404
    finally:
        gateway.request("DELETE", f"api/kernels/{kernel_id}")


def test_attach_to_an_unknown_kernel_says_so(gateway: Gateway) -> None:
    km = GatewayKernelManager(url=gateway.url)
    with pytest.raises(KernelDied) as caught:
        km.attach_kernel("no-such-kernel")
    assert caught.value.kernel_id == "no-such-kernel"
    assert not km.has_kernel
