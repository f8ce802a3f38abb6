"""TLS and mutual TLS on real handshakes over loopback, with certificates made by the tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from websockets.sync.client import connect

from tests.certs import Authority, Issued
from tests.integration.harness import (
    KERNELGATEWAY,
    START_TIMEOUT,
    KernelSocket,
    LoggedProcess,
    stream_text,
)
from tests.integration.test_lifecycle import run_twistd

_READY = re.compile(r"kernelgateway listening on (https://[^\s\"]+)")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("pki")
    ours, theirs = Authority(directory, "ours"), Authority(directory, "theirs")
    return {
        "ca": ours,
        "other_ca": theirs,
        "server": ours.issue("localhost", server=True),
        "client": ours.issue("alice", server=False),
        "stranger": theirs.issue("mallory", server=False),
    }


class TLSGateway(LoggedProcess):
    """kgw serving HTTPS/WSS on a free loopback port."""

    name = "kgw"

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("KG_")}
        command = [
            *KERNELGATEWAY,
            *args,
        ]
        self.spawn(command, {**environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        try:
            url = self.wait_for_line(_READY, START_TIMEOUT).group(1)
        except BaseException:
            self.stop()
            raise
        self.port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        # The certificate names localhost: clients check the hostname against it.
        self.url = f"https://localhost:{self.port}/"

    def stop(self) -> None:
        kernels = self._kernels()
        self.terminate(signal.SIGTERM)
        for process in kernels:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass

    def _kernels(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []


@pytest.fixture
def gateways() -> Iterator[list[TLSGateway]]:
    started: list[TLSGateway] = []
    yield started
    for gateway in started:
        gateway.stop()


def tls_args(server: Issued) -> list[str]:
    paths = ["--certfile", str(server.cert), "--keyfile", str(server.key)]
    return ["--ip", "127.0.0.1", "--port", "0", *paths]


def client_context(ca: Path, cert: Issued | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert.cert), str(cert.key))
    return context


def execute_over_wss(gateway: TLSGateway, context: ssl.SSLContext, **kwargs: Any) -> str:
    """Start a kernel over HTTPS, run code over WSS; return its output."""
    response = requests.post(gateway.url + "api/kernels", json={}, timeout=60, **kwargs)
    assert response.status_code == 201, response.text
    kernel_id = response.json()["id"]
    url = f"wss://localhost:{gateway.port}/api/kernels/{kernel_id}/channels"
    with KernelSocket(connect(url, ssl=context, open_timeout=60), v1=False) as ws:
        reply, iopub = ws.execute("print('over tls', 6 * 7)")
    assert reply["content"]["status"] == "ok"
    return stream_text(iopub)


def handshake(port: int, context: ssl.SSLContext) -> str:
    """Connect, handshake and send a request; return the TLS version, or raise ssl.SSLError."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            version = tls.version() or ""
            tls.sendall(b"GET /api HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            # Under TLS 1.3 a refused client certificate is reported after the handshake,
            # on the first read: the server's alert arrives instead of a response.
            if not tls.recv(1024).startswith(b"HTTP/1.1 200"):
                raise ssl.SSLError("no HTTP response")
            return version


def test_wss_with_certfile_and_keyfile(pki: dict[str, Any], gateways: list[TLSGateway]) -> None:
    gateway = TLSGateway(*tls_args(pki["server"]))
    gateways.append(gateway)
    ca: Authority = pki["ca"]
    assert gateway.url.startswith("https://")
    assert requests.get(gateway.url + "api", verify=str(ca.cert), timeout=30).ok
    output = execute_over_wss(gateway, client_context(ca.cert), verify=str(ca.cert))
    assert output == "over tls 42\n"

    # The client really verifies: another CA's trust store, or another hostname, fails.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(gateway.url + "api", verify=str(pki["other_ca"].cert), timeout=30)
    wrong_name = client_context(ca.cert)
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as raw:
            wrong_name.wrap_socket(raw, server_hostname="kgw.example.org")


def test_listen_on_an_ssl_endpoint_string(pki: dict[str, Any], gateways: list[TLSGateway]) -> None:
    server: Issued = pki["server"]
    listen = f"ssl:0:interface=127.0.0.1:privateKey={server.key}:certKey={server.cert}"
    gateway = TLSGateway("--listen", listen)
    gateways.append(gateway)
    ca: Authority = pki["ca"]
    assert requests.get(gateway.url + "api", verify=str(ca.cert), timeout=30).ok
    assert handshake(gateway.port, old_tls_client(ca.cert, ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"
    with pytest.raises(ssl.SSLError):
        handshake(gateway.port, old_tls_client(ca.cert, ssl.TLSVersion.TLSv1_1))


def test_certfile_wraps_listen_endpoints_in_tls(
    pki: dict[str, Any], gateways: list[TLSGateway]
) -> None:
    server: Issued = pki["server"]
    listen = "tcp:0:interface=127.0.0.1"
    gateway = TLSGateway(
        "--listen", listen, "--certfile", str(server.cert), "--keyfile", str(server.key)
    )
    gateways.append(gateway)
    ca: Authority = pki["ca"]
    assert requests.get(gateway.url + "api", verify=str(ca.cert), timeout=30).ok
    with pytest.raises(ssl.SSLError):
        handshake(gateway.port, old_tls_client(ca.cert, ssl.TLSVersion.TLSv1_1))


def old_tls_client(ca: Path, version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that speaks only ``version``, with OpenSSL's own floor lowered so that the
    refusal, if any, is the server's."""
    context = client_context(ca)
    with warnings.catch_warnings():  # Python deprecates these versions: the point here
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = version
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def test_tls_1_1_is_refused_and_1_2_accepted(
    pki: dict[str, Any], gateways: list[TLSGateway]
) -> None:
    # KG_SSL_VERSION=4 is jupyter_kernel_gateway's way of asking for TLS 1.1: refused loudly.
    gateway = TLSGateway(*tls_args(pki["server"]), env={"KG_SSL_VERSION": "4"})
    gateways.append(gateway)
    assert "below 1.2, which kgw never allows" in gateway.log
    ca = pki["ca"].cert
    for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        with pytest.raises(ssl.SSLError):
            handshake(gateway.port, old_tls_client(ca, old))
    assert handshake(gateway.port, old_tls_client(ca, ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"
    assert handshake(gateway.port, client_context(ca)) == "TLSv1.3"


def test_ssl_version_5_pins_tls_1_2(pki: dict[str, Any], gateways: list[TLSGateway]) -> None:
    gateway = TLSGateway(*tls_args(pki["server"]), "--ssl-version", "5")
    gateways.append(gateway)
    ca = pki["ca"].cert
    assert handshake(gateway.port, client_context(ca)) == "TLSv1.2"
    with pytest.raises(ssl.SSLError):
        handshake(gateway.port, old_tls_client(ca, ssl.TLSVersion.TLSv1_3))


def test_mutual_tls_requires_a_client_certificate_from_the_ca(
    pki: dict[str, Any], gateways: list[TLSGateway]
) -> None:
    ca: Authority = pki["ca"]
    client: Issued = pki["client"]
    gateway = TLSGateway(*tls_args(pki["server"]), env={"KG_CLIENT_CA": str(ca.cert)})
    gateways.append(gateway)

    output = execute_over_wss(
        gateway,
        client_context(ca.cert, client),
        verify=str(ca.cert),
        cert=(str(client.cert), str(client.key)),
    )
    assert output == "over tls 42\n"

    # No certificate, or one from another CA: refused in the handshake, for every version.
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        for cert in (None, pki["stranger"]):
            context = client_context(ca.cert, cert)
            context.minimum_version = context.maximum_version = version
            with pytest.raises((ssl.SSLError, ConnectionResetError)):
                handshake(gateway.port, context)
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(gateway.url + "api", verify=str(ca.cert), timeout=30)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--certfile", "{missing}"), "--certfile: {missing}: No such file or directory"),
        (
            ("--certfile", "{server.cert}", "--keyfile", "{missing}"),
            "--keyfile: {missing}: No such file or directory",
        ),
        (("--certfile", "{server.key}"), "--certfile: {server.key}: no PEM certificate"),
        (
            ("--certfile", "{server.cert}", "--keyfile", "{client.key}"),
            "--keyfile: {client.key}: this key does not belong to {server.cert}",
        ),
        (
            (
                "--certfile",
                "{server.cert}",
                "--keyfile",
                "{server.key}",
                "--client-ca",
                "{missing}",
            ),
            "--client-ca: {missing}: No such file or directory",
        ),
        (("--client-ca", "{ca.cert}"), "--client-ca needs TLS"),
        (
            ("--listen", "ssl:0:privateKey={missing}:certKey={server.cert}"),
            "{missing}: No such file or directory",
        ),
        (
            ("--certfile", "{server.cert}", "--keyfile", "{server.key}", "--ssl-version", "1"),
            "--ssl-version: expected a Python ssl protocol number",
        ),
    ],
)
def test_bad_tls_settings_stop_startup_with_one_line(
    pki: dict[str, Any], tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    names = {
        "missing": tmp_path / "nowhere.pem",
        "server": pki["server"],
        "client": pki["client"],
        "ca": pki["ca"],
    }
    result = run_twistd("--port", "0", *(a.format(**names) for a in args))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected.format(**names) in lines[0]
