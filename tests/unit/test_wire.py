"""Framing of Jupyter messages, checked against jupyter_server and jupyter_client.

jupyter_server (2.21) is the compatibility reference: frames kgw writes must read back the
same through jupyter_server's decoders, and frames jupyter_server writes must read back the
same through kgw's. Signatures must be the ones jupyter_client's Session makes.
"""

from __future__ import annotations

import functools
import json
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jupyter_client.jsonutil import extract_dates
from jupyter_client.session import Session
from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)

from kgw.channels import wire

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies -------------------------------------------------------------------------------

json_scalars: st.SearchStrategy[Any] = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
json_objects: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.text(max_size=8), json_values, max_size=4
)
buffer_lists: st.SearchStrategy[list[bytes]] = st.one_of(
    st.just([]),
    st.lists(st.binary(max_size=48), min_size=1, max_size=40),
)


@st.composite
def headers(draw: st.DrawFn) -> dict[str, Any]:
    header = draw(json_objects)
    header["msg_id"] = draw(st.text(max_size=24))
    header["msg_type"] = draw(st.text(max_size=24))
    return header


@st.composite
def client_messages(draw: st.DrawFn) -> dict[str, Any]:
    """A message dict as a client (or jupyter_server's GatewayClient) sends it."""
    message: dict[str, Any] = {
        "header": draw(headers()),
        "parent_header": draw(json_objects),
        "metadata": draw(json_objects),
        "content": draw(json_objects),
        "buffers": draw(buffer_lists),
    }
    channel = draw(st.sampled_from([None, *sorted(wire.CLIENT_CHANNELS)]))
    if channel is not None:
        message["channel"] = channel
    return message


def _encode(value: Any, style: int) -> bytes:
    """JSON as different kernels write it: compact, spaced, ASCII-escaped or indented."""
    if style == 0:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if style == 1:
        return json.dumps(value).encode("ascii")
    return json.dumps(value, ensure_ascii=False, indent=2).encode("utf-8")


@st.composite
def kernel_messages(draw: st.DrawFn) -> tuple[wire.Parts, dict[str, Any]]:
    """Parts as a kernel sends them, with the message dict a client should read from them."""
    header = draw(headers())
    parent, metadata, content = draw(json_objects), draw(json_objects), draw(json_objects)
    channel = draw(st.sampled_from(sorted(wire.ALL_CHANNELS)))
    buffers = draw(buffer_lists)
    style = draw(st.integers(0, 2))
    parts = wire.Parts(
        channel,
        _encode(header, style),
        _encode(parent, style),
        _encode(metadata, style),
        _encode(content, style),
        tuple(buffers),
    )
    expected = {
        "header": header,
        "msg_id": header["msg_id"],
        "msg_type": header["msg_type"],
        "parent_header": parent,
        "metadata": metadata,
        "content": content,
        "channel": channel,
        "buffers": buffers,
    }
    return parts, expected


raw_parts: st.SearchStrategy[wire.Parts] = st.builds(
    wire.Parts,
    st.text(max_size=12),
    st.binary(max_size=40),
    st.binary(max_size=40),
    st.binary(max_size=40),
    st.binary(max_size=40),
    st.lists(st.binary(max_size=40), max_size=30).map(tuple),
)


def _as_jupyter_server_reads(message: dict[str, Any]) -> dict[str, Any]:
    """jupyter_server turns ISO 8601 strings in the headers into datetimes."""
    return {
        **message,
        "header": extract_dates(message["header"]),
        "parent_header": extract_dates(message["parent_header"]),
    }


def _sample_message(**extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "header": {"msg_id": "m1", "msg_type": "execute_request", "session": "s"},
        "parent_header": {},
        "metadata": {},
        "content": {"code": "print('héllo ✓ 日本 🎉')", "silent": False},
        "channel": "shell",
    }
    message.update(extra)
    return message


# --- client -> gateway: legacy JSON frames ----------------------------------------------------


