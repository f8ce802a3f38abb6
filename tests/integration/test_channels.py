"""Jupyter messaging through kgw's websocket, in both wire formats, with real kernels."""

from __future__ import annotations

import base64
import json

import pytest

from tests.integration.harness import Gateway, stream_text

FORMATS = [pytest.param(False, id="json"), pytest.param(True, id="v1")]


@pytest.mark.parametrize("v1", FORMATS)
def test_execute_outputs(gateway: Gateway, kernel_id: str, v1: bool) -> None:
    with gateway.connect(kernel_id, v1=v1) as ks:
        reply, iopub = ks.execute("print('hello'); 6 * 7")
        assert reply["content"]["status"] == "ok"
        assert stream_text(iopub) == "hello\n"
        result = [m for m in iopub if m["msg_type"] == "execute_result"]
        assert result[0]["content"]["data"]["text/plain"] == "42"

        code = "from IPython.display import display, HTML; display(HTML('<b>x</b>'))"
        reply, iopub = ks.execute(code)
        shown = [m for m in iopub if m["msg_type"] == "display_data"]
        assert shown[0]["content"]["data"]["text/html"] == "<b>x</b>"

        reply, iopub = ks.execute("1/0")
        assert reply["content"]["status"] == "error"
        error = next(m for m in iopub if m["msg_type"] == "error")
        assert error["content"]["ename"] == "ZeroDivisionError"
        assert any("ZeroDivisionError" in line for line in error["content"]["traceback"])


@pytest.mark.parametrize("v1", FORMATS)
def test_kernel_info_complete_inspect(gateway: Gateway, kernel_id: str, v1: bool) -> None:
    with gateway.connect(kernel_id, v1=v1) as ks:
        info = ks.reply_to(ks.send("kernel_info_request", {}))
        assert info["msg_type"] == "kernel_info_reply"
        assert info["content"]["language_info"]["name"] == "python"

        ks.execute("alpha_beta_gamma = 1")
        complete = ks.reply_to(ks.send("complete_request", {"code": "alpha_be", "cursor_pos": 8}))
        assert "alpha_beta_gamma" in complete["content"]["matches"]

        inspect = ks.reply_to(
            ks.send("inspect_request", {"code": "len", "cursor_pos": 3, "detail_level": 0})
        )
        assert inspect["content"]["found"] is True
        assert "text/plain" in inspect["content"]["data"]


@pytest.mark.parametrize("v1", FORMATS)
def test_input_with_allow_stdin(gateway: Gateway, kernel_id: str, v1: bool) -> None:
    with gateway.connect(kernel_id, v1=v1) as ks:
        msg_id = ks.send_execute("name = input('who? '); print('hi', name)", allow_stdin=True)
        for message in ks.messages():
            if message["channel"] == "stdin":
                assert message["msg_type"] == "input_request"
                assert message["content"]["prompt"] == "who? "
                assert message["parent_header"]["msg_id"] == msg_id
                break
        ks.send("input_reply", {"value": "kgw"}, channel="stdin")
        reply, iopub = ks.collect(msg_id)
        assert reply["content"]["status"] == "ok"
        assert "hi kgw" in stream_text(iopub)


@pytest.mark.parametrize("v1", FORMATS)
def test_interrupt_via_control(gateway: Gateway, kernel_id: str, v1: bool) -> None:
    with gateway.connect(kernel_id, v1=v1) as ks:
        # stop_on_error=False: after the KeyboardInterrupt ipykernel would otherwise abort the
        # requests that reach it in the next moments: the next test's, on this shared kernel.
        code = "import time\nprint('sleeping', flush=True)\ntime.sleep(600)"
        msg_id = ks.send_execute(code, stop_on_error=False)
        for message in ks.messages():
            if message["msg_type"] == "stream" and message["parent_header"]["msg_id"] == msg_id:
                break
        interrupt = ks.reply_to(ks.send("interrupt_request", {}, channel="control"))
        assert interrupt["msg_type"] == "interrupt_reply"
        reply, _iopub = ks.collect(msg_id)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"


