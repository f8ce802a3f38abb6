"""The life of one kernel as an explicit state machine: every legal transition in one table.

The registry and the supervisor report events (a client asked for a restart, the process
exited, the restart budget is spent...) with :meth:`Lifecycle.fire`; the machine
answers with the new state, or refuses the event with a :class:`~kgw.errors.Conflict`
(HTTP 409 with a reason) when it is not legal in the current state. Nothing else writes a
kernel's state. The work an event starts (a restart, a shutdown) runs in the registry, and
its outcome comes back as another event (``RESTARTED``, ``RESTART_FAILED``, ``STOPPED``).

A table rather than Automat: the targets of several events depend on facts outside the
machine (whether the restart budget allows another try is decided by the caller, which then
fires ``DIED`` or ``BUDGET_SPENT``), and a table of (state, event) -> state is shorter to
read, to draw in docs/architecture.md and to test exhaustively than the equivalent
TypeMachineBuilder with one input per outcome.
"""

from __future__ import annotations

import enum

from twisted.internet.defer import Deferred

from kgw.errors import Conflict


class State(enum.Enum):
    STARTING = "starting"  # the process is starting, not yet ready or registered
    POOLED = "pooled"  # ready, waiting in a pool for a client
    READY = "ready"  # a client's kernel, running (idle or busy)
    RESTARTING = "restarting"  # a new process is being started with the same id
    SHUTDOWN_PENDING = "shutdown pending"  # restarting, and asked to shut down once it ends
    DEAD = "dead"  # kept dying: no process; a restart request may bring it back
    STOPPING = "shutting down"
    GONE = "gone"  # no process, not registered: the end


class Event(enum.Enum):
    POOL = "pool"  # ready, for a pool
    SERVE = "serve"  # ready, for a client (started for it, or handed out from a pool)
    ASK_RESTART = "restart requested"
    DIED = "process exited"  # and the budget allows a restart in place
    BUDGET_SPENT = "restart budget spent"  # or the restart failed for good
    RESTARTED = "restarted"
    RESTART_FAILED = "restart failed"  # the new process did not become ready
    ASK_SHUTDOWN = "shutdown requested"
    STOPPED = "stopped"


S, E = State, Event
TRANSITIONS: dict[tuple[State, Event], State] = {
    (S.STARTING, E.POOL): S.POOLED,
    (S.STARTING, E.SERVE): S.READY,
    (S.STARTING, E.ASK_SHUTDOWN): S.STOPPING,
    (S.POOLED, E.SERVE): S.READY,
    (S.POOLED, E.DIED): S.STOPPING,  # a pooled kernel is replaced, never restarted
    (S.POOLED, E.ASK_SHUTDOWN): S.STOPPING,
    (S.READY, E.ASK_RESTART): S.RESTARTING,
    (S.READY, E.DIED): S.RESTARTING,
    (S.READY, E.BUDGET_SPENT): S.DEAD,
    (S.READY, E.ASK_SHUTDOWN): S.STOPPING,
    (S.RESTARTING, E.DIED): S.RESTARTING,  # the new process exited while starting: again
    (S.RESTARTING, E.BUDGET_SPENT): S.DEAD,
    (S.RESTARTING, E.RESTARTED): S.READY,
    (S.RESTARTING, E.RESTART_FAILED): S.DEAD,
    (S.RESTARTING, E.ASK_SHUTDOWN): S.SHUTDOWN_PENDING,
    # Whatever the restart's outcome, a pending shutdown comes next.
    (S.SHUTDOWN_PENDING, E.DIED): S.STOPPING,
    (S.SHUTDOWN_PENDING, E.BUDGET_SPENT): S.STOPPING,
    (S.SHUTDOWN_PENDING, E.RESTARTED): S.STOPPING,
    (S.SHUTDOWN_PENDING, E.RESTART_FAILED): S.STOPPING,
    (S.SHUTDOWN_PENDING, E.ASK_SHUTDOWN): S.SHUTDOWN_PENDING,
    (S.DEAD, E.ASK_RESTART): S.RESTARTING,
    (S.DEAD, E.ASK_SHUTDOWN): S.STOPPING,
    (S.DEAD, E.DIED): S.DEAD,  # nothing runs: nothing more to die
    (S.STOPPING, E.DIED): S.STOPPING,  # the process we are stopping exited: expected
    (S.STOPPING, E.ASK_SHUTDOWN): S.STOPPING,
    (S.STOPPING, E.STOPPED): S.GONE,
}

# States in which a client may interrupt the kernel (its process runs and is its own).
INTERRUPTIBLE = frozenset({S.READY})
# States in which a process may be running that supervision should watch.
WATCHED = frozenset({S.READY})


class Lifecycle:
    """The state of one kernel; ``fire()`` is the only way to change it."""

    def __init__(self, kernel_id: str, state: State = State.STARTING) -> None:
        self.kernel_id = kernel_id
        self.state = state
        self.history: list[tuple[State, Event, State]] = []
        self._waiting: list[tuple[frozenset[State], Deferred[State]]] = []

    def can(self, event: Event) -> bool:
        return (self.state, event) in TRANSITIONS

    def fire(self, event: Event) -> State:
        """Apply ``event``; raise Conflict (409) when it is not legal now."""
        target = TRANSITIONS.get((self.state, event))
        if target is None:
            raise Conflict(f"Kernel {self.kernel_id} is {self.state.value}: cannot {event.value}")
        self.history.append((self.state, event, target))
        self.state = target
        waiting, self._waiting = self._waiting, []
        for states, done in waiting:
            if target in states:
                done.callback(target)
            else:
                self._waiting.append((states, done))
        return target

    def check_interrupt(self) -> None:
        """Raise Conflict unless the kernel can be interrupted now."""
        if self.state not in INTERRUPTIBLE:
            raise Conflict(f"Kernel {self.kernel_id} is {self.state.value}: cannot interrupt")

    def reached(self, *states: State) -> Deferred[State]:
        """Fires with the state once the kernel is in one of ``states`` (at once if it is)."""
        done: Deferred[State] = Deferred()
        if self.state in states:
            done.callback(self.state)
        else:
            self._waiting.append((frozenset(states), done))
        return done
