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


def log_line(site: GatewaySite, headers: dict[bytes, bytes]) -> str:
    request: Any = DummyRequest([b"api"])
    request.uri = b"/api"
    request.method = b"GET"
    request.code = 200
    for name, value in headers.items():
        request.requestHeaders.setRawHeaders(name, [value])
    with capturedLogs() as events:
        site.log(request)
    return str(events[-1]["log_format"].format(**events[-1]))


def test_forwarded_address_is_logged_only_when_trusted() -> None:
    site = GatewaySite(Resource())
    forwarded = {b"X-Forwarded-For": b"203.0.113.9, 198.51.100.20"}
    assert "198.51.100.20" not in log_line(site, forwarded)
    site.trust_xheaders = True
    assert log_line(site, forwarded).endswith(" 198.51.100.20")
    assert log_line(site, {b"X-Real-Ip": b"198.51.100.7"}).endswith(" 198.51.100.7")
