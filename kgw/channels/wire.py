"""Sans-I/O framing of Jupyter messages: ZeroMQ parts <-> websocket frames.

Both wire formats that jupyter_server speaks are here, for both directions, so the gateway
and ``kgw.client`` share one copy:

* the legacy JSON format: one JSON text frame per message, or, when the message carries
  binary buffers, one binary frame: big-endian uint32 ``nbufs``, ``nbufs`` uint32 offsets,
  the JSON message (without ``buffers``), then the buffers;
* the ``v1.kernel.websocket.jupyter.org`` subprotocol: little-endian uint64 offset count,
  the offsets, then the channel name and the raw ZeroMQ parts (header, parent_header,
  metadata, content, buffers...), the last offset being the total length.

A message travels as :class:`Parts`: the four JSON parts as the bytes ZeroMQ carries plus the
raw buffers, so the gateway forwards kernel output without decoding and re-encoding it.
This module imports nothing from Twisted or ZeroMQ.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import struct
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DELIMITER = b"<IDS|MSG>"
V1_SUBPROTOCOL = "v1.kernel.websocket.jupyter.org"
CLIENT_CHANNELS = frozenset({"shell", "control", "stdin"})
ALL_CHANNELS = CLIENT_CHANNELS | {"iopub"}
_JSON_KEYS = ("header", "parent_header", "metadata", "content")


class FrameError(ValueError):
    """A frame or ZeroMQ message that is not a well-formed Jupyter message."""


@dataclass(frozen=True)
class Parts:
    """One Jupyter message as ZeroMQ carries it, with the channel it travels on."""

    channel: str
    header: bytes
    parent_header: bytes
    metadata: bytes
    content: bytes
    buffers: tuple[bytes, ...] = ()
    _header: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    # Framed forms of this message, per wire format, for callers that send it many times.
    frames: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def json_parts(self) -> tuple[bytes, bytes, bytes, bytes]:
        return (self.header, self.parent_header, self.metadata, self.content)

    def parsed_header(self) -> dict[str, Any]:
        if self._header is None:
            object.__setattr__(self, "_header", _load_object(self.header, "header"))
        assert self._header is not None
        return self._header

    @property
    def msg_id(self) -> str:
        return str(self.parsed_header().get("msg_id", ""))

    @property
    def msg_type(self) -> str:
        return str(self.parsed_header().get("msg_type", ""))

    def parent_msg_id(self) -> str:
        parent = _load_object(self.parent_header, "parent_header")
        return str(parent.get("msg_id", ""))


def _load_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise FrameError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise FrameError(f"{what} must be a JSON object")
    return value


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- signing (jupyter_client's Session scheme) ------------------------------------------------


class Signer:
    """HMAC signatures of the four JSON parts, as the kernel's connection key requires."""

    def __init__(self, key: bytes, scheme: str = "hmac-sha256") -> None:
        if not scheme.startswith("hmac-"):
            raise ValueError(f"unsupported signature scheme {scheme!r}")
        digest = scheme[len("hmac-") :]
        if digest not in hashlib.algorithms_available:
            raise ValueError(f"unsupported signature scheme {scheme!r}")
        self._key = key
        self._digest = digest

    def sign(self, json_parts: tuple[bytes, ...]) -> bytes:
        if not self._key:
            return b""
        mac = hmac.new(self._key, digestmod=self._digest)
        for part in json_parts:
            mac.update(part)
        return mac.hexdigest().encode("ascii")

    def verify(self, signature: bytes, json_parts: tuple[bytes, ...]) -> bool:
        if not self._key:
            return True
        return hmac.compare_digest(signature, self.sign(json_parts))


def parts_to_zmq(parts: Parts, signer: Signer, idents: tuple[bytes, ...] = ()) -> list[bytes]:
    """The multipart ZeroMQ message that sends ``parts`` to a kernel."""
    signature = signer.sign(parts.json_parts)
    return [*idents, DELIMITER, signature, *parts.json_parts, *parts.buffers]


def zmq_to_parts(channel: str, frames: list[bytes], signer: Signer) -> Parts:
    """Check the signature of a multipart message from a kernel and keep its parts."""
    try:
        split = frames.index(DELIMITER)
    except ValueError:
        raise FrameError("no <IDS|MSG> delimiter in ZeroMQ message") from None
    rest = frames[split + 1 :]
    if len(rest) < 5:
        raise FrameError(f"ZeroMQ message has {len(rest)} parts after the delimiter, needs 5")
    signature, header, parent, metadata, content = rest[:5]
    if not signer.verify(signature, (header, parent, metadata, content)):
        raise FrameError("invalid message signature")
    return Parts(channel, header, parent, metadata, content, tuple(rest[5:]))


