"""The HTTP site: TCP_NODELAY on every connection, request log lines without the token."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.web.resource import Resource
from twisted.web.test.requesthelper import DummyRequest

from kgw.channels.protocol import make_factory
from kgw.service import GatewaySite


class TCPTransport(StringTransport):
    """A StringTransport that remembers TCP_NODELAY, as a TCP transport has it."""

    nodelay = False

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.nodelay = enabled

    def getTcpNoDelay(self) -> bool:
        return self.nodelay


def test_http_connections_set_tcp_nodelay() -> None:
    site = GatewaySite(Resource())
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    assert channel is not None
    transport = TCPTransport()
    channel.makeConnection(transport)
    assert transport.getTcpNoDelay() is True


def test_websocket_factory_sets_tcp_nodelay() -> None:
    assert make_factory().tcpNoDelay is True


def test_request_log_line_redacts_the_token() -> None:
    site = GatewaySite(Resource())
    request: Any = DummyRequest([b"api"])
    request.uri = b"/api/kernels?token=hunter2&session_id=x"
    request.method = b"GET"
    request.code = 200
    with capturedLogs() as events:
        site.log(request)
    line = events[-1]["log_format"].format(**events[-1])
    assert "hunter2" not in line
    assert "token=[secret]" in line
    assert "session_id=x" in line
    assert line.startswith("GET /api/kernels?")
