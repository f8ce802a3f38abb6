"""Requests in flight: which are sent again after a restart, which are answered with an error."""

from __future__ import annotations

import json

from kgw.channels import wire
from kgw.channels.inflight import InFlight


def request(msg_id: str) -> wire.Parts:
    header = json.dumps({"msg_id": msg_id, "msg_type": "execute_request"}).encode()
    return wire.Parts("shell", header, b"{}", b"{}", b"{}")


def test_requests_never_begun_come_back_in_order_and_begun_ones_apart() -> None:
    flight = InFlight()
    for msg_id in ("a", "b", "c", "d"):
        flight.sent("client", request(msg_id))
    flight.begun("b")
    flight.answered("c")
    flight.begun("unknown")  # another client's, or the gateway's: ignored
    assert [p.msg_id for _, p in flight.not_begun()] == ["a", "d"]
    assert [p.msg_id for _, p in flight.begun_unanswered()] == ["b"]
    assert len(flight) == 0


def test_memory_is_bounded_oldest_forgotten_first() -> None:
    flight = InFlight(limit=2)
    for msg_id in ("a", "b", "c"):
        flight.sent("client", request(msg_id))
    assert [p.msg_id for _, p in flight.not_begun()] == ["b", "c"]