# --- v1.kernel.websocket.jupyter.org ----------------------------------------------------------


def parts_to_v1(parts: Parts) -> bytes:
    """Frame a message in the v1 binary subprotocol."""
    chunks = [parts.channel.encode("utf-8"), *parts.json_parts, *parts.buffers]
    offset = 8 * (len(chunks) + 2)
    offsets = [offset]
    for chunk in chunks:
        offset += len(chunk)
        offsets.append(offset)
    head = struct.pack(f"<{len(offsets) + 1}Q", len(offsets), *offsets)
    return b"".join([head, *chunks])


def v1_to_parts(frame: bytes) -> Parts:
    """Read a v1 binary frame; raise FrameError for anything malformed."""
    if len(frame) < 8:
        raise FrameError("v1 frame shorter than its offset count")
    (count,) = struct.unpack_from("<Q", frame)
    if count < 6 or 8 * (count + 1) > len(frame):
        raise FrameError(f"v1 frame has an impossible offset count {count}")
    offsets = struct.unpack_from(f"<{count}Q", frame, 8)
    if offsets[0] != 8 * (count + 1) or offsets[-1] != len(frame):
        raise FrameError("v1 frame offsets do not span the frame")
    if any(b < a for a, b in itertools.pairwise(offsets)):
        raise FrameError("v1 frame offsets go backwards")
    chunks = [frame[a:b] for a, b in itertools.pairwise(offsets)]
    try:
        channel = chunks[0].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError("v1 channel name is not UTF-8") from None
    header, parent, metadata, content = chunks[1:5]
    return Parts(channel, header, parent, metadata, content, tuple(chunks[5:]))


def check_header(header: dict[str, Any]) -> None:
    """Raise FrameError unless a header has the string msg_id and msg_type routing needs."""
    for key in ("msg_id", "msg_type"):
        if not isinstance(header.get(key), str):
            raise FrameError(f"header.{key} must be a string")


# What a kernel needs in the header of a message from a client (jupyter_client's Session
# reads each of them; a kernel that misses one logs an error and never answers).
CLIENT_HEADER_FIELDS = ("msg_id", "msg_type", "session", "username", "version")


def check_client_message(parts: Parts, objects: bool = True) -> None:
    """Raise FrameError naming the field, unless a client's message has the shape a kernel
    can handle: the header fields above as strings, and (with ``objects``, for formats
    whose parts were not decoded yet) parent_header, metadata and content as JSON objects."""
    header = parts.parsed_header()
    for key in CLIENT_HEADER_FIELDS:
        value = header.get(key)
        if not isinstance(value, str):
            problem = "is missing" if key not in header else "must be a string"
            raise FrameError(f"header.{key} {problem}")
    if objects:
        for key, data in zip(_JSON_KEYS[1:], parts.json_parts[1:], strict=True):
            _load_object(data, key)


def gateway_header(msg_type: str) -> dict[str, Any]:
    """The header of a message kgw itself sends to a client."""
    return {
        "msg_id": uuid.uuid4().hex,
        "msg_type": msg_type,
        "session": "kgw",
        "username": "kgw",
        "date": datetime.now(UTC).isoformat(),
        "version": "5.3",
    }


def gateway_error(error: str, parent: dict[str, Any], channel: str) -> Parts:
    """A ``gateway_error`` message telling a client that kgw could not use its message."""
    header = gateway_header("gateway_error")
    content = {"status": "error", "ename": "FrameError", "evalue": error, "traceback": []}
    return message_to_parts(
        {
            "header": header,
            "parent_header": parent,
            "content": content,
            "channel": channel
            if isinstance(channel, str) and channel in CLIENT_CHANNELS
            else "shell",
        }
    )


# --- legacy JSON frames -----------------------------------------------------------------------


