"""Start a kernel on a kgw gateway, run some code, print its output, shut the kernel down.

    pip install requests websockets
    JUPYTER_GATEWAY_URL=http://127.0.0.1:8888 python python_client.py 'print("Hello world!")'

Set JUPYTER_GATEWAY_AUTH_TOKEN when the gateway has a token (KG_AUTH_TOKEN). These are
the variables jupyter_server's --gateway-url client reads too.
"""

import json
import os
import sys
import uuid
from datetime import UTC, datetime
from urllib.parse import quote

import requests
from websockets.sync.client import ClientConnection, connect

GATEWAY_URL = os.environ.get("JUPYTER_GATEWAY_URL", "http://127.0.0.1:8888").rstrip("/")
TOKEN = os.environ.get("JUPYTER_GATEWAY_AUTH_TOKEN", "")
HEADERS = {"Authorization": f"token {TOKEN}"} if TOKEN else {}
SESSION = uuid.uuid4().hex


def execute_request(code: str) -> dict:
    """An execute_request in the JSON websocket format (one JSON text frame)."""
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "session": SESSION,
            "username": "",
            "date": datetime.now(UTC).isoformat(),
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "channel": "shell",
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "buffers": [],
    }


def execute(ws: ClientConnection, code: str) -> dict:
    """Run ``code``, print its output, and return the execute_reply content.

    The request is done when both its execute_reply (shell) and the kernel's
    "idle" status for it (iopub) have arrived; they may come in either order.
    """
    request = execute_request(code)
    ws.send(json.dumps(request))
    reply = None
    idle = False
    while reply is None or not idle:
        frame = ws.recv(timeout=60)
        if isinstance(frame, bytes):
            continue  # a message with binary buffers (widgets, for example); not used here
        message = json.loads(frame)
        if message["parent_header"].get("msg_id") != request["header"]["msg_id"]:
            continue  # output of another client's request on the same kernel
        msg_type, content = message["msg_type"], message["content"]
        if msg_type == "stream":
            stream = sys.stdout if content["name"] == "stdout" else sys.stderr
            stream.write(content["text"])
        elif msg_type == "error":
            print("\n".join(content["traceback"]), file=sys.stderr)
        elif msg_type == "execute_reply":
            reply = content
        elif msg_type == "status" and content["execution_state"] == "idle":
            idle = True
    return reply


def main() -> int:
    code = sys.argv[1] if len(sys.argv) > 1 else 'print("Hello world!")'

    # An empty body starts the gateway's default kernelspec; {"name": "python3"} picks one.
    response = requests.post(f"{GATEWAY_URL}/api/kernels", json={}, headers=HEADERS, timeout=90)
    response.raise_for_status()
    kernel = response.json()
    print(f"started kernel {kernel['id']} ({kernel['name']})", file=sys.stderr)

    kernel_url = f"{GATEWAY_URL}/api/kernels/{quote(kernel['id'])}"
    ws_url = "ws" + kernel_url[len("http") :] + "/channels"  # http -> ws, https -> wss
    try:
        with connect(ws_url, additional_headers=HEADERS) as ws:
            reply = execute(ws, code)
        print(f"execute_reply status: {reply['status']}", file=sys.stderr)
        return 0 if reply["status"] == "ok" else 1
    finally:
        requests.delete(kernel_url, headers=HEADERS, timeout=90).raise_for_status()
        print(f"shut down kernel {kernel['id']}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
