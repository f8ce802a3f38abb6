"""Warm pool, seed notebook, supervision and culling, with real kernels."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path

import psutil
import pytest

from tests.integration.harness import Gateway, KernelSocket, stream_text
from tests.integration.test_lifecycle import run_twistd

POOL_READY = re.compile(r"pool: (\d+) kernels ready")


def write_notebook(path: Path, *cells: str) -> Path:
    notebook = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# seed"]},
            *(
                {
                    "cell_type": "code",
                    "metadata": {},
                    "source": source,
                    "outputs": [],
                    "execution_count": None,
                }
                for source in cells
            ),
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook))
    return path


def kernel_pid(ks: KernelSocket) -> int:
    _, iopub = ks.execute("import os; print(os.getpid())")
    return int(stream_text(iopub))


def assert_gone(pid: int) -> None:
    try:
        psutil.Process(pid).wait(30)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        raise AssertionError(f"kernel process {pid} is still running") from None


def statuses_until(ks: KernelSocket, final: set[str]) -> list[str]:
    """Status messages from the first 'restarting' on, until one of ``final``."""
    seen: list[str] = []
    for message in ks.messages():
        if message["msg_type"] != "status":
            continue
        state = message["content"]["execution_state"]
        if state in ("restarting", "dead") or seen:
            seen.append(state)
            if state in final:
                return seen
    raise AssertionError("unreachable")


def test_warm_pool_hands_out_a_kernel_started_before_the_request(tmp_path: Path) -> None:
    seed = write_notebook(tmp_path / "seed.ipynb", "import math\nanswer = 6 * 7", "seeded = True")
    with Gateway("--list-kernels", "--prespawn-count", "2", "--seed-uri", str(seed)) as gw:
        assert gw.wait_for_line(POOL_READY, 120).group(1) == "2"
        pooled = {p.pid: p.create_time() for p in gw.kernel_processes()}
        # Pooled kernels are not listed until handed out.
        assert gw.request("GET", "api/kernels").json() == []
        kernel_id = gw.start_kernel()
        with gw.connect(kernel_id) as ks:
            pid = kernel_pid(ks)
            assert pid in pooled, "the kernel was started for this request, not taken from the pool"
            _, iopub = ks.execute("print(answer, seeded, math.pi > 3)")
            assert stream_text(iopub) == "42 True True\n"
        assert [k["id"] for k in gw.request("GET", "api/kernels").json()] == [kernel_id]
        # A restart on request runs the seed again, in the new process.
        assert gw.request("POST", f"api/kernels/{kernel_id}/restart", json={}).status_code == 200
        with gw.connect(kernel_id) as ks:
            assert kernel_pid(ks) != pid
            _, iopub = ks.execute("print(answer)")
            assert stream_text(iopub) == "42\n"
        gw.remember_kernels()
        # A replacement is started at once.
        gw.wait_for_line(re.compile(r"pool: kernel \S+ \(python3\) ready"), 120)
        # A request with env is not served from the pool: it gets its own kernel.
        own = gw.start_kernel(env={"KERNEL_USERNAME": "ada"})
        with gw.connect(own) as ks:
            assert kernel_pid(ks) not in pooled
            _, iopub = ks.execute("print('answer' in dir())")
            assert stream_text(iopub) == "True\n", "the seed runs in every new kernel"


def test_pool_counts_toward_the_limit_and_gives_way_to_clients(tmp_path: Path) -> None:
    with Gateway("--list-kernels", "--max-kernels", "2", "--prespawn-count", "2") as gw:
        gw.wait_for_line(POOL_READY, 120)
        first = gw.start_kernel()
        second = gw.start_kernel(env={})  # not from the pool: a pooled kernel gives way
        ids = {k["id"] for k in gw.request("GET", "api/kernels").json()}
        assert ids == {first, second}
        refused = gw.request("POST", "api/kernels", json={})
        assert refused.status_code == 403
        gw.remember_kernels()
        # Never more kernel processes than the limit.
        assert len(gw.kernel_processes()) <= 2


@pytest.mark.parametrize(
    ("last_cell", "said"),
    [
        ("raise ValueError('no data')", "seed cell 2 failed: ValueError: no data"),
        # Noticed by the liveness check while the cell runs, not after its 300 s timeout.
        ("import os\nos._exit(3)", "seed cell 2: the kernel exited while running it"),
    ],
    ids=["raises", "ends the kernel"],
)
def test_failing_seed_stops_startup_naming_the_cell(
    tmp_path: Path, last_cell: str, said: str
) -> None:
    seed = write_notebook(tmp_path / "bad.ipynb", "x = 1", last_cell)
    result = run_twistd("--port", "0", "--seed-uri", seed.as_uri())
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    # One line on stderr, naming the setting; nothing ever listened.
    assert result.stderr == f"kernelgateway: --seed-uri {seed.as_uri()!r}: {said}\n"
    assert "listening" not in output
    assert "all kernels shut down" in output


def test_unreadable_seed_stops_startup_in_one_line(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.ipynb")
    result = run_twistd("--port", "0", env={"KG_SEED_URI": missing})
    assert result.returncode == 1
    assert result.stderr == (
        f"kernelgateway: KG_SEED_URI {missing!r}: cannot read it: No such file or directory\n"
    )


def test_killed_kernel_is_restarted_in_place_and_keeps_its_websocket(tmp_path: Path) -> None:
    seed = write_notebook(tmp_path / "seed.ipynb", "seeded = 'yes'")
    with Gateway("--list-kernels", "--seed-uri", str(seed)) as gw:
        kernel_id = gw.start_kernel()
        with gw.connect(kernel_id) as ks:
            old_pid = kernel_pid(ks)
            os.kill(old_pid, signal.SIGKILL)
            assert statuses_until(ks, {"restarting"}) == ["restarting"]
            # Code sent while the kernel restarts runs once it is back and seeded again.
            reply, iopub = ks.execute("print(seeded)")
            assert reply["content"]["status"] == "ok"
            assert stream_text(iopub) == "yes\n", "the seed runs again after a restart"
            assert kernel_pid(ks) != old_pid
        model = gw.request("GET", f"api/kernels/{kernel_id}").json()
        assert model["execution_state"] == "idle"
        gw.remember_kernels()


def test_crash_loop_ends_in_dead(tmp_path: Path) -> None:
    with Gateway("--list-kernels", "--restart-limit", "2", "--restart-window", "120") as gw:
        kernel_id = gw.start_kernel()
        with gw.connect(kernel_id) as ks:
            seen: list[str] = []
            for _ in range(3):
                gw.remember_kernels()
                if seen and seen[-1] == "dead":
                    break
                ks.send_execute("import os; os._exit(1)")
                seen += statuses_until(ks, {"idle", "dead"})
            assert seen.count("restarting") == 2
            assert seen[-1] == "dead"
            model = gw.request("GET", f"api/kernels/{kernel_id}").json()
            assert model["execution_state"] == "dead"
            assert gw.leftover_kernels() == [], "a dead kernel uses no process"
        # A dead kernel can be restarted on request.
        restarted = gw.request("POST", f"api/kernels/{kernel_id}/restart", json={})
        assert restarted.status_code == 200
        assert restarted.json()["execution_state"] == "idle"
        gw.remember_kernels()


def test_culling_removes_idle_kernels_and_keeps_connected_and_busy_ones() -> None:
    with Gateway("--list-kernels", "--cull-idle-timeout", "2", "--cull-interval", "1") as gw:
        idle = gw.start_kernel()
        with gw.connect(idle) as ks:
            idle_pid = kernel_pid(ks)
        connected = gw.start_kernel()
        busy = gw.start_kernel()
        with gw.connect(busy) as ks:
            ks.send_execute("import time; time.sleep(30)")
            for message in ks.messages():
                if message["content"].get("execution_state") == "busy":
                    break
        with gw.connect(connected) as ks:
            gw.wait_for_line(re.compile(rf"kernel {idle} \(python3\) shut down \(culled: idle"), 60)
            listed = {k["id"] for k in gw.request("GET", "api/kernels").json()}
            assert listed == {connected, busy}
            ks.execute("pass")
        assert gw.request("GET", f"api/kernels/{idle}").status_code == 404
        assert_gone(idle_pid)


def test_culling_connected_and_busy_when_told_to() -> None:
    with Gateway(
        "--list-kernels",
        "--cull-idle-timeout",
        "2",
        "--cull-interval",
        "1",
        "--cull-connected",
        "--cull-busy",
    ) as gw:
        connected = gw.start_kernel()
        busy = gw.start_kernel()
        with gw.connect(busy) as ks:
            ks.send_execute("import time; time.sleep(60)")
        with gw.connect(connected):
            gw.wait_for_line(
                re.compile(rf"kernel {connected} \(python3\) shut down \(culled: idle"), 60
            )
            gw.wait_for_line(re.compile(rf"kernel {busy} \(python3\) shut down \(culled: idle"), 60)
        assert gw.request("GET", "api/kernels").json() == []


# A kernel that exits at once the first ``fails`` times it is started (as one does when
# another process took one of its ports), then starts for real.
FLAKY_KERNEL = """\
import pathlib, sys
counter = pathlib.Path(sys.argv[1])
starts = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(starts + 1))
if starts < int(sys.argv[2]):
    sys.exit(3)
