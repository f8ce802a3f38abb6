"""sd_notify: tell systemd (Type=notify) when the gateway is ready and when it stops."""

from __future__ import annotations

import socket

from twisted.logger import Logger

log = Logger()


def notify(notify_socket: str, state: str) -> bool:
    """Send ``state`` (e.g. "READY=1") to $NOTIFY_SOCKET; False when there is none."""
    if not notify_socket:
        return False
    address = "\0" + notify_socket[1:] if notify_socket.startswith("@") else notify_socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.send(state.encode("utf-8"))
    except OSError as e:
        log.warn("cannot notify systemd ({state}): {error}", state=state, error=str(e))
        return False
    return True
