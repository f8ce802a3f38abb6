"""jupyter_client message dicts <-> websocket frames, through the gateway's own ``wire`` module.

Outgoing messages are packed part by part with jupyter_client's JSON packer (which writes the
``datetime`` objects ``Session.msg()`` puts in headers), so the bytes are the ones a ZeroMQ
client would send. Incoming messages come back in the shape ``Session.deserialize()`` gives:
dates in headers parsed, buffers as memoryviews.
"""

from __future__ import annotations

from typing import Any

from jupyter_client.jsonutil import extract_dates
from jupyter_client.session import json_packer

from kgw.channels import wire

Frame = str | bytes


def message_to_parts(channel: str, message: dict[str, Any]) -> wire.Parts:
    """Pack a message from ``Session.msg()`` (plus optional ``buffers``) for ``channel``."""
    buffers = tuple(bytes(b) for b in message.get("buffers") or ())
    header = message["header"]
    return wire.Parts(
        channel,
        json_packer(header),
        json_packer(message.get("parent_header") or {}),
        json_packer(message.get("metadata") or {}),
        json_packer(message.get("content") or {}),
        buffers,
    )


def encode(parts: wire.Parts, v1: bool) -> tuple[bytes, bool]:
    """The frame for ``parts`` and whether it is a text frame.

    On the v1 subprotocol every frame is binary; in the JSON format a message without
    buffers is a text frame, one with buffers a binary frame.
    """
    if v1:
        return wire.parts_to_v1(parts), False
    payload, is_binary = wire.parts_to_legacy(parts)
    return payload, not is_binary


def decode(frame: Frame, v1: bool) -> tuple[str, dict[str, Any]]:
    """Read a frame from the gateway: (channel, message as jupyter_client returns it).

    Raises ``wire.FrameError`` for a frame that is not a Jupyter message.
    """
    if v1:
        if isinstance(frame, str):
            raise wire.FrameError("text frame on the v1 subprotocol")
        message = wire.parts_to_message(wire.v1_to_parts(frame))
    elif isinstance(frame, str):
        message = wire.legacy_to_message(frame.encode("utf-8"), False)
    else:
        message = wire.legacy_to_message(frame, True)
    return _as_jupyter_client_message(message)


def _as_jupyter_client_message(message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    header = message.get("header")
    if not isinstance(header, dict):
        raise wire.FrameError("message has no header object")
    wire.check_header(header)
    channel = message.get("channel")
    if not isinstance(channel, str):
        raise wire.FrameError("message has no channel")
    parent, metadata, content = (
        _object(message, key) for key in ("parent_header", "metadata", "content")
    )
    return channel, {
        "header": extract_dates(header),
        "msg_id": header["msg_id"],
        "msg_type": header["msg_type"],
        "parent_header": extract_dates(parent),
        "metadata": metadata,
        "content": content,
        "buffers": [memoryview(b) for b in message.get("buffers") or ()],
    }


def _object(message: dict[str, Any], key: str) -> dict[str, Any]:
    value = message.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise wire.FrameError(f"{key} must be a JSON object")
    return value