@FAST
@given(message=client_messages())
def test_client_legacy_frame_reaches_the_kernel_unchanged(message: dict[str, Any]) -> None:
    frame, is_binary = wire.message_to_legacy(message)
    assert is_binary == bool(message["buffers"])

    parts = wire.legacy_to_parts(frame, is_binary)

    assert parts.channel == message.get("channel", "shell")
    assert json.loads(parts.header) == message["header"]
    assert json.loads(parts.parent_header) == message["parent_header"]
    assert json.loads(parts.metadata) == message["metadata"]
    assert json.loads(parts.content) == message["content"]
    assert list(parts.buffers) == message["buffers"]
    assert parts.msg_id == message["header"]["msg_id"]
    assert parts.msg_type == message["header"]["msg_type"]


@FAST
@given(message=client_messages())
def test_client_legacy_frame_reads_the_same_in_jupyter_server(message: dict[str, Any]) -> None:
    frame, is_binary = wire.message_to_legacy(message)

    if is_binary:
        decoded = deserialize_binary_message(frame)
        assert decoded == _as_jupyter_server_reads(message)
    else:
        decoded = json.loads(frame.decode("utf-8"))
        expected = dict(message)
        del expected["buffers"]
        assert decoded == expected


@FAST
@given(message=client_messages())
def test_jupyter_server_legacy_frame_reads_the_same_in_kgw(message: dict[str, Any]) -> None:
    if message["buffers"]:
        frame, is_binary = serialize_binary_message(message), True
    else:
        frame, is_binary = json.dumps(message).encode("utf-8"), False

    assert wire.legacy_to_message(frame, is_binary) == message
    parts = wire.legacy_to_parts(frame, is_binary)
    assert json.loads(parts.content) == message["content"]
    assert list(parts.buffers) == message["buffers"]


def test_client_message_without_channel_goes_to_shell() -> None:
    message = _sample_message()
    del message["channel"]
    frame, is_binary = wire.message_to_legacy(message)

    assert wire.legacy_to_parts(frame, is_binary).channel == "shell"


def test_client_message_missing_optional_parts_gets_empty_objects() -> None:
    frame = json.dumps({"header": {"msg_id": "a", "msg_type": "kernel_info_request"}}).encode()

    parts = wire.legacy_to_parts(frame, False)

    assert parts.channel == "shell"
    assert json.loads(parts.parent_header) == {}
    assert json.loads(parts.metadata) == {}
    assert json.loads(parts.content) == {}
    assert parts.buffers == ()


def test_non_ascii_text_survives_a_legacy_round_trip() -> None:
    message = _sample_message(buffers=[b"\x00\xff", "ünïcödé".encode()])
    frame, is_binary = wire.message_to_legacy(message)

    parts = wire.legacy_to_parts(frame, is_binary)

    assert json.loads(parts.content)["code"] == "print('héllo ✓ 日本 🎉')"
    assert parts.buffers == (b"\x00\xff", "ünïcödé".encode())


def test_empty_buffers_are_kept() -> None:
    message = _sample_message(buffers=[b"", b"", b"x", b""])
    frame, is_binary = wire.message_to_legacy(message)

    assert is_binary
    assert wire.legacy_to_parts(frame, is_binary).buffers == (b"", b"", b"x", b"")
    assert deserialize_binary_message(frame)["buffers"] == [b"", b"", b"x", b""]


def test_many_buffers_are_kept_in_order() -> None:
    buffers = [i.to_bytes(2, "big") * (i % 7) for i in range(1000)]
    frame, is_binary = wire.message_to_legacy(_sample_message(buffers=buffers))

    assert list(wire.legacy_to_parts(frame, is_binary).buffers) == buffers
    assert deserialize_binary_message(frame)["buffers"] == buffers


def test_buffers_may_be_memoryviews_or_bytearrays() -> None:
    message = _sample_message(buffers=[memoryview(b"abc"), bytearray(b"de")])
    frame, is_binary = wire.message_to_legacy(message)

    assert wire.legacy_to_parts(frame, is_binary).buffers == (b"abc", b"de")


def test_message_to_legacy_leaves_the_callers_message_alone() -> None:
    message = _sample_message(buffers=[b"x"])
    wire.message_to_legacy(message)

    assert message["buffers"] == [b"x"]


# --- kernel -> client: legacy JSON frames -----------------------------------------------------


