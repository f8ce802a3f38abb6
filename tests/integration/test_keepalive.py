"""Websocket keepalive: the gateway pings, and closes a client whose pongs stop coming."""

from __future__ import annotations

import base64
import os
import re
import socket
import struct
from urllib.parse import urlsplit

from tests.integration.harness import Gateway

PING, PONG, CLOSE = 0x9, 0xA, 0x8


class RawWebsocket:
    """A minimal client that shows every frame, pings included, and answers only if told."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the gateway")
        return data

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self.buffer += self._recv()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def frame(self) -> tuple[int, bytes]:
        first, second = self._take(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._take(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._take(8))
        return first & 0x0F, self._take(length)

    def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def close(self) -> None:
        self.sock.close()


def test_pings_arrive_and_a_silent_client_is_closed() -> None:
    with Gateway("--ws-ping-interval", "1", "--ws-ping-timeout", "2") as gw:
        kernel_id = gw.start_kernel()
        url = f"{gw.ws_url}api/kernels/{kernel_id}/channels"
        polite = RawWebsocket(url)
        silent = RawWebsocket(url)
        try:
            # The polite client answers three pings in a row and stays connected.
            answered = 0
            while answered < 3:
                opcode, payload = polite.frame()
                if opcode == PING:
                    polite.send(PONG, payload)
                    answered += 1
            # The silent client never answers: the gateway closes it.
            seen = []
            try:
                while True:
                    opcode, _ = silent.frame()
                    seen.append(opcode)
                    if opcode == CLOSE:
                        break
            except ConnectionError:
                pass
            assert PING in seen
            gw.wait_for_line(re.compile(r"websocket closed"), 30)
            model = gw.request("GET", f"api/kernels/{kernel_id}").json()
            assert model["connections"] == 1
        finally:
            polite.close()
            silent.close()
