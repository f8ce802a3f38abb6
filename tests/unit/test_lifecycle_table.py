"""The kernel lifecycle table: legal transitions change state, illegal ones are a 409."""

from __future__ import annotations

import pytest

from kgw.errors import Conflict
from kgw.kernels.lifecycle import TRANSITIONS, Event, Lifecycle, State


def test_a_kernel_started_for_a_client_restarts_and_shuts_down() -> None:
    life = Lifecycle("k")
    for event, state in [
        (Event.SERVE, State.READY),
        (Event.ASK_RESTART, State.RESTARTING),
        (Event.RESTARTED, State.READY),
        (Event.ASK_SHUTDOWN, State.STOPPING),
        (Event.STOPPED, State.GONE),
    ]:
        assert life.fire(event) is state


def test_delete_during_an_automatic_restart_waits_for_it_whatever_its_outcome() -> None:
    for outcome in (Event.DIED, Event.BUDGET_SPENT, Event.RESTARTED, Event.RESTART_FAILED):
        life = Lifecycle("k", State.READY)
        life.fire(Event.DIED)
        life.fire(Event.ASK_SHUTDOWN)
        assert life.state is State.SHUTDOWN_PENDING
        # The restart ends, however it ends: the shutdown comes next, never another restart.
        assert life.fire(outcome) is State.STOPPING
        with pytest.raises(Conflict):
            life.fire(Event.RESTARTED)


@pytest.mark.parametrize(
    "state", [State.RESTARTING, State.SHUTDOWN_PENDING, State.DEAD, State.STOPPING]
)
def test_interrupt_is_refused_unless_the_kernel_runs(state: State) -> None:
    life = Lifecycle("k", state)
    with pytest.raises(Conflict) as refused:
        life.check_interrupt()
    assert refused.value.status == 409
    assert state.value in refused.value.message


def test_an_illegal_event_is_a_conflict_naming_the_state() -> None:
    life = Lifecycle("k", State.STOPPING)
    with pytest.raises(Conflict, match="Kernel k is shutting down: cannot restart requested"):
        life.fire(Event.ASK_RESTART)
    assert life.state is State.STOPPING


def test_gone_is_the_end() -> None:
    assert not any(state is State.GONE for state, _ in TRANSITIONS)


def test_reached_fires_when_the_state_comes() -> None:
    life = Lifecycle("k", State.READY)
    reached = life.reached(State.READY, State.DEAD)
    assert reached.called  # already there
    later = life.reached(State.GONE)
    life.fire(Event.ASK_SHUTDOWN)
    assert not later.called
    life.fire(Event.STOPPED)
    assert later.result is State.GONE


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("event", list(Event))
def test_every_pair_either_moves_as_the_table_says_or_is_refused(
    state: State, event: Event
) -> None:
    life = Lifecycle("k", state)
    target = TRANSITIONS.get((state, event))
    if target is None:
        with pytest.raises(Conflict):
            life.fire(event)
        assert life.state is state
        assert life.history == []
    else:
        assert life.fire(event) is target
        assert life.history == [(state, event, target)]