@FAST
@given(sample=kernel_messages())
def test_kernel_message_reaches_a_legacy_client_unchanged(
    sample: tuple[wire.Parts, dict[str, Any]],
) -> None:
    parts, expected = sample
    frame, is_binary = wire.parts_to_legacy(parts)

    assert is_binary == bool(parts.buffers)
    assert wire.legacy_to_message(frame, is_binary) == expected


@FAST
@given(sample=kernel_messages())
def test_kernel_legacy_frame_reads_the_same_in_jupyter_server(
    sample: tuple[wire.Parts, dict[str, Any]],
) -> None:
    parts, expected = sample
    frame, is_binary = wire.parts_to_legacy(parts)

    if is_binary:
        assert deserialize_binary_message(frame) == _as_jupyter_server_reads(expected)
    else:
        assert json.loads(frame.decode("utf-8")) == expected


@FAST
@given(sample=kernel_messages())
def test_jupyter_server_kernel_frame_reads_the_same_in_kgw(
    sample: tuple[wire.Parts, dict[str, Any]],
) -> None:
    # What jupyter_server's _reserialize_reply writes for the same kernel message.
    _, message = sample
    if message["buffers"]:
        frame, is_binary = serialize_binary_message(message), True
    else:
        frame, is_binary = json.dumps(message).encode("utf-8"), False

    assert wire.legacy_to_message(frame, is_binary) == message


def test_legacy_message_has_the_keys_jupyter_server_sends() -> None:
    parts = wire.message_to_parts(_sample_message(channel="iopub"))

    frame, is_binary = wire.parts_to_legacy(parts)

    assert not is_binary
    assert set(json.loads(frame)) == {
        "header",
        "msg_id",
        "msg_type",
        "parent_header",
        "metadata",
        "content",
        "channel",
        "buffers",
    }


def test_parts_to_message_decodes_what_message_to_parts_encodes() -> None:
    message = _sample_message(buffers=[b"b1"], channel="control")
    message["msg_id"] = "m1"
    message["msg_type"] = "execute_request"

    assert wire.parts_to_message(wire.message_to_parts(message)) == message


# --- v1.kernel.websocket.jupyter.org ----------------------------------------------------------


@FAST
@given(parts=raw_parts)
def test_v1_frame_round_trips(parts: wire.Parts) -> None:
    assert wire.v1_to_parts(wire.parts_to_v1(parts)) == parts


@FAST
@given(parts=raw_parts)
def test_v1_frame_is_byte_identical_to_jupyter_servers(parts: wire.Parts) -> None:
    msg_list = [*parts.json_parts, *parts.buffers]

    assert wire.parts_to_v1(parts) == serialize_msg_to_ws_v1(msg_list, parts.channel)


@FAST
@given(parts=raw_parts)
def test_v1_frame_reads_the_same_in_jupyter_server(parts: wire.Parts) -> None:
    channel, msg_list = deserialize_msg_from_ws_v1(wire.parts_to_v1(parts))

    assert channel == parts.channel
    assert msg_list == [*parts.json_parts, *parts.buffers]


@FAST
@given(sample=kernel_messages())
def test_jupyter_server_v1_frame_reads_the_same_in_kgw(
    sample: tuple[wire.Parts, dict[str, Any]],
) -> None:
    parts, _ = sample
    frame = serialize_msg_to_ws_v1([*parts.json_parts, *parts.buffers], parts.channel)

    assert wire.v1_to_parts(frame) == parts


def test_v1_keeps_non_ascii_channel_and_empty_buffers() -> None:
    parts = wire.Parts("ünï", b"{}", b"{}", b"{}", b'{"t":"\xc3\xa9"}', (b"", b"", b"z"))

    assert wire.v1_to_parts(wire.parts_to_v1(parts)) == parts


def test_v1_keeps_many_buffers() -> None:
    buffers = tuple(bytes([i % 256]) * (i % 5) for i in range(1000))
    parts = wire.Parts("iopub", b"{}", b"{}", b"{}", b"{}", buffers)

    assert wire.v1_to_parts(wire.parts_to_v1(parts)).buffers == buffers


