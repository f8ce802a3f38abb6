"""Client framing: jupyter_client messages in, frames the gateway (and jupyter_server) reads out."""

from __future__ import annotations

import datetime
import json

import pytest
from jupyter_client.session import Session
from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
)

from kgw.channels import wire
from kgw.client import framing

BUFFERS = [b"\x00\x01", memoryview(b"\xffbinary")]


def comm_msg() -> dict[str, object]:
    msg = Session().msg("comm_msg", {"comm_id": "c1", "data": {"x": 1}}, metadata={"m": "é"})
    msg["buffers"] = BUFFERS
    return msg


def test_headers_with_datetimes_are_packed_as_jupyter_client_packs_them() -> None:
    msg = Session().msg("execute_request", {"code": "1"})
    assert isinstance(msg["header"]["date"], datetime.datetime)
    parts = framing.message_to_parts("shell", msg)
    header = json.loads(parts.header)
    assert header["date"].endswith("Z")
    assert header["msg_id"] == msg["header"]["msg_id"]


def test_v1_frames_read_back_through_jupyter_server_and_the_gateway() -> None:
    msg = comm_msg()
    frame, text = framing.encode(framing.message_to_parts("shell", msg), v1=True)
    assert not text
    channel, parts = wire.v1_to_parts(frame).channel, wire.v1_to_parts(frame)
    assert channel == "shell"
    assert parts.buffers == (b"\x00\x01", b"\xffbinary")
    server_channel, server_parts = deserialize_msg_from_ws_v1(frame)
    assert server_channel == "shell"
    assert json.loads(server_parts[3]) == {"comm_id": "c1", "data": {"x": 1}}


def test_json_frames_are_text_without_buffers_and_binary_with_them() -> None:
    plain = Session().msg("kernel_info_request")
    frame, text = framing.encode(framing.message_to_parts("control", plain), v1=False)
    assert text
    decoded = json.loads(frame)
    assert (decoded["channel"], decoded["header"]["msg_type"]) == ("control", "kernel_info_request")

    frame, text = framing.encode(framing.message_to_parts("shell", comm_msg()), v1=False)
    assert not text
    server = deserialize_binary_message(frame)
    assert [bytes(b) for b in server["buffers"]] == [b"\x00\x01", b"\xffbinary"]
    assert server["metadata"] == {"m": "é"}


@pytest.mark.parametrize("v1", [True, False], ids=["v1", "json"])
def test_frames_from_the_gateway_decode_like_session_deserialize(v1: bool) -> None:
    session = Session(key=b"")
    msg = session.msg("display_data", {"data": {"text/plain": "x"}}, parent=comm_msg())
    parts = framing.message_to_parts("iopub", {**msg, "buffers": [b"buf"]})
    frame: str | bytes = wire.parts_to_v1(parts) if v1 else wire.parts_to_legacy(parts)[0]
    channel, decoded = framing.decode(frame, v1)
    assert channel == "iopub"
    expected = session.deserialize(
        [b"", parts.header, parts.parent_header, parts.metadata, parts.content, b"buf"]
    )
    for key in ("header", "msg_id", "msg_type", "parent_header", "metadata", "content"):
        assert decoded[key] == expected[key], key
    assert isinstance(decoded["buffers"][0], memoryview)
    assert bytes(decoded["buffers"][0]) == b"buf"


@pytest.mark.parametrize(
    ("frame", "v1"),
    [
        ("[]", False),
        ('{"header": {"msg_id": "1"}, "channel": "shell"}', False),
        ('{"header": {"msg_id": "1", "msg_type": "x"}}', False),
        ("text", True),
        (b"\x00" * 4, True),
    ],
)
def test_frames_that_are_not_messages_are_refused(frame: str | bytes, v1: bool) -> None:
    with pytest.raises(wire.FrameError):
        framing.decode(frame, v1)


def test_a_message_whose_content_is_not_an_object_is_refused() -> None:
    frame = '{"header": {"msg_id": "1", "msg_type": "x"}, "channel": "iopub", "content": []}'
    with pytest.raises(wire.FrameError, match="content must be a JSON object"):
        framing.decode(frame, False)
