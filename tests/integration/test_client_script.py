"""kgw.client from plain scripts and coroutines, against a real kgw and real kernels."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kgw.client import (
    AsyncGatewayKernelManager,
    GatewayKernelClient,
    GatewayKernelManager,
    KernelDied,
)
from tests.integration.harness import Gateway

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "gateway_script.py"
TIMEOUT = 60.0


@pytest.fixture
def km(gateway: Gateway) -> Iterator[GatewayKernelManager]:
    manager = GatewayKernelManager(url=gateway.url)
    manager.start_kernel()
    yield manager
    manager.shutdown_kernel()


@pytest.fixture
def kc(km: GatewayKernelManager) -> Iterator[GatewayKernelClient]:
    client = km.client()
    client.start_channels()
    client.wait_for_ready(timeout=TIMEOUT)
    yield client
    client.stop_channels()


def stream_text(messages: list[dict[str, Any]]) -> str:
    return "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")


def reply_to(kc: GatewayKernelClient, msg_id: str) -> dict[str, Any]:
    while True:
        reply: dict[str, Any] = kc.get_shell_msg(timeout=TIMEOUT)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply


def test_the_example_script_as_documented(tmp_path: Path) -> None:
    with Gateway("--list-kernels", token="example-token") as gw:
        env = {
            **os.environ,
            "JUPYTER_GATEWAY_URL": gw.url,
            "JUPYTER_GATEWAY_AUTH_TOKEN": "example-token",
            "PYTHONPATH": str(ROOT),
        }
        result = subprocess.run(
            [sys.executable, str(EXAMPLE)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == "0\n1\n2\nhello Ada\n"
        assert gw.request("GET", "api/kernels").json() == []


def test_output_arrives_while_the_cell_still_runs(kc: GatewayKernelClient, tmp_path: Path) -> None:
    release = tmp_path / "release"
    code = (
        "import os, time\n"
        "print('first', flush=True)\n"
        f"while not os.path.exists({str(release)!r}): time.sleep(0.01)\n"
        "print('second')"
    )
    seen: list[dict[str, Any]] = []

    def on_output(msg: dict[str, Any]) -> None:
        seen.append(msg)
        if msg["msg_type"] == "stream":
            release.touch()  # the cell cannot end before its first output got here

    reply = kc.execute_interactive(code, output_hook=on_output, timeout=TIMEOUT)
    assert reply["content"]["status"] == "ok"
    assert stream_text(seen) == "first\nsecond\n"


def test_input_requests_are_answered(kc: GatewayKernelClient) -> None:
    prompts: list[str] = []
    seen: list[dict[str, Any]] = []

    def answer(request: dict[str, Any]) -> None:
        prompts.append(request["content"]["prompt"])
        kc.input(f"answer {len(prompts)}")

    code = "a = input('first? ')\nb = input('second? ')\nprint(a, '/', b)"
    reply = kc.execute_interactive(
        code, stdin_hook=answer, output_hook=seen.append, timeout=TIMEOUT
    )
    assert reply["content"]["status"] == "ok"
    assert prompts == ["first? ", "second? "]
    assert stream_text(seen) == "answer 1 / answer 2\n"


def test_interrupt_stops_a_long_loop(km: GatewayKernelManager, kc: GatewayKernelClient) -> None:
    # stop_on_error=False: ipykernel would otherwise abort requests that reach it right after
    # the interrupted one (its stop_on_error window), and the check below is one.
    msg_id = kc.execute("print('looping', flush=True)\nwhile True: pass", stop_on_error=False)
    while (msg := kc.get_iopub_msg(timeout=TIMEOUT))["msg_type"] != "stream":
        pass
    assert msg["parent_header"]["msg_id"] == msg_id
    km.interrupt_kernel()
    reply = reply_to(kc, msg_id)
    assert (reply["content"]["status"], reply["content"]["ename"]) == ("error", "KeyboardInterrupt")
    assert kc.execute("1", reply=True, timeout=TIMEOUT)["content"]["status"] == "ok"


def test_a_restart_keeps_the_channels_open(
    gateway: Gateway, km: GatewayKernelManager, kc: GatewayKernelClient
) -> None:
    kc.execute("before_restart = 1", reply=True, timeout=TIMEOUT)
    opened = gateway.log.count("websocket opened")
    km.restart_kernel()
    reply = kc.execute("before_restart", reply=True, timeout=TIMEOUT)
    assert (reply["content"]["status"], reply["content"]["ename"]) == ("error", "NameError")
    assert gateway.log.count("websocket opened") == opened
    assert km.is_alive() and kc.is_alive()


def test_after_shutdown_waits_end_with_kernel_died(gateway: Gateway) -> None:
    km = GatewayKernelManager(url=gateway.url)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=TIMEOUT)
        km.shutdown_kernel()
        with pytest.raises(KernelDied):
            while True:
                kc.get_iopub_msg(timeout=TIMEOUT)  # what came before, then the error
        assert not kc.is_alive()
        assert not km.is_alive()
    finally:
        kc.stop_channels()


def test_the_async_flavour(gateway: Gateway) -> None:
    async def session() -> tuple[str, str]:
        km = AsyncGatewayKernelManager(url=gateway.url)
        await km.start_kernel()
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=TIMEOUT)
            seen: list[dict[str, Any]] = []
            await kc.execute_interactive(
                "print(input('name? '))",
                stdin_hook=lambda request: kc.input("Ada"),
                output_hook=seen.append,
                timeout=TIMEOUT,
            )
            msg_id = kc.execute("print('looping', flush=True)\nwhile True: pass")
            while (await kc.get_iopub_msg(timeout=TIMEOUT))["msg_type"] != "stream":
                pass
            await km.interrupt_kernel()
            while (reply := await kc.get_shell_msg(timeout=TIMEOUT))["parent_header"].get(
                "msg_id"
            ) != msg_id:
                pass
            return stream_text(seen), reply["content"]["ename"]
        finally:
            kc.stop_channels()
            await km.shutdown_kernel()

    assert asyncio.run(session()) == ("Ada\n", "KeyboardInterrupt")