def test_v1_forwards_the_json_parts_byte_for_byte() -> None:
    header = b'{ "msg_id" : "a",  "msg_type": "execute_request" }'
    parts = wire.Parts("shell", header, b"{}", b"{}", b'{"code": "1"}')

    decoded = wire.v1_to_parts(wire.parts_to_v1(parts))

    assert decoded.header == header
    assert decoded.msg_type == "execute_request"


# --- signing ----------------------------------------------------------------------------------

keys = st.binary(min_size=1, max_size=64)
json_part_tuples = st.tuples(*(st.binary(max_size=64) for _ in range(4)))


@FAST
@given(key=keys, json_parts=json_part_tuples)
def test_signature_is_the_one_jupyter_client_makes(
    key: bytes, json_parts: tuple[bytes, bytes, bytes, bytes]
) -> None:
    session = Session(key=key, signature_scheme="hmac-sha256")

    assert wire.Signer(key).sign(json_parts) == session.sign(list(json_parts))


@pytest.mark.parametrize("scheme", ["hmac-sha256", "hmac-sha512", "hmac-sha1"])
def test_every_scheme_signs_like_jupyter_client(scheme: str) -> None:
    json_parts = (b'{"msg_id":"1"}', b"{}", b"{}", b'{"code":"x"}')
    session = Session(key=b"secret", signature_scheme=scheme)

    assert wire.Signer(b"secret", scheme).sign(json_parts) == session.sign(list(json_parts))


@pytest.mark.parametrize("scheme", ["sha256", "hmac-nonsense", "rsa-sha256", ""])
def test_unsupported_scheme_is_refused(scheme: str) -> None:
    with pytest.raises(ValueError, match="unsupported signature scheme"):
        wire.Signer(b"key", scheme)


def test_empty_key_means_no_signature() -> None:
    signer = wire.Signer(b"")
    json_parts = (b"{}", b"{}", b"{}", b"{}")

    assert signer.sign(json_parts) == b"" == Session(key=b"").sign(list(json_parts))
    assert signer.verify(b"", json_parts)
    frames = [wire.DELIMITER, b"anything", *json_parts]
    assert wire.zmq_to_parts("shell", frames, signer) == wire.Parts("shell", *json_parts)


@FAST
@given(
    key=st.binary(max_size=32),
    parts=raw_parts,
    idents=st.lists(st.binary(min_size=1, max_size=8), max_size=3).map(tuple),
)
def test_zmq_round_trip(key: bytes, parts: wire.Parts, idents: tuple[bytes, ...]) -> None:
    signer = wire.Signer(key)
    idents = tuple(i for i in idents if i != wire.DELIMITER)

    frames = wire.parts_to_zmq(parts, signer, idents)

    assert frames[: len(idents)] == list(idents)
    assert wire.zmq_to_parts(parts.channel, frames, signer) == parts


def test_jupyter_client_reads_what_kgw_sends_to_a_kernel() -> None:
    session = Session(key=b"secret")
    parts = wire.message_to_parts(_sample_message(buffers=[b"buf"]))

    frames = wire.parts_to_zmq(parts, wire.Signer(b"secret"), (b"ident",))
    idents, msg_list = session.feed_identities(frames)
    message = session.deserialize(msg_list)

    assert idents == [b"ident"]
    assert message["header"]["msg_id"] == "m1"
    assert message["content"]["code"] == _sample_message()["content"]["code"]
    assert message["buffers"] == [b"buf"]


def test_kgw_reads_what_jupyter_client_sends() -> None:
    session = Session(key=b"secret")
    msg = session.msg("status", {"execution_state": "idle"})

    frames = session.serialize(msg, ident=[b"kernel"])
    parts = wire.zmq_to_parts("iopub", frames, wire.Signer(b"secret"))

    assert parts.msg_id == msg["header"]["msg_id"]
    assert parts.msg_type == "status"
    assert json.loads(parts.content) == {"execution_state": "idle"}


@pytest.mark.parametrize("index", [1, 2, 3, 4, 5])
def test_tampered_part_fails_verification(index: int) -> None:
    signer = wire.Signer(b"secret")
    parts = wire.message_to_parts(_sample_message())
    frames = wire.parts_to_zmq(parts, signer)
    frames[index] = frames[index] + b" "

    with pytest.raises(wire.FrameError, match="signature"):
        wire.zmq_to_parts("shell", frames, signer)


