"""A client that stops reading is closed once it is too far behind; the others go on."""

from __future__ import annotations

import re

import pytest
from websockets.exceptions import ConnectionClosed

from tests.integration.harness import Gateway, stream_text

LIMIT = 16 << 20


def test_stalled_client_is_closed_and_others_get_everything() -> None:
    with Gateway("--max-ws-buffer", str(LIMIT)) as gw:
        kernel_id = gw.start_kernel()
        # max_queue=1: the client library stops reading the socket after one message.
        stalled = gw.connect(kernel_id, max_queue=1)
        with gw.connect(kernel_id) as reader:
            # Flushed prints, paced so that a reading client keeps up: 192 messages of
            # 256 KiB, 48 MiB in all, more than the stalled client's limit and socket buffers.
            code = (
                "import time\n"
                "for i in range(192): print('x' * (1 << 18), end='', flush=True); time.sleep(0.005)"
            )
            _, iopub = reader.execute(code)
            assert len(stream_text(iopub)) == 192 << 18
        gw.wait_for_line(re.compile(r"closing a websocket \d+ bytes behind"), 60)
        with pytest.raises(ConnectionClosed):
            for _ in stalled.messages():
                pass
        assert gw.request("GET", f"api/kernels/{kernel_id}").json()["connections"] == 0
