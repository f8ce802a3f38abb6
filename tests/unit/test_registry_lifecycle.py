"""The kernel lifecycle driven in memory: a registry with a fake kernel manager and bridge.

Each test scripts what the kernel process does (a start that succeeds, a restart whose new
process exits while starting, a process that is found dead) by firing the Deferreds the
fakes hand out, in the order a race would. The six sequences of issue 13 that ended wrong
are here; the one still open (requests sent to a kernel in the moment after it died) is not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from kgw.channels.gateway_client import KernelExited
from kgw.config import GatewayConfig
from kgw.errors import Conflict, KernelStartFailed
from kgw.kernels.kernel import Kernel
from kgw.kernels.lifecycle import State
from kgw.kernels.registry import KernelRegistry


class Script:
    """What every fake reports: the calls made, and outcomes the test queues up."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        # Outcomes of wait_ready, in order: None (ready), an exception, or a Deferred.
        self.ready: list[Any] = []
        self.restarts: list[Deferred[None]] = []  # restart_kernel calls waiting to finish
        self.start_fails: Exception | None = None  # start_kernel raises it
        self.replies: list[dict[str, Any]] = []  # the bridge's answers to gateway requests
        self.alive_answers: list[Deferred[bool]] = []  # is_alive answers, fired by the test


class FakeManager:
    def __init__(self, script: Script, **kwargs: Any) -> None:
        self.script = script
        self.alive = False
        self.env: dict[str, str] = {}

    def start_kernel(self, **kwargs: Any) -> Deferred[None]:
        self.script.calls.append("start_kernel")
        if self.script.start_fails is not None:
            raise self.script.start_fails
        self.alive = True
        return succeed(None)

    def restart_kernel(self, now: bool = False) -> Deferred[None]:
        self.script.calls.append("restart_kernel")
        done: Deferred[None] = Deferred()
        self.script.restarts.append(done)
        done.addCallback(lambda _: setattr(self, "alive", True))
        return done

    def shutdown_kernel(self, now: bool = False) -> Deferred[None]:
        self.script.calls.append("shutdown_kernel")
        self.alive = False
        return succeed(None)

    def interrupt_kernel(self) -> Deferred[None]:
        if not self.alive:
            raise RuntimeError("Cannot interrupt kernel. No kernel is running!")
        self.script.calls.append("interrupt_kernel")
        return succeed(None)

    def is_alive(self) -> Deferred[bool]:
        if self.script.alive_answers:  # the test decides when the answer comes
            return self.script.alive_answers.pop(0)
        return succeed(self.alive)

    def get_connection_info(self) -> dict[str, Any]:
        return {}

    def update_env(self, *, env: dict[str, str]) -> None:
        self.env.update(env)

    @property
    def provisioner(self) -> None:
        return None