def test_wrong_key_fails_verification() -> None:
    parts = wire.message_to_parts(_sample_message())
    frames = wire.parts_to_zmq(parts, wire.Signer(b"one key"))

    with pytest.raises(wire.FrameError, match="signature"):
        wire.zmq_to_parts("shell", frames, wire.Signer(b"another key"))


def test_zmq_message_without_delimiter_is_refused() -> None:
    with pytest.raises(wire.FrameError, match="delimiter"):
        wire.zmq_to_parts("shell", [b"sig", b"{}", b"{}", b"{}", b"{}"], wire.Signer(b""))


def test_zmq_message_with_too_few_parts_is_refused() -> None:
    with pytest.raises(wire.FrameError, match="needs 5"):
        wire.zmq_to_parts("shell", [wire.DELIMITER, b"", b"{}", b"{}", b"{}"], wire.Signer(b""))


# --- malformed frames -------------------------------------------------------------------------


def _legacy_binary(nbufs: int, offsets: list[int], body: bytes) -> bytes:
    return struct.pack(f"!{1 + len(offsets)}I", nbufs, *offsets) + body


def _v1(offsets: list[int], body: bytes, count: int | None = None) -> bytes:
    n = len(offsets) if count is None else count
    return struct.pack(f"<{1 + len(offsets)}Q", n, *offsets) + body


_HEADER = {"msg_id": "a", "msg_type": "execute_request"}


def _text(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")


MALFORMED_LEGACY: list[tuple[str, bytes, bool]] = [
    ("empty binary frame", b"", True),
    ("truncated buffer count", b"\x00\x00\x01", True),
    ("zero buffers", _legacy_binary(0, [], b"{}"), True),
    ("buffer count beyond the frame", _legacy_binary(0xFFFFFFFF, [], b"{}"), True),
    ("more offsets than the frame holds", _legacy_binary(3, [16], b"{}"), True),
    ("first offset inside the offset table", _legacy_binary(2, [4, 12], b"{}xx"), True),
    ("offsets going backwards", _legacy_binary(2, [14, 12], b"{}xxxx"), True),
    ("offset beyond the frame", _legacy_binary(2, [12, 999], b"{}xx"), True),
    ("binary JSON part not JSON", _legacy_binary(1, [8], b"{nope"), True),
    ("binary JSON part not an object", _legacy_binary(1, [8], b"[]"), True),
    ("empty text frame", b"", False),
    ("text not JSON", b"hello", False),
    ("text not UTF-8", b'{"header": "\xff\xfe"}', False),
    ("JSON array", b"[1, 2]", False),
    ("JSON string", b'"header"', False),
    ("JSON number", b"3", False),
    ("JSON null", b"null", False),
    ("no header", _text({"content": {}}), False),
    ("header not an object", _text({"header": ["msg_id"]}), False),
    ("header without msg_id", _text({"header": {"msg_type": "x"}}), False),
    ("header without msg_type", _text({"header": {"msg_id": "x"}}), False),
    ("msg_id not a string", _text({"header": {"msg_id": 1, "msg_type": "x"}}), False),
    ("msg_type not a string", _text({"header": {"msg_id": "x", "msg_type": None}}), False),
    ("content a list", _text({"header": _HEADER, "content": []}), False),
    ("content a string", _text({"header": _HEADER, "content": "code"}), False),
    ("metadata a number", _text({"header": _HEADER, "metadata": 5}), False),
    ("parent_header a list", _text({"header": _HEADER, "parent_header": [1]}), False),
    ("channel not a string", _text({"header": _HEADER, "channel": ["shell"]}), False),
]


@pytest.mark.parametrize(
    ("frame", "is_binary"),
    [pytest.param(f, b, id=name) for name, f, b in MALFORMED_LEGACY],
)
def test_malformed_legacy_frame_raises_frame_error(frame: bytes, is_binary: bool) -> None:
    with pytest.raises(wire.FrameError):
        wire.legacy_to_parts(frame, is_binary)


_V1_BODY = b"shell{}{}{}{}"
_V1_GOOD = [56, 61, 63, 65, 67, 69]

MALFORMED_V1: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("truncated offset count", b"\x06\x00\x00"),
    ("too few offsets", _v1([48, 53, 55, 57, 59], b"shell{}{}{}")),
    ("offset count beyond the frame", _v1([], b"", count=2**64 - 1)),
    ("offset count larger than the table", _v1(_V1_GOOD, _V1_BODY, count=7)),
    ("first offset wrong", _v1([64, 61, 63, 65, 67, 69], _V1_BODY)),
    ("last offset short of the end", _v1([56, 61, 63, 65, 67, 68], _V1_BODY)),
    ("last offset beyond the end", _v1([56, 61, 63, 65, 67, 99], _V1_BODY)),
    ("offsets going backwards", _v1([56, 61, 59, 65, 67, 69], _V1_BODY)),
    ("channel not UTF-8", _v1(_V1_GOOD, b"\xff\xfe\xfd\xfc\xfb{}{}{}{}")),
]