@pytest.mark.parametrize("v1", FORMATS)
def test_comm_messages_and_binary_buffers(gateway: Gateway, kernel_id: str, v1: bool) -> None:
    setup = """
from comm import create_comm
received = []
def opened(comm, msg):
    @comm.on_msg
    def echo(msg):
        received.append(msg['buffers'])
        echoed = [bytes(b)[::-1] for b in msg['buffers']]
        comm.send({'echo': msg['content']['data']}, buffers=echoed)
get_ipython().kernel.comm_manager.register_target('echo_target', opened)
"""
    with gateway.connect(kernel_id, v1=v1) as ks:
        reply, _ = ks.execute(setup)
        assert reply["content"]["status"] == "ok", reply["content"]
        ks.send("comm_open", {"comm_id": "c1", "target_name": "echo_target", "data": {}})
        payload = bytes(range(256)) * 4
        ks.send("comm_msg", {"comm_id": "c1", "data": {"n": 1}}, buffers=[payload, b"\x00\x01"])
        for message in ks.messages():
            if message["msg_type"] == "comm_msg" and message["channel"] == "iopub":
                break
        assert message["content"]["data"] == {"echo": {"n": 1}}
        assert [bytes(b) for b in message["buffers"]] == [payload[::-1], b"\x01\x00"]


@pytest.mark.parametrize("v1", FORMATS)
def test_display_data_buffers_reach_client(gateway: Gateway, kernel_id: str, v1: bool) -> None:
    code = """
from comm import create_comm
c = create_comm(target_name='sink', data={}, buffers=[b'\\xff' * 1000, b'abc'])
"""
    with gateway.connect(kernel_id, v1=v1) as ks:
        msg_id = ks.send_execute(code)
        for message in ks.messages():
            if message["msg_type"] == "comm_open" and message["parent_header"]["msg_id"] == msg_id:
                break
        assert [bytes(b) for b in message["buffers"]] == [b"\xff" * 1000, b"abc"]
        ks.collect(msg_id)


def test_many_clients_get_their_own_replies_and_all_iopub(gateway: Gateway, kernel_id: str) -> None:
    clients = [gateway.connect(kernel_id, v1=(i % 2 == 1)) for i in range(3)]
    try:
        model = gateway.request("GET", f"api/kernels/{kernel_id}").json()
        assert model["connections"] == 3
        first, second, third = clients
        msg_id = first.send_execute("print('shared')")
        _reply, iopub = first.collect(msg_id)
        assert stream_text(iopub) == "shared\n"
        for other in (second, third):
            # The others see the iopub output of first's request, but never its reply.
            seen = []
            for message in other.messages():
                if message["parent_header"].get("msg_id") == msg_id:
                    seen.append(message)
                    if message["msg_type"] == "status" and (
                        message["content"]["execution_state"] == "idle"
                    ):
                        break
            assert "stream" in [m["msg_type"] for m in seen]
            assert all(m["channel"] == "iopub" for m in seen)
        # stdin requests go only to the client that asked.
        msg_id = second.send_execute("x = input('?')", allow_stdin=True)
        for message in second.messages():
            if message["channel"] == "stdin":
                break
        second.send("input_reply", {"value": "1"}, channel="stdin")
        second.collect(msg_id)
        probe = third.send("kernel_info_request", {})
        for message in third.messages():
            assert message["channel"] != "stdin"
            if message["parent_header"].get("msg_id") == probe and message["channel"] == "shell":
                break
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize("v1", FORMATS)
def test_malformed_frames_get_an_error_and_the_connection_lives(
    gateway: Gateway, kernel_id: str, v1: bool
) -> None:
    with gateway.connect(kernel_id, v1=v1) as bad, gateway.connect(kernel_id) as bystander:
        garbage: list[str | bytes] = [
            "not json",
            json.dumps([1, 2]),
            json.dumps({"header": {"msg_type": "execute_request"}}),
            json.dumps({"header": {"msg_id": "a", "msg_type": "x"}, "channel": "iopub"}),
            b"\x00\x00\x00\x05short",
            b"\xff" * 3,
        ]
        for frame in garbage:
            bad.ws.send(frame)
            error = bad.recv()
            assert error["msg_type"] == "gateway_error"
            assert error["content"]["status"] == "error"
            assert error["content"]["evalue"]
        _, iopub = bad.execute("print('still here')")
        assert stream_text(iopub) == "still here\n"
        _, iopub = bystander.execute("print('me too')")
        assert stream_text(iopub) == "me too\n"


def test_unknown_kernel_upgrade_is_refused_with_404(gateway: Gateway) -> None:
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as refused:
        gateway.connect("no-such-kernel")
    assert refused.value.response.status_code == 404
    body = json.loads(refused.value.response.body)
    assert body["reason"] == "Not Found"