class FakeBridge:
    def __init__(self, script: Script, *args: Any, **kwargs: Any) -> None:
        self.script = script
        self.execution_state = "starting"
        clock = args[3]  # the registry's clock, as ChannelBridge gets it
        self.last_activity = datetime.fromtimestamp(clock.seconds(), UTC)
        self.connection_count = 0
        self.statuses: list[str] = []
        self.holding = False
        self.gateway = self  # the bridge's own client: wait_ready() and execute() below
        self.requests: list[dict[str, Any]] = []

    async def execute(self, code: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.requests.append({"code": code, **kwargs})
        return self.script.replies.pop(0) if self.script.replies else {"status": "ok"}

    async def wait_ready(self, timeout: float, alive: Any = None) -> None:
        outcome = self.script.ready.pop(0) if self.script.ready else None
        if isinstance(outcome, Deferred):
            outcome = await outcome
        if isinstance(outcome, BaseException):
            raise outcome
        self.execution_state = "idle"

    def connect(self, info: Any) -> None:
        self.script.calls.append("connect")

    def broadcast_status(self, state: str) -> None:
        self.statuses.append(state)

    def hold(self) -> None:
        self.holding = True

    def release(self) -> None:
        self.script.calls.append("release")
        self.holding = False

    def disconnect(self) -> None:
        pass

    def close(self, code: int = 1001, reason: str = "") -> None:
        self.script.calls.append("close")


class FakeOutput:
    launch_kwargs: dict[str, int] = {}

    def __init__(self, *args: Any) -> None:
        pass

    def close(self) -> None:
        pass


class FakeSpec:
    def __init__(self, language: str) -> None:
        self.language = language


class FakeSpecs:
    """Installed kernelspecs: python3, and an R one."""

    specs = {"python3": FakeSpec("python"), "rlang": FakeSpec("R")}

    def find_kernel_specs(self) -> dict[str, str]:
        return dict.fromkeys(self.specs, "/somewhere")

    def get_kernel_spec(self, name: str) -> FakeSpec:
        from jupyter_client.kernelspec import NoSuchKernel

        if name not in self.specs:
            raise NoSuchKernel(name)
        return self.specs[name]


def make_registry(script: Script, **settings: Any) -> KernelRegistry:
    return KernelRegistry(
        GatewayConfig(**settings),
        Clock(),
        object(),  # type: ignore[arg-type]
        {"PATH": "/usr/bin"},
        kernel_spec_manager=FakeSpecs(),  # type: ignore[arg-type]
        manager_factory=lambda **kw: FakeManager(script, **kw),
        bridge_factory=lambda *args, **kwargs: FakeBridge(script, *args, **kwargs),
        output_factory=FakeOutput,
    )


def run(coroutine: Any) -> Deferred[Any]:
    return Deferred.fromCoroutine(coroutine)


def started(registry: KernelRegistry) -> Kernel:
    result = run(registry.start("python3", None))
    kernel: Kernel = result.result
    assert kernel.lifecycle.state is State.READY
    return kernel


def die(kernel: Kernel) -> None:
    kernel.manager.alive = False  # type: ignore[attr-defined]


def failure_of(result: Deferred[Any]) -> BaseException:
    """The exception a fired Deferred failed with (the failure is then handled)."""
    failure = result.result
    result.addErrback(lambda _: None)
    assert failure.value is not None
    return failure.value  # type: ignore[no-any-return]


def test_delete_during_a_failing_automatic_restart_leaves_no_process() -> None:
    """Sequence 1: the restart's new process exits while starting, and a DELETE came
    meanwhile: the kernel is shut down, never restarted again, and nothing is left."""
    script = Script()
    registry = make_registry(script)
    kernel = started(registry)
    die(kernel)
    revived = run(registry.revive(kernel))
    assert kernel.lifecycle.state is State.RESTARTING
    deleted = run(registry.shutdown(kernel.id))
    assert kernel.lifecycle.state is State.SHUTDOWN_PENDING
    assert not deleted.called, "the DELETE waits for the restart to end"

    script.ready.append(KernelExited("exited while starting"))
    script.restarts[0].callback(None)

    assert deleted.called and revived.called
    assert kernel.lifecycle.state is State.GONE
    manager_calls = [c for c in script.calls if c.endswith("_kernel")]
    assert manager_calls == ["start_kernel", "restart_kernel", "shutdown_kernel"]
    assert "close" in script.calls, "its clients are told (1001, kernel shut down)"
    assert registry.list() == []
    stopped = run(registry.shutdown_all())
    assert stopped.called


def test_shutdown_all_during_a_restart_waits_for_the_kernel_being_deleted() -> None:
    script = Script()
    registry = make_registry(script)
    kernel = started(registry)
    die(kernel)
    run(registry.revive(kernel))
    run(registry.shutdown(kernel.id))
    all_stopped = run(registry.shutdown_all())
    assert not all_stopped.called, "a kernel still restarting is not forgotten"
    script.restarts[0].callback(None)  # ready this time
    assert all_stopped.called
    assert kernel.lifecycle.state is State.GONE
    assert script.calls[-1] == "shutdown_kernel"


def test_a_requested_restart_whose_new_process_exits_is_tried_again() -> None:
    """Sequence 2: the new process exits while starting: that is a death, restarted in
    place within the budget, and the held requests go to the process that comes up."""
    script = Script()
    registry = make_registry(script)
    kernel = started(registry)
    restarted = run(registry.restart(kernel.id))
    script.ready.append(KernelExited("exited while starting"))
    script.restarts[0].callback(None)
    assert kernel.lifecycle.state is State.RESTARTING
    assert kernel.bridge.holding  # type: ignore[attr-defined]
    script.restarts[1].callback(None)
    assert restarted.result is kernel
    assert kernel.lifecycle.state is State.READY
    assert not kernel.bridge.holding  # type: ignore[attr-defined]


def test_a_requested_restart_that_keeps_failing_ends_dead_and_answers_what_it_held() -> None:
    script = Script()
    registry = make_registry(script, restart_limit=0)
    kernel = started(registry)
    restarted = run(registry.restart(kernel.id))
    script.ready.append(KernelExited("exited while starting"))
    script.restarts[0].callback(None)
    error = failure_of(restarted)
    assert isinstance(error, KernelStartFailed)
    assert kernel.lifecycle.state is State.DEAD
    assert kernel.bridge.statuses[-1] == "dead"  # type: ignore[attr-defined]
    held = kernel.bridge.holding  # type: ignore[attr-defined]
    assert not held, "held requests are answered, not kept"
    assert script.calls[-1] == "release"


@pytest.mark.parametrize("when", ["dead", "restarting"])
def test_interrupt_of_a_kernel_that_is_not_running_is_409(when: str) -> None:
    """Sequences 3 and 5: never jupyter_client's RuntimeError, never a silent 204."""
    script = Script()
    registry = make_registry(script, restart_limit=0 if when == "dead" else 5)
    kernel = started(registry)
    die(kernel)
    run(registry.revive(kernel))
    if when == "restarting":
        assert kernel.lifecycle.state is State.RESTARTING
    else:
        assert kernel.lifecycle.state is State.DEAD
    interrupted = run(registry.interrupt(kernel.id))
    error = failure_of(interrupted)
    assert isinstance(error, Conflict)
    assert error.status == 409
    assert "interrupt_kernel" not in script.calls


def test_interrupt_of_a_process_that_just_died_is_409() -> None:
    script = Script()
    registry = make_registry(script)
    kernel = started(registry)
    die(kernel)  # supervision has not noticed yet
    interrupted = run(registry.interrupt(kernel.id))
    error = failure_of(interrupted)
    assert isinstance(error, Conflict)


def test_a_pooled_kernel_that_died_is_never_handed_out() -> None:
    """Sequence 4: it died between two supervisor ticks; the client gets a live kernel."""
    script = Script()
    registry = make_registry(script, prespawn_count=1)
    registry.pool.refill()
    [pooled] = registry.pool.ready()
    assert pooled.lifecycle.state is State.POOLED
    die(pooled)
    handed = run(registry.start("python3", None)).result
    assert handed is not pooled
    assert handed.lifecycle.state is State.READY
    assert pooled.lifecycle.state is State.GONE
    assert registry.list() == [handed]


def test_delete_of_a_dead_kernel_does_not_shut_its_manager_down_twice() -> None:
    script = Script()
    registry = make_registry(script, restart_limit=0)
    kernel = started(registry)
    die(kernel)
    run(registry.revive(kernel))
    assert kernel.lifecycle.state is State.DEAD
    assert script.calls.count("shutdown_kernel") == 1  # the cleanup after death
    deleted = run(registry.shutdown(kernel.id))
    assert deleted.called
    assert kernel.lifecycle.state is State.GONE
    assert script.calls.count("shutdown_kernel") == 1


# --- the restart budget, the pools, sessions -------------------------------------------------


def test_the_restart_budget_counts_deaths_within_the_window_only() -> None:
    script = Script()
    registry = make_registry(script, restart_limit=2, restart_window=60)
    clock: Any = registry._clock
    kernel = started(registry)
    for _ in range(2):
        die(kernel)
        run(registry.revive(kernel))
        script.restarts[-1].callback(None)
        assert kernel.lifecycle.state is State.READY
    clock.advance(61)  # the first two deaths leave the window
    die(kernel)
    run(registry.revive(kernel))
    script.restarts[-1].callback(None)
    assert kernel.lifecycle.state is State.READY
    die(kernel)
    run(registry.revive(kernel))
    script.restarts[-1].callback(None)
    die(kernel)
    run(registry.revive(kernel))  # a third death within 60 s: dead
    assert kernel.lifecycle.state is State.DEAD
    assert kernel.bridge.statuses[-1] == "dead"  # type: ignore[attr-defined]


def test_a_dead_kernel_comes_back_on_request_with_a_fresh_process() -> None:
    script = Script()
    registry = make_registry(script, restart_limit=0)
    kernel = started(registry)
    die(kernel)
    run(registry.revive(kernel))
    assert kernel.lifecycle.state is State.DEAD
    restarted = run(registry.restart(kernel.id))
    assert restarted.result is kernel
    assert kernel.lifecycle.state is State.READY
    assert script.calls.count("start_kernel") == 2


def test_restart_while_restarting_is_409() -> None:
    script = Script()
    registry = make_registry(script)
    kernel = started(registry)
    run(registry.restart(kernel.id))
    again = run(registry.restart(kernel.id))
    error = failure_of(again)
    assert isinstance(error, Conflict)
    script.restarts[0].callback(None)
    assert kernel.lifecycle.state is State.READY


def test_the_pool_refills_after_a_handout_and_gives_way_under_the_limit() -> None:
    script = Script()
    registry = make_registry(script, prespawn_count=1, max_kernels=2)
    registry.refill()
    [pooled] = registry.pool.ready()
    handed = run(registry.start("python3", None)).result
    assert handed is pooled
    [replacement] = registry.pool.ready()
    assert replacement is not pooled
    # A client's cold kernel fits only if the pooled one gives way.
    cold = run(registry.start("python3", {})).result
    assert cold.lifecycle.state is State.READY
    assert replacement.lifecycle.state is State.GONE
    assert registry.pool.ready() == []
    refused = run(registry.start("python3", {}))
    error = failure_of(refused)
    assert error.status == 403


def test_a_pool_start_that_fails_at_startup_stops_it_naming_the_setting() -> None:
    script = Script()
    registry = make_registry(script, pool=(("python3", 1),), sources={"pool": "KGW_POOL"})
    script.ready.append(TimeoutError("no answer"))
    checked = run(registry.startup_check())
    error = failure_of(checked)
    assert str(error) == "KGW_POOL python3: Kernel python3 did not become ready: no answer"


def test_the_env_pool_sets_the_requests_variables_in_the_kernel_it_hands_out() -> None:
    script = Script()
    registry = make_registry(script, env_pool=(("python3", 1),))
    registry.refill()
    [pooled] = registry.env_pool.ready()
    handed = run(registry.start("python3", {"KERNEL_USERNAME": "erin", "OTHER": "x"}))
    # The bridge double answers the handout's execute_request at once.
    kernel = handed.result
    assert kernel is pooled
    assert kernel.env["KERNEL_USERNAME"] == "erin"
    assert "OTHER" not in kernel.env
    assert kernel.manager.env == {"KERNEL_USERNAME": "erin"}  # type: ignore[attr-defined]
    code = kernel.bridge.requests[0]["code"]  # type: ignore[attr-defined]
    assert "'KERNEL_USERNAME': 'erin'" in code


def test_sessions_live_and_end_with_their_kernel() -> None:
    from kgw.kernels.sessions import SessionManager

    script = Script()
    registry = make_registry(script)
    sessions = SessionManager(registry)
    session = run(sessions.create("a.ipynb", "a", "notebook", None, "python3")).result
    assert sessions.find_by_path("a.ipynb") is session
    assert sessions.model(session)["kernel"]["id"] == session.kernel_id
    other = run(sessions.update(session.id, "b.ipynb", None, None, None, "python3")).result
    assert other.path == "b.ipynb"
    assert len(registry.list()) == 1, "the old kernel no session uses is shut down"
    run(sessions.delete(session.id))
    assert registry.list() == []
    assert sessions.list() == []


# --- supervision: deaths noticed, pooled kernels replaced, idle kernels culled ---------------


def supervised(script: Script, **settings: Any) -> tuple[KernelRegistry, Any, Clock]:
    from kgw.kernels.supervisor import KernelSupervisor

    registry = make_registry(script, **settings)
    clock: Clock = registry._clock  # type: ignore[assignment]
    supervisor = KernelSupervisor(registry, clock, GatewayConfig(**settings))
    supervisor.start()
    return registry, supervisor, clock


def test_supervision_restarts_a_kernel_that_died_on_its_next_look() -> None:
    script = Script()
    registry, supervisor, clock = supervised(script)
    kernel = started(registry)
    die(kernel)
    clock.advance(1.0)
    assert kernel.lifecycle.state is State.RESTARTING
    assert kernel.bridge.statuses == ["restarting"]  # type: ignore[attr-defined]
    script.restarts[0].callback(None)
    assert kernel.lifecycle.state is State.READY
    assert kernel.bridge.statuses == ["restarting", "starting"]  # type: ignore[attr-defined]
    clock.advance(1.0)
    assert len(script.restarts) == 1, "a live kernel is left alone"
    supervisor.stop()


def test_supervision_replaces_a_pooled_kernel_that_died() -> None:
    script = Script()
    registry, supervisor, clock = supervised(script, prespawn_count=1)
    registry.refill()
    [pooled] = registry.pool.ready()
    die(pooled)
    clock.advance(1.0)
    assert pooled.lifecycle.state is State.GONE
    [replacement] = registry.pool.ready()
    assert replacement is not pooled
    supervisor.stop()


def test_idle_kernels_are_culled_by_the_reactors_clock() -> None:
    script = Script()
    registry, supervisor, clock = supervised(script, cull_idle_timeout=60, cull_interval=10)
    idle = started(registry)
    clock.advance(50)
    busy = started(registry)  # started later: active more recently
    clock.advance(20)  # idle: 70 s; busy: 20 s
    assert registry.list() == [busy]
    assert idle.lifecycle.state is State.GONE
    assert idle.stop_reason.startswith("culled: idle 70s (limit 60s)")
    supervisor.stop()


# --- starting: retries, failures, startup checks ---------------------------------------------


def test_a_kernel_that_exits_while_starting_is_started_again_with_new_ports() -> None:
    script = Script()
    registry = make_registry(script)
    script.ready.append(KernelExited("exited"))
    kernel = started(registry)
    assert [c for c in script.calls if c.endswith("_kernel")] == [
        "start_kernel",
        "shutdown_kernel",
        "start_kernel",
    ]
    assert kernel.lifecycle.state is State.READY


def test_a_kernel_that_keeps_exiting_while_starting_is_refused() -> None:
    script = Script()
    registry = make_registry(script)
    script.ready.extend([KernelExited("exited")] * 3)
    error = failure_of(run(registry.start("python3", None)))
    assert isinstance(error, KernelStartFailed)
    assert "exited while starting, 3 times" in error.message
    assert registry.list() == []


def test_a_kernel_that_cannot_be_started_is_one_clear_error() -> None:
    script = Script()
    registry = make_registry(script)
    script.start_fails = FileNotFoundError("no such interpreter")
    error = failure_of(run(registry.start("python3", None)))
    assert isinstance(error, KernelStartFailed)
    assert error.message == "Kernel python3 failed to start: no such interpreter"


def test_an_env_pool_kernel_that_refuses_the_variables_gives_way_to_a_cold_start() -> None:
    script = Script()
    registry = make_registry(script, env_pool=(("python3", 1),))
    registry.refill()
    [pooled] = registry.env_pool.ready()
    script.replies.append({"status": "error", "ename": "OSError", "evalue": "read-only"})
    kernel = run(registry.start("python3", {"KERNEL_USERNAME": "erin"})).result
    assert kernel is not pooled
    assert pooled.lifecycle.state is State.GONE
    assert kernel.env["KERNEL_USERNAME"] == "erin"


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"default_kernel_name": "cobol"}, "--default-kernel-name: no kernelspec named 'cobol'"),
        ({"pool": (("cobol", 1),)}, "--pool: no kernelspec named 'cobol'"),
        ({"env_pool": (("rlang", 1),)}, "'rlang' is a R kernelspec"),
    ],
)
def test_kernelspec_names_are_checked_at_startup(settings: dict[str, Any], said: str) -> None:
    from kgw.errors import ConfigError

    registry = make_registry(Script(), **settings)
    with pytest.raises(ConfigError, match=said):
        registry.check_kernel_names()


def test_shutdown_all_stops_client_and_pooled_kernels() -> None:
    script = Script()
    registry = make_registry(script, prespawn_count=1, env_pool=(("python3", 1),))
    registry.refill()
    kernels = [started(registry), *registry.pool.ready(), *registry.env_pool.ready()]
    assert len(kernels) == 3
    assert run(registry.shutdown_all()).called
    assert {k.lifecycle.state for k in kernels} == {State.GONE}
    assert registry.list() == []


def test_supervision_does_not_restart_a_kernel_restarted_while_it_asked() -> None:
    """The pidfd saw the death first and the kernel is back; the poll's late answer about
    the old process must not restart it a second time."""
    script = Script()
    registry, supervisor, clock = supervised(script)
    kernel = started(registry)
    late: Deferred[bool] = Deferred()
    script.alive_answers.append(late)
    clock.advance(1.0)  # supervision asks about the old process
    die(kernel)
    run(registry.revive(kernel))  # the pidfd's way, meanwhile
    script.restarts[0].callback(None)
    assert kernel.lifecycle.state is State.READY
    late.callback(False)  # the old process was dead, indeed
    assert kernel.lifecycle.state is State.READY
    assert len(script.restarts) == 1
    supervisor.stop()