def test_v1_fixture_is_well_formed() -> None:
    assert wire.v1_to_parts(_v1(_V1_GOOD, _V1_BODY)) == wire.Parts(
        "shell", b"{}", b"{}", b"{}", b"{}"
    )


@pytest.mark.parametrize("frame", [pytest.param(f, id=name) for name, f in MALFORMED_V1])
def test_malformed_v1_frame_raises_frame_error(frame: bytes) -> None:
    with pytest.raises(wire.FrameError):
        wire.v1_to_parts(frame)


@pytest.mark.parametrize("header", [b"not json", b"[]", b"\xff"])
def test_v1_header_that_is_no_json_object_raises_frame_error_when_read(header: bytes) -> None:
    parts = wire.v1_to_parts(wire.parts_to_v1(wire.Parts("shell", header, b"{}", b"{}", b"{}")))

    with pytest.raises(wire.FrameError, match="header"):
        parts.parsed_header()


def test_kernel_parent_header_that_is_no_json_raises_frame_error() -> None:
    parts = wire.Parts("shell", _text(_HEADER), b"oops", b"{}", b"{}")

    with pytest.raises(wire.FrameError, match="parent_header"):
        parts.parent_msg_id()


def _only_frame_errors_from_legacy(frame: bytes, is_binary: bool) -> None:
    try:
        parts = wire.legacy_to_parts(frame, is_binary)
    except wire.FrameError:
        return
    # What the gateway accepts is a well-formed message.
    assert isinstance(parts.msg_id, str)
    assert isinstance(parts.msg_type, str)
    for part in parts.json_parts:
        assert isinstance(json.loads(part), dict)


def _only_frame_errors_from_v1(frame: bytes) -> None:
    try:
        parts = wire.v1_to_parts(frame)
        parts.parsed_header()
    except wire.FrameError:
        return
    assert wire.parts_to_v1(parts) == frame


@settings(max_examples=300, deadline=None)
@given(frame=st.binary(max_size=256), is_binary=st.booleans())
def test_arbitrary_bytes_as_legacy_frame_raise_only_frame_error(
    frame: bytes, is_binary: bool
) -> None:
    _only_frame_errors_from_legacy(frame, is_binary)


@settings(max_examples=300, deadline=None)
@given(frame=st.binary(max_size=256))
def test_arbitrary_bytes_as_v1_frame_raise_only_frame_error(frame: bytes) -> None:
    _only_frame_errors_from_v1(frame)


@FAST
@given(
    nbufs=st.integers(0, 8) | st.integers(0, 2**32 - 1),
    offsets=st.lists(st.integers(0, 300) | st.integers(0, 2**32 - 1), max_size=9),
    body=st.binary(max_size=200),
)
def test_legacy_frames_with_arbitrary_offsets_raise_only_frame_error(
    nbufs: int, offsets: list[int], body: bytes
) -> None:
    _only_frame_errors_from_legacy(_legacy_binary(nbufs, offsets, body), True)


@FAST
@given(
    count=st.integers(0, 12) | st.integers(0, 2**64 - 1),
    offsets=st.lists(st.integers(0, 400) | st.integers(0, 2**64 - 1), max_size=12),
    body=st.binary(max_size=200),
)
def test_v1_frames_with_arbitrary_offsets_raise_only_frame_error(
    count: int, offsets: list[int], body: bytes
) -> None:
    _only_frame_errors_from_v1(_v1(offsets, body, count=count))