def test_twenty_thousand_flushed_prints_arrive_in_order(gateway: Gateway, kernel_id: str) -> None:
    with gateway.connect(kernel_id) as ks:
        reply, iopub = ks.execute("for i in range(20000): print(i, flush=True)")
        assert reply["content"]["status"] == "ok"
        lines = stream_text(iopub).splitlines()
        assert lines == [str(i) for i in range(20000)]


@pytest.mark.parametrize("v1", FORMATS)
def test_fifty_megabytes_of_output_arrive_whole(gateway: Gateway, kernel_id: str, v1: bool) -> None:
    code = "import sys\nfor i in range(50): sys.stdout.write(chr(65 + i % 26) * (1 << 20))\n"
    with gateway.connect(kernel_id, v1=v1) as ks:
        reply, iopub = ks.execute(code)
        assert reply["content"]["status"] == "ok"
        text = stream_text(iopub)
        assert len(text) == 50 << 20
        expected = "".join(chr(65 + i % 26) * (1 << 20) for i in range(50))
        assert text == expected


def test_binary_json_frame_from_client_reaches_kernel(gateway: Gateway, kernel_id: str) -> None:
    """A legacy binary frame (a message with buffers) from the client keeps its buffers."""
    with gateway.connect(kernel_id) as ks:
        _reply, _ = ks.execute(
            "import base64\n"
            "got = []\n"
            "def opened(comm, msg):\n"
            "    got.append(base64.b64encode(bytes(msg['buffers'][0])).decode())\n"
            "get_ipython().kernel.comm_manager.register_target('t2', opened)"
        )
        ks.send(
            "comm_open", {"comm_id": "c2", "target_name": "t2", "data": {}}, buffers=[b"\x00\xfe"]
        )
        _, iopub = ks.execute("print(got)")
        assert base64.b64encode(b"\x00\xfe").decode() in stream_text(iopub)


def _request(header: dict[str, object], content: object, v1: bool) -> str | bytes:
    """An execute_request as a client would frame it, with the given header and content."""
    if v1:
        from kgw.channels import wire

        return wire.parts_to_v1(
            wire.Parts(
                "shell",
                json.dumps(header).encode(),
                b"{}",
                b"{}",
                json.dumps(content).encode(),
            )
        )
    return json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content})


GOOD_HEADER = {
    "msg_id": "shape-1",
    "msg_type": "execute_request",
    "session": "s",
    "username": "u",
    "version": "5.3",
}


@pytest.mark.parametrize("v1", FORMATS)
def test_a_message_without_the_fields_a_kernel_needs_never_reaches_it(
    gateway: Gateway, kernel_id: str, v1: bool
) -> None:
    content = {"code": "print('should not run')", "silent": False}
    cases: list[tuple[dict[str, object], object, str]] = [
        *(
            ({k: v for k, v in GOOD_HEADER.items() if k != missing}, content, f"header.{missing}")
            for missing in ("version", "session", "username", "msg_type")
        ),
        ({**GOOD_HEADER, "session": 7}, content, "header.session must be a string"),
        (GOOD_HEADER, ["print('x')"], "content must be a JSON object"),
        (GOOD_HEADER, "print('x')", "content must be a JSON object"),
    ]
    with gateway.connect(kernel_id, v1=v1) as ks:
        for header, body, named in cases:
            ks.ws.send(_request(header, body, v1))
            error = ks.recv()
            assert error["msg_type"] == "gateway_error", error
            assert named in error["content"]["evalue"]
        # The kernel saw none of them: it answers at once, and ran none of their code.
        _, iopub = ks.execute("print('fine')")
        assert stream_text(iopub) == "fine\n"
    assert "should not run" not in "".join(line for line in gateway.lines if "stdout" in line)
    assert "AttributeError" not in gateway.log


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        ({"Upgrade": "websocket", "Connection": "keep-alive"}, "Connection headers do not include"),
        (
            {
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version": "7",
            },
            "version 7 not supported",
        ),
    ],
    ids=["no Connection: Upgrade", "wrong version"],
)
def test_a_malformed_upgrade_is_answered_with_a_json_error(
    gateway: Gateway, kernel_id: str, headers: dict[str, str], said: str
) -> None:
    response = gateway.request("GET", f"api/kernels/{kernel_id}/channels", headers=headers)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["reason"] == "Bad Request"
    assert said in body["message"]
