"""Requests in flight: which are sent again after a restart, which are answered with an error."""

from __future__ import annotations

import json

from kgw.channels import wire
from kgw.channels.inflight import InFlight


def request(msg_id: str) -> wire.Parts:
    header = json.dumps({"msg_id": msg_id, "msg_type": "execute_request"}).encode()
    return wire.Parts("shell", header, b"{}", b"{}", b"{}")


def test_only_the_oldest_unanswered_request_can_have_begun() -> None:
    """A kernel runs shell requests one at a time: what waits behind the oldest is safe to
    send again; the oldest may have run, busy status or not."""
    flight = InFlight()
    for msg_id in ("a", "b", "c", "d"):
        flight.sent("client", request(msg_id))
    flight.answered("a")
    flight.begun("unknown")  # another client's, or the gateway's: ignored
    assert [p.msg_id for _, p in flight.queued()] == ["c", "d"]
    assert [p.msg_id for _, p in flight.unanswered()] == ["b"]
    assert len(flight) == 0


def test_a_request_the_kernel_said_it_began_is_never_sent_again() -> None:
    flight = InFlight()
    for msg_id in ("a", "b"):
        flight.sent("client", request(msg_id))
    flight.begun("b")  # a kernel with subshells may run two at once
    assert flight.queued() == []
    assert [p.msg_id for _, p in flight.unanswered()] == ["a", "b"]


def test_memory_is_bounded_oldest_forgotten_first() -> None:
    flight = InFlight(limit=2)
    for msg_id in ("a", "b", "c"):
        flight.sent("client", request(msg_id))
    assert [p.msg_id for _, p in flight.queued()] == ["c"]
    assert [p.msg_id for _, p in flight.unanswered()] == ["b"]