def parts_to_legacy(parts: Parts) -> tuple[bytes, bool]:
    """Frame a message in the legacy format: (payload, is_binary).

    The JSON is assembled from the kernel's own JSON bytes, so content is never re-encoded.
    """
    header = parts.parsed_header()
    body = b"".join(
        [
            b'{"header":',
            parts.header,
            b',"msg_id":',
            _dump(header.get("msg_id", "")),
            b',"msg_type":',
            _dump(header.get("msg_type", "")),
            b',"parent_header":',
            parts.parent_header,
            b',"metadata":',
            parts.metadata,
            b',"content":',
            parts.content,
            b',"channel":',
            _dump(parts.channel),
        ]
    )
    if not parts.buffers:
        return body + b',"buffers":[]}', False
    return _binary_legacy(body + b"}", parts.buffers), True


def _binary_legacy(message: bytes, buffers: tuple[bytes, ...]) -> bytes:
    nbufs = len(buffers) + 1
    offsets = [4 * (nbufs + 1)]
    for chunk in (message, *buffers[:-1]):
        offsets.append(offsets[-1] + len(chunk))
    return b"".join([struct.pack(f"!{nbufs + 1}I", nbufs, *offsets), message, *buffers])


def message_to_legacy(message: dict[str, Any]) -> tuple[bytes, bool]:
    """Frame a message dict (with optional ``buffers`` of bytes) the way a client sends it."""
    message = dict(message)
    buffers = tuple(bytes(b) for b in message.pop("buffers", None) or ())
    body = _dump(message)
    if not buffers:
        return body, False
    return _binary_legacy(body, buffers), True


def legacy_to_message(frame: bytes, is_binary: bool) -> dict[str, Any]:
    """Read a legacy frame into a message dict, its ``buffers`` a list of bytes."""
    buffers: list[bytes] = []
    if is_binary:
        if len(frame) < 4:
            raise FrameError("binary frame shorter than its buffer count")
        (nbufs,) = struct.unpack_from("!I", frame)
        if nbufs < 1 or 4 * (nbufs + 1) > len(frame):
            raise FrameError(f"binary frame has an impossible buffer count {nbufs}")
        offsets = [*struct.unpack_from(f"!{nbufs}I", frame, 4), len(frame)]
        if offsets[0] < 4 * (nbufs + 1) or any(b < a for a, b in itertools.pairwise(offsets)):
            raise FrameError("binary frame offsets are out of order or out of range")
        chunks = [frame[a:b] for a, b in itertools.pairwise(offsets)]
        frame, buffers = chunks[0], chunks[1:]
    message = _load_object(frame, "message")
    message["buffers"] = buffers
    return message


def legacy_to_parts(frame: bytes, is_binary: bool) -> Parts:
    """Read a client's legacy frame into parts for ZeroMQ; a missing channel means shell."""
    message = legacy_to_message(frame, is_binary)
    header = message.get("header")
    if not isinstance(header, dict):
        raise FrameError("message has no header object")
    check_header(header)
    values = [header]
    for key in _JSON_KEYS[1:]:
        value = message.get(key)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise FrameError(f"{key} must be a JSON object")
        values.append(value)
    channel = message.get("channel") or "shell"
    if not isinstance(channel, str):
        raise FrameError("channel must be a string")
    try:
        h, p, m, c = (_dump(v) for v in values)
    except (UnicodeEncodeError, RecursionError) as e:
        raise FrameError(f"message cannot be encoded as UTF-8 JSON: {e}") from None
    return Parts(channel, h, p, m, c, tuple(message["buffers"]), _header=header)


def parts_to_message(parts: Parts) -> dict[str, Any]:
    """Decode parts into the message dict a client works with."""
    header = parts.parsed_header()
    return {
        "header": header,
        "msg_id": header.get("msg_id", ""),
        "msg_type": header.get("msg_type", ""),
        "parent_header": _load_object(parts.parent_header, "parent_header"),
        "metadata": _load_object(parts.metadata, "metadata"),
        "content": _load_object(parts.content, "content"),
        "channel": parts.channel,
        "buffers": list(parts.buffers),
    }


def message_to_parts(message: dict[str, Any]) -> Parts:
    """Encode a message dict (header, parent_header, metadata, content, channel, buffers)."""
    header = message["header"]
    return Parts(
        message.get("channel") or "shell",
        _dump(header),
        _dump(message.get("parent_header") or {}),
        _dump(message.get("metadata") or {}),
        _dump(message.get("content") or {}),
        tuple(bytes(b) for b in message.get("buffers") or ()),
        _header=header,
    )
