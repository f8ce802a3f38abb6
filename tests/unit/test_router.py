"""Which websocket connection gets which kernel message."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from kgw.channels import wire
from kgw.channels.router import Router


def message(
    channel: str, msg_type: str, msg_id: str = "", parent_id: str | None = None
) -> wire.Parts:
    """A message on ``channel``; ``parent_id`` names the request it answers."""
    return wire.message_to_parts(
        {
            "header": {"msg_id": msg_id or f"{msg_type}-id", "msg_type": msg_type},
            "parent_header": {} if parent_id is None else {"msg_id": parent_id},
            "channel": channel,
        }
    )


def execute(msg_id: str) -> wire.Parts:
    return message("shell", "execute_request", msg_id)


def execute_reply(parent_id: str) -> wire.Parts:
    return message("shell", "execute_reply", parent_id=parent_id)


def router_with(*connections: str, max_pending: int = 10_000) -> Router[str]:
    router: Router[str] = Router(max_pending=max_pending)
    for connection in connections:
        router.attach(connection)
    return router


# --- replies ----------------------------------------------------------------------------------


def test_shell_reply_goes_only_to_the_connection_that_asked() -> None:
    router = router_with("alice", "bob")
    router.request("alice", execute("a1"))
    router.request("bob", execute("b1"))

    assert router.route(execute_reply("a1")) == ["alice"]
    assert router.route(execute_reply("b1")) == ["bob"]


def test_control_reply_goes_only_to_the_connection_that_asked() -> None:
    router = router_with("alice", "bob")
    router.request("bob", message("control", "interrupt_request", "i1"))

    assert router.route(message("control", "interrupt_reply", parent_id="i1")) == ["bob"]


def test_a_reply_is_delivered_once_and_then_forgotten() -> None:
    router = router_with("alice")
    router.request("alice", execute("a1"))

    assert router.route(execute_reply("a1")) == ["alice"]
    assert router.route(execute_reply("a1")) == []


def test_shell_message_that_is_no_reply_does_not_end_the_request() -> None:
    router = router_with("alice")
    router.request("alice", execute("a1"))

    assert router.route(message("shell", "comm_msg", parent_id="a1")) == ["alice"]
    assert router.route(execute_reply("a1")) == ["alice"]


# --- stdin ------------------------------------------------------------------------------------


def test_input_request_goes_to_the_owner_of_the_execute_request() -> None:
    router = router_with("alice", "bob")
    router.request("bob", execute("b1"))

    assert router.route(message("stdin", "input_request", parent_id="b1")) == ["bob"]


def test_execute_reply_still_reaches_its_owner_after_an_input_request() -> None:
    router = router_with("alice", "bob")
    router.request("bob", execute("b1"))
    router.route(message("stdin", "input_request", parent_id="b1"))
    router.request("bob", message("stdin", "input_reply", "r1", parent_id="ir"))

    assert router.route(message("stdin", "input_request", parent_id="b1")) == ["bob"]
    assert router.route(execute_reply("b1")) == ["bob"]


# --- iopub ------------------------------------------------------------------------------------


def test_iopub_goes_to_every_attached_connection() -> None:
    router = router_with("alice", "bob", "carol")
    router.request("alice", execute("a1"))

    stream = message("iopub", "stream", parent_id="a1")

    assert sorted(router.route(stream)) == ["alice", "bob", "carol"]


def test_iopub_without_a_parent_goes_to_every_connection() -> None:
    router = router_with("alice", "bob")

    status = message("iopub", "status")

    assert sorted(router.route(status)) == ["alice", "bob"]


def test_iopub_goes_nowhere_without_connections() -> None:
    assert Router[str]().route(message("iopub", "status")) == []


def test_iopub_is_not_sent_to_a_detached_connection() -> None:
    router = router_with("alice", "bob")
    router.detach("alice")

    assert router.route(message("iopub", "status")) == ["bob"]


def test_iopub_goes_to_the_requester_first() -> None:
    router = router_with("alice", "bob", "carol")
    router.request("carol", execute("c1"))

    busy = message("iopub", "status", parent_id="c1")

    assert router.route(busy) == ["carol", "alice", "bob"]
    assert router.requester(busy) == "carol"


def test_iopub_after_the_reply_still_goes_to_the_requester_first() -> None:
    router = router_with("alice", "bob", "carol")
    router.request("carol", execute("c1"))
    assert router.route(execute_reply("c1")) == ["carol"]

    idle = message("iopub", "status", parent_id="c1")

    assert router.route(idle) == ["carol", "alice", "bob"]


def test_a_detached_requester_is_forgotten() -> None:
    router = router_with("alice", "bob", "carol")
    router.request("carol", execute("c1"))
    router.route(execute_reply("c1"))
    router.detach("carol")

    idle = message("iopub", "status", parent_id="c1")

    assert router.route(idle) == ["alice", "bob"]
    assert router.requester(idle) is None


def test_answered_requests_are_remembered_in_bounded_memory() -> None:
    router = router_with("alice", "bob")
    for n in range(1000):
        router.request("bob", execute(f"b{n}"))
        router.route(execute_reply(f"b{n}"))

    assert router.route(message("iopub", "status", parent_id="b999"))[0] == "bob"
    assert router.route(message("iopub", "status", parent_id="b0")) == ["alice", "bob"]


def test_connections_lists_attached_connections_once() -> None:
    router = router_with("alice", "bob")
    router.attach("alice")

    assert router.connections == ["alice", "bob"]
    router.detach("alice")
    assert router.connections == ["bob"]


# --- unknown parents and unanswered requests --------------------------------------------------


def test_reply_to_an_unknown_request_goes_nowhere() -> None:
    router = router_with("alice")
    router.request("alice", execute("a1"))

    assert router.route(execute_reply("never-sent")) == []
    assert router.route(message("stdin", "input_request", parent_id="never-sent")) == []


def test_reply_without_a_parent_goes_nowhere() -> None:
    router = router_with("alice")
    router.request("alice", execute("a1"))

    assert router.route(message("shell", "execute_reply")) == []


def test_request_from_a_connection_that_is_not_attached_is_not_remembered() -> None:
    router = router_with("alice")
    router.request("stranger", execute("s1"))

    assert router.route(execute_reply("s1")) == []


def test_comm_msg_is_not_remembered() -> None:
    router = router_with("alice")
    router.request("alice", message("shell", "comm_msg", "c1"))

    assert router.route(message("shell", "comm_msg", parent_id="c1")) == []


def test_input_reply_is_not_remembered() -> None:
    router = router_with("alice")
    router.request("alice", message("stdin", "input_reply", "r1"))

    assert router.route(message("stdin", "input_request", parent_id="r1")) == []


def test_requests_that_get_no_reply_do_not_fill_the_pending_bound() -> None:
    router = router_with("alice", max_pending=1)
    router.request("alice", execute("a1"))
    for i in range(5):
        router.request("alice", message("shell", "comm_msg", f"c{i}"))
        router.request("alice", message("stdin", "input_reply", f"r{i}"))

    assert router.route(execute_reply("a1")) == ["alice"]


# --- forgetting -------------------------------------------------------------------------------


def test_detach_forgets_the_connections_requests() -> None:
    router = router_with("alice", "bob")
    router.request("alice", execute("a1"))
    router.request("bob", execute("b1"))

    router.detach("alice")

    assert router.route(execute_reply("a1")) == []
    assert router.route(execute_reply("b1")) == ["bob"]


def test_a_connection_that_comes_back_does_not_get_old_replies() -> None:
    router = router_with("alice")
    router.request("alice", execute("a1"))
    router.detach("alice")
    router.attach("alice")

    assert router.route(execute_reply("a1")) == []


def test_detaching_an_unknown_connection_is_harmless() -> None:
    router = router_with("alice")
    router.request("alice", execute("a1"))

    router.detach("nobody")

    assert router.route(execute_reply("a1")) == ["alice"]


def test_pending_bound_drops_the_oldest_request() -> None:
    router = router_with("alice", max_pending=2)
    for msg_id in ("a1", "a2", "a3"):
        router.request("alice", execute(msg_id))

    assert router.route(execute_reply("a1")) == []
    assert router.route(execute_reply("a2")) == ["alice"]
    assert router.route(execute_reply("a3")) == ["alice"]


def test_pending_bound_is_per_connection() -> None:
    router = router_with("alice", "bob", max_pending=2)
    router.request("bob", execute("b1"))
    for i in range(10):
        router.request("alice", execute(f"a{i}"))

    assert router.route(execute_reply("b1")) == ["bob"]
    assert router.route(execute_reply("a7")) == []
    assert router.route(execute_reply("a9")) == ["alice"]


def test_answered_requests_make_room_under_the_bound() -> None:
    router = router_with("alice", max_pending=2)
    router.request("alice", execute("a1"))
    router.request("alice", execute("a2"))
    router.route(execute_reply("a2"))
    router.request("alice", execute("a3"))

    assert router.route(execute_reply("a1")) == ["alice"]
    assert router.route(execute_reply("a3")) == ["alice"]


def test_clear_requests_forgets_every_request_but_keeps_connections() -> None:
    router = router_with("alice", "bob")
    router.request("alice", execute("a1"))
    router.request("bob", message("control", "shutdown_request", "b1"))

    router.clear_requests()

    assert router.route(execute_reply("a1")) == []
    assert router.route(message("control", "shutdown_reply", parent_id="b1")) == []
    assert sorted(router.route(message("iopub", "status"))) == ["alice", "bob"]
    router.request("alice", execute("a2"))
    assert router.route(execute_reply("a2")) == ["alice"]


# --- many connections -------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    owners=st.lists(st.integers(0, 4), min_size=1, max_size=30),
    order=st.randoms(use_true_random=False),
)
def test_every_reply_reaches_exactly_its_requester_once(
    owners: list[int], order: random.Random
) -> None:
    connections = [f"conn{i}" for i in range(5)]
    router = router_with(*connections)
    requests = {f"req{n}": connections[owner] for n, owner in enumerate(owners)}
    for msg_id, connection in requests.items():
        router.request(connection, execute(msg_id))

    replies = list(requests)
    order.shuffle(replies)
    for msg_id in replies:
        assert router.route(execute_reply(msg_id)) == [requests[msg_id]]
    for msg_id in replies:
        assert router.route(execute_reply(msg_id)) == []


def test_replace_hands_over_pending_requests_and_answered_ones() -> None:
    router = router_with("alice", "bob")
    router.request("alice", execute("a1"))
    router.request("alice", execute("a2"))
    router.route(execute_reply("a2"))

    router.replace("alice", "alice-back")

    assert router.route(execute_reply("a1")) == ["alice-back"]
    assert router.route(message("iopub", "status", parent_id="a2"))[0] == "alice-back"
    assert "alice" not in router.connections
    assert sorted(router.connections) == ["alice-back", "bob"]


def test_replace_of_an_unknown_connection_attaches_the_new_one() -> None:
    router = router_with("bob")

    router.replace("ghost", "carol")

    assert sorted(router.connections) == ["bob", "carol"]