@FAST
@given(data=st.data(), message=client_messages())
def test_damaged_frames_raise_only_frame_error(
    data: st.DataObject, message: dict[str, Any]
) -> None:
    frame, is_binary = wire.message_to_legacy(message)
    v1_frame = wire.parts_to_v1(wire.legacy_to_parts(frame, is_binary))
    readers: list[tuple[bytes, Callable[[bytes], None]]] = [
        (frame, functools.partial(_only_frame_errors_from_legacy, is_binary=is_binary)),
        (v1_frame, _only_frame_errors_from_v1),
    ]
    for good, read in readers:
        damaged = bytearray(good)
        for _ in range(data.draw(st.integers(1, 4))):
            if not damaged:
                break
            position = data.draw(st.integers(0, len(damaged) - 1))
            edit = data.draw(st.sampled_from(["flip", "cut", "drop"]))
            if edit == "flip":
                damaged[position] ^= data.draw(st.integers(1, 255))
            elif edit == "cut":
                del damaged[position:]
            else:
                del damaged[position]
        read(bytes(damaged))


@FAST
@given(value=json_values)
def test_arbitrary_json_raises_only_frame_error(value: Any) -> None:
    _only_frame_errors_from_legacy(json.dumps(value).encode("utf-8"), False)


@FAST
@given(
    header=json_values,
    parent=json_values,
    metadata=json_values,
    content=json_values,
    channel=json_values,
)
def test_arbitrary_message_fields_raise_only_frame_error(
    header: Any, parent: Any, metadata: Any, content: Any, channel: Any
) -> None:
    message = {
        "header": header,
        "parent_header": parent,
        "metadata": metadata,
        "content": content,
        "channel": channel,
    }
    _only_frame_errors_from_legacy(json.dumps(message).encode("utf-8"), False)


def test_lone_surrogate_escape_raises_frame_error() -> None:
    frame = b'{"header": {"msg_id": "a", "msg_type": "x"}, "content": {"code": "\\ud800"}}'

    with pytest.raises(wire.FrameError):
        wire.legacy_to_parts(frame, False)


def test_deeply_nested_json_raises_frame_error() -> None:
    frame = b'{"header": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    with pytest.raises(wire.FrameError):
        wire.legacy_to_parts(frame, False)


_CLIENT_HEADER = {
    "msg_id": "a",
    "msg_type": "execute_request",
    "session": "s",
    "username": "",
    "version": "5.3",
}


@pytest.mark.parametrize("missing", wire.CLIENT_HEADER_FIELDS)
def test_a_client_message_needs_every_header_field_a_kernel_reads(missing: str) -> None:
    header = {k: v for k, v in _CLIENT_HEADER.items() if k != missing}
    parts = wire.Parts("shell", json.dumps(header).encode(), b"{}", b"{}", b"{}")
    with pytest.raises(wire.FrameError, match=rf"header\.{missing} is missing"):
        wire.check_client_message(parts)


@pytest.mark.parametrize(
    ("parent", "metadata", "content", "named"),
    [
        (b"{}", b"{}", b"[]", "content must be a JSON object"),
        (b"{}", b"{}", b"", "content is not valid JSON"),
        (b"{}", b"null", b"{}", "metadata must be a JSON object"),
        (b"1", b"{}", b"{}", "parent_header must be a JSON object"),
    ],
)
def test_a_client_message_parts_must_be_objects(
    parent: bytes, metadata: bytes, content: bytes, named: str
) -> None:
    header = json.dumps(_CLIENT_HEADER).encode()
    parts = wire.Parts("shell", header, parent, metadata, content)
    with pytest.raises(wire.FrameError, match=named):
        wire.check_client_message(parts)
    wire.check_client_message(parts, objects=False)  # already decoded by the legacy reader


def test_a_well_formed_client_message_passes() -> None:
    header = json.dumps(_CLIENT_HEADER).encode()
    wire.check_client_message(wire.Parts("shell", header, b"{}", b"{}", b'{"code": "1"}'))
