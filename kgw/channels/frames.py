"""Whole websocket frames of kernel messages, ready for a transport (sans-I/O).

A server's frames are not masked (RFC 6455, 5.1), so framing is a header before the
payload. kgw frames kernel messages itself rather than through Autobahn's
``prepareMessage``: a message kept for many clients is framed once per wire format, and
the bytes go straight to each client's transport.
"""

from __future__ import annotations

import struct

from kgw.channels import wire

V1 = "v1"
JSON = "json"

_FIN = 0x80
_TEXT = 0x1
_BINARY = 0x2


def header(length: int, binary: bool) -> bytes:
    """The header of one unmasked, final websocket frame of ``length`` payload bytes."""
    first = _FIN | (_BINARY if binary else _TEXT)
    if length < 126:
        return struct.pack("!BB", first, length)
    if length < 1 << 16:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


def frame(parts: wire.Parts, wire_format: str) -> bytes:
    """``parts`` as one websocket frame in ``wire_format`` (``"v1"`` or ``"json"``)."""
    if wire_format == V1:
        payload, binary = wire.parts_to_v1(parts), True
    else:
        payload, binary = wire.parts_to_legacy(parts)
    return header(len(payload), binary) + payload


def size(parts: wire.Parts) -> int:
    """A message's bytes, counted as in the v1 format (its parts, channel and offsets)."""
    chunks = 5 + len(parts.buffers)
    data = sum(map(len, parts.json_parts)) + sum(map(len, parts.buffers))
    return 8 * (chunks + 2) + len(parts.channel.encode()) + data
