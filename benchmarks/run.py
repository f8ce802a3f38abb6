"""Benchmark kgw against jupyter_kernel_gateway and ZeroMQ straight to the kernel.

    python benchmarks/run.py            # everything (about 11 minutes on 2 cores)
    python benchmarks/run.py --smoke    # a tiny version of everything, no goals judged
    python benchmarks/run.py --workloads 1,streams --targets floor,kgw --repeat 5

Workloads run one after another, each on floor, kgw and jkg in turn; each gets a fresh
gateway, which is shut down with its kernels before the next starts. Prints a table and writes
benchmarks/results/<UTC date>-<time>.json (and latest.md after a full run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import environment, report
from benchmarks.processes import kill_everything_spawned
from benchmarks.profiling import Profiler
from benchmarks.sizes import FULL, SMOKE, Sizes
from benchmarks.targets import TARGET_NAMES, GatewayTarget, make_target
from benchmarks.workloads import WORKLOADS, Workload, select

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_REPEAT = 3
BUSY_LOAD = 1.0  # 1-minute load average above which a warning is printed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Compare kgw with jupyter_kernel_gateway and direct ZeroMQ.",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes, one repetition: checks that it all runs"
    )
    parser.add_argument(
        "--workloads",
        help="comma-separated numbers or names (" + ", ".join(w.key for w in WORKLOADS) + ")",
    )
    parser.add_argument(
        "--targets",
        default=",".join(TARGET_NAMES),
        help="comma-separated, from floor, kgw, jkg (default: all three)",
    )
    parser.add_argument(
        "--repeat", type=int, help=f"repetitions per workload (default {DEFAULT_REPEAT}, smoke 1)"
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS_DIR, help="directory for the JSON and latest.md"
    )
    parser.add_argument(
        "--profile", action="store_true", help="record each gateway with py-spy (needs ptrace)"
    )
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.sizes = SMOKE if args.smoke else FULL
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    for target in args.targets:
        if target not in TARGET_NAMES:
            parser.error(f"unknown target {target!r}")
    try:
        args.workloads = select(args.workloads)
    except ValueError as e:
        parser.error(str(e))
    if args.repeat is None:
        args.repeat = 1 if args.smoke else DEFAULT_REPEAT
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _brief(row: dict[str, float | None]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in row.items() if v is not None)


async def run_workload(
    target_name: str, workload: Workload, sizes: Sizes, args: argparse.Namespace, workdir: Path
) -> report.Outcome:
    """One workload on a fresh target (a fresh one per repetition if the workload says so)."""
    outcome = report.Outcome()
    started = time.monotonic()
    rounds, reps = (args.repeat, 1) if workload.fresh_per_repetition else (1, args.repeat)
    for _ in range(rounds):
        await _run_once(target_name, workload, sizes, reps, args, workdir, outcome)
        if outcome.error:
            break
    outcome.seconds = time.monotonic() - started
    return outcome


async def _run_once(
    target_name: str,
    workload: Workload,
    sizes: Sizes,
    reps: int,
    args: argparse.Namespace,
    workdir: Path,
    outcome: report.Outcome,
) -> None:
    """Start the target, add ``reps`` rows to ``outcome``, stop it; record errors, never raise."""
    target = make_target(target_name, workdir, workload.pool)
    profiler: Profiler | None = None
    try:
        await target.start()
        tree = target.tree
        if args.profile and tree is not None:
            stamp = datetime.now(UTC).strftime("%Y-%m-%d-%H%M%S")
            name = f"{stamp}-{target_name}-{workload.key}.pyspy.txt"
            profiler = Profiler(tree.root.pid, args.output / "profiles" / name)
        async for row in workload.run(target, sizes, reps):
            outcome.rows.append(row)
            n = len(outcome.rows)
            progress(f"  [{target_name}] {workload.number} rep {n}/{args.repeat}: {_brief(row)}")
    except Exception as e:
        detail = f"{type(e).__name__}: {e}".strip()
        if isinstance(e, TimeoutError) and not str(e):
            detail = f"TimeoutError: a repetition took longer than {sizes.timeout:.0f} s"
        if isinstance(target, GatewayTarget) and target.process is not None:
            detail += "\n--- gateway log (tail) ---\n" + target.process.log_tail(20)
        outcome.error = detail
        progress(f"  [{target_name}] {workload.number} failed: {detail.splitlines()[0]}")
    finally:
        if profiler is not None:
            outcome.profile = profiler.stop()
        try:
            outcome.leftovers += await target.stop()
        except Exception as e:
            outcome.error = outcome.error or f"stopping the target failed: {e}"


async def run_all(
    args: argparse.Namespace, sizes: Sizes, workdir: Path, results: report.Results
) -> None:
    # Workload by workload, each target in turn: load that comes and goes on the machine
    # then falls on all targets of a comparison alike.
    for workload in args.workloads:
        for target_name in args.targets:
            progress(f"[{target_name}] {workload.number} {workload.title}")
            outcome = await run_workload(target_name, workload, sizes, args, workdir)
            results.setdefault(workload.key, {})[target_name] = outcome


def document(
    args: argparse.Namespace,
    summary: dict[str, Any],
    started: datetime,
    seconds: float,
    interrupted: bool,
    load_before: tuple[float, float, float],
) -> dict[str, Any]:
    return {
        "started": started.isoformat(),
        "duration_s": round(seconds, 1),
        "interrupted": interrupted,
        # 1, 5 and 15 minute load averages: anything else busy makes the numbers noisy
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "command": ["python", "benchmarks/run.py", *args.argv],
        "smoke": args.smoke,
        "repeat": args.repeat,
        "targets": args.targets,
        "sizes": vars(args.sizes),
        "machine": environment.machine_info(),
        "workloads": summary,
    }


def write_results(
    args: argparse.Namespace,
    results: report.Results,
    started: datetime,
    seconds: float,
    interrupted: bool,
    load_before: tuple[float, float, float],
) -> Path:
    """Print the table, write the JSON (and latest.md after a full run); return the JSON."""
    ran = [w for w in args.workloads if w.key in results]
    summary = report.summarize(ran, results, args.sizes, judge=not args.smoke)
    stamp = started.strftime("%Y-%m-%d-%H%M%S") + ("-smoke" if args.smoke else "")
    path: Path = args.output / f"{stamp}.json"
    data = document(args, summary, started, seconds, interrupted, load_before)
    report.write_json(path, data)
    print(report.render_text(ran, summary))
    complete = not interrupted and len(ran) == len(WORKLOADS) and len(args.targets) == 3
    if complete and not args.smoke:
        machine = data["machine"]
        markdown = (
            f"Benchmark of {started:%Y-%m-%d %H:%M} UTC: `python benchmarks/run.py` on "
            f"{machine['cpu_count']} cores ({machine['cpu_model']}), Python "
            f"{machine['python']}, {args.repeat} repetitions, median "
            f"(min\N{EN DASH}max); {path.name} has every value.\n\n"
            + report.render_markdown(ran, summary)
        )
        (args.output / "latest.md").write_text(markdown, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    environment.raise_file_limit()
    if "jkg" in args.targets:
        environment.jkg_executable(progress)
    kernelspecs = environment.install_kernelspec()
    load_before = os.getloadavg()
    if load_before[0] > BUSY_LOAD:
        progress(
            f"warning: load average {load_before[0]:.1f} before starting: something else is "
            "using the CPUs, and the numbers will be noisy"
        )
    workdir = Path(tempfile.mkdtemp(prefix="kgw-bench-logs-"))
    started = datetime.now(UTC)
    clock = time.monotonic()
    results: report.Results = {}
    interrupted = False
    try:
        asyncio.run(run_all(args, args.sizes, workdir, results))
    except KeyboardInterrupt:
        interrupted = True
        progress("interrupted: stopping everything")
    finally:
        kill_everything_spawned()
        shutil.rmtree(kernelspecs, ignore_errors=True)
    seconds = time.monotonic() - clock
    path = write_results(args, results, started, seconds, interrupted, load_before)
    progress(f"wrote {path} after {seconds:.0f} s")
    failed = any(o.error for by_target in results.values() for o in by_target.values())
    if failed:
        progress(f"gateway logs are in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 130 if interrupted else (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