from ipykernel import kernelapp
kernelapp.launch_new_instance(argv=sys.argv[3:])
"""


def flaky_kernelspec(tmp_path: Path, fails: int) -> dict[str, str]:
    script = tmp_path / "flaky_kernel.py"
    script.write_text(FLAKY_KERNEL)
    spec_dir = tmp_path / "kernels" / "flaky"
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, str(script), str(tmp_path / "starts"), str(fails)]
    spec = {
        "argv": [*argv, "-f", "{connection_file}"],
        "display_name": "Flaky Python",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return {"JUPYTER_PATH": str(tmp_path) + os.pathsep + os.environ.get("JUPYTER_PATH", "")}


def test_a_kernel_that_exits_while_starting_is_started_again(tmp_path: Path) -> None:
    with Gateway(env=flaky_kernelspec(tmp_path, fails=2)) as gw:
        response = gw.request("POST", "api/kernels", json={"name": "flaky"})
        gw.remember_kernels()
        assert response.status_code == 201, response.text
        with gw.connect(response.json()["id"]) as ks:
            reply, _ = ks.execute("pass")
            assert reply["content"]["status"] == "ok"
        assert (tmp_path / "starts").read_text() == "3"
    assert "exited while starting (exit code 3); starting it again" in gw.log


def test_a_kernel_that_always_exits_fails_the_request_and_says_so(tmp_path: Path) -> None:
    with Gateway(env=flaky_kernelspec(tmp_path, fails=10)) as gw:
        response = gw.request("POST", "api/kernels", json={"name": "flaky"})
        gw.remember_kernels()
        assert response.status_code == 500
        assert response.json()["reason"] == "Kernel Start Failed"
        assert "exited while starting, 3 times (last exit code 3)" in response.json()["message"]
        assert (tmp_path / "starts").read_text() == "3"
        assert gw.leftover_kernels() == []


def test_delete_during_an_automatic_restart_waits_for_it_and_shuts_down() -> None:
    with Gateway("--list-kernels") as gw:
        kernel_id = gw.start_kernel()
        with gw.connect(kernel_id) as ks:
            old_pid = kernel_pid(ks)
            os.kill(old_pid, signal.SIGKILL)
            assert statuses_until(ks, {"restarting"}) == ["restarting"]
            gw.remember_kernels()
            response = gw.request("DELETE", f"api/kernels/{kernel_id}")
            gw.remember_kernels()
        assert response.status_code == 204
        assert gw.request("GET", "api/kernels").json() == []
        gw.wait_for_line(re.compile(rf"kernel {kernel_id} \(python3\) shut down"), 60)
        assert gw.leftover_kernels() == []
    assert "Traceback" not in gw.log
    assert "critical" not in gw.log.lower()


def test_a_kernel_that_dies_again_while_restarting_counts_as_another_death(
    tmp_path: Path,
) -> None:
    env = flaky_kernelspec(tmp_path, fails=10)
    counter = tmp_path / "starts"
    counter.write_text("10")  # the first start succeeds; after the reset below, none does
    options = ("--list-kernels", "--restart-limit", "3", "--restart-window", "120")
    with Gateway(*options, env=env) as gw:
        response = gw.request("POST", "api/kernels", json={"name": "flaky"})
        gw.remember_kernels()
        assert response.status_code == 201, response.text
        kernel_id = response.json()["id"]
        with gw.connect(kernel_id) as ks:
            pid = kernel_pid(ks)
            counter.write_text("0")
            os.kill(pid, signal.SIGKILL)
            assert statuses_until(ks, {"dead", "idle"}) == ["restarting", "starting"] * 3 + ["dead"]
        assert counter.read_text() == "3"
        model = gw.request("GET", f"api/kernels/{kernel_id}").json()
        assert model["execution_state"] == "dead"
        assert gw.leftover_kernels() == []
    assert "3 restarts in 120" in gw.log


def test_requests_sent_right_after_the_kernel_died_are_not_lost() -> None:
    """Issue 13, sequence 6: what clients send in the moment after a kernel died, before the
    gateway noticed, reached the dead kernel's sockets. None of it may vanish: each request
    runs in the restarted kernel, in order, or (only the oldest, which the dead kernel may
    have begun) is answered with a gateway_error rather than run twice."""
    with Gateway("--list-kernels") as gw:
        kernel_id = gw.start_kernel()
        with gw.connect(kernel_id) as ks:
            pid = kernel_pid(ks)
            os.kill(pid, signal.SIGKILL)
            # At once: these reach the dead sockets unless the gateway was quicker.
            sent = [ks.send_execute(f"print('after death', {n})") for n in range(5)]
            answers: dict[str, str] = {}
            printed: list[str] = []
            for message in ks.messages():
                parent = message["parent_header"].get("msg_id")
                if parent not in sent:
                    continue
                if message["msg_type"] == "stream":
                    printed.append(message["content"]["text"])
                elif message["msg_type"] in ("execute_reply", "gateway_error"):
                    answers[parent] = message["msg_type"]
                    if len(answers) == len(sent):
                        break
        refused = [msg_id for msg_id in sent if answers[msg_id] == "gateway_error"]
        assert refused in ([], sent[:1]), answers
        ran = [n for n, msg_id in enumerate(sent) if answers[msg_id] == "execute_reply"]
        assert printed == [f"after death {n}\n" for n in ran], "in the order sent"
    # Seen at once, from the kernel's pidfd, not a second later by the poll.
    assert f"kernel {kernel_id} (python3): its process exited" in gw.log
