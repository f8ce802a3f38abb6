"""The eight workloads: what each reports, and the goals kgw has to meet.

A workload is an async generator that starts what it needs on a target and yields one row
of metric values per repetition. A goal looks at every target's values of the whole run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from benchmarks.goals import Check, at_most, every, rate, sockets_per_kernel, within
from benchmarks.latency import execute_round_trip, kernel_start, pooled_kernel_start
from benchmarks.scale import idle_scale, many_kernels
from benchmarks.sizes import Sizes
from benchmarks.streams import binary_protocol, fan_out, output_streams
from benchmarks.targets import Target

Row = dict[str, float | None]


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str = ""
    digits: int = 1
    goal: str = ""  # kgw's target, for people
    check: Check | None = None  # None when there is no goal or nothing to judge
    shown: bool = True  # False: in the JSON only (flags that goals read)


@dataclass(frozen=True)
class Workload:
    number: int
    key: str
    title: str
    run: Callable[[Target, Sizes, int], AsyncIterator[Row]]
    metrics: tuple[Metric, ...]
    # A fresh gateway for every repetition, when one repetition changes what the next sees
    # (memory freed by closed connections makes the next repetition's RSS growth look free).
    fresh_per_repetition: bool = False
    # Kernels the gateways are told to prespawn (--prespawn-count, KG_PRESPAWN_COUNT).
    pool: int = 0


POOL_SIZE = 2


def _kernel_start_metrics() -> tuple[Metric, ...]:
    return (
        Metric("ready_p50_ms", "request to kernel_info_reply p50", "ms", 0),
        Metric("ready_p95_ms", "request to kernel_info_reply p95", "ms", 0),
        Metric("post_p50_ms", "POST /api/kernels answered p50", "ms", 0),
    )


def _stream_metrics(workload: str) -> tuple[Metric, ...]:
    return (
        Metric(
            "lines_msgs_s",
            "lines: lines/s (one message each)",
            "lines/s",
            0,
            ">= 90% of floor, all delivered",
            rate(workload, "lines_msgs_s", "lines_complete"),
        ),
        Metric(
            "lines_delivered",
            "lines: delivered intact, in order",
            "",
            0,
            "every one",
            every(workload, "lines_delivered", lambda s: s.lines),
        ),
        Metric(
            "chunks_mb_s",
            "1 MB chunks: MB/s",
            "MB/s",
            1,
            ">= 90% of floor, all delivered",
            rate(workload, "chunks_mb_s", "chunks_complete"),
        ),
        Metric(
            "chunks_delivered",
            "1 MB chunks: messages delivered",
            "",
            0,
            "every one",
            every(workload, "chunks_delivered", lambda s: s.chunks),
        ),
        Metric("chunks_delivered_mb", "1 MB chunks: MB delivered", "MB", 1),
        Metric("lines_gateway_cpu_s", "lines: gateway CPU", "s", 2),
        Metric("chunks_gateway_cpu_s", "1 MB chunks: gateway CPU", "s", 2),
        Metric("notices", "rate-limit notices (stderr)", "", 0),
        Metric("lines_complete", "lines complete", shown=False),
        Metric("chunks_complete", "chunks complete", shown=False),
    )


def _round_trip_metrics(workload: str) -> tuple[Metric, ...]:
    return (
        Metric(
            "rtt_p50_ms",
            "execute round trip p50",
            "ms",
            2,
            "<= floor + 0.5 ms",
            within(workload, "rtt_p50_ms", 0.5, (workload, "rtt_p50_ms", "floor")),
        ),
        Metric("rtt_p99_ms", "execute round trip p99", "ms", 2),
    )


ROUND_TRIP_CPU = Metric("rtt_gateway_cpu_ms", "gateway CPU per execute", "ms", 2)


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        1,
        "round_trip",
        "Execute round trip",
        execute_round_trip,
        (*_round_trip_metrics("round_trip"), ROUND_TRIP_CPU),
    ),
    Workload(2, "streams", "Output stream (JSON)", output_streams, _stream_metrics("streams")),
    Workload(
        3,
        "binary",
        "Binary protocol (v1)",
        binary_protocol,
        (
            *_round_trip_metrics("binary"),
            *_stream_metrics("binary"),
            Metric(
                "buffers_mb_s",
                "display_data 1 MB buffers: MB/s",
                "MB/s",
                1,
                ">= 90% of floor, all intact",
                rate("binary", "buffers_mb_s", "buffers_complete"),
            ),
            Metric("buffers_intact", "buffers intact", "", 0),
            Metric("buffers_gateway_cpu_s", "buffers: gateway CPU", "s", 2),
            Metric("buffers_complete", "buffers complete", shown=False),
        ),
    ),
    Workload(
        4,
        "fan_out",
        "Fan-out",
        fan_out,
        (
            Metric("aggregate_mb_s", "aggregate MB/s", "MB/s", 1),
            Metric("aggregate_msgs_s", "aggregate messages/s", "msg/s", 0),
            Metric(
                "clients_complete",
                "clients that got every message",
                "",
                0,
                "all clients",
                every("fan_out", "clients_complete", lambda s: s.fanout_clients),
            ),
            Metric("min_delivered", "fewest messages a client got", "", 0),
            Metric("gateway_cpu_s", "gateway CPU", "s", 2),
            Metric("gateway_cpu_pct", "gateway CPU / wall time", "%", 0),
        ),
    ),
    Workload(
        5,
        "many_kernels",
        "Many kernels",
        many_kernels,
        (
            Metric("executes_s", "executes/s", "1/s", 0),
            Metric("p50_ms", "execute latency p50", "ms", 1),
            Metric("p99_ms", "execute latency p99", "ms", 1),
            Metric("lost", "lost replies", "", 0, "0", at_most("many_kernels", "lost", 0)),
            Metric(
                "misrouted",
                "misrouted replies",
                "",
                0,
                "0",
                at_most("many_kernels", "misrouted", 0),
            ),
            Metric("gateway_rss_mb", "gateway peak RSS", "MiB", 0),
        ),
    ),
    Workload(
        6,
        "idle_scale",
        "Idle scale",
        idle_scale,
        (
            Metric(
                "opened",
                "websockets open",
                "",
                0,
                "all",
                every("idle_scale", "opened", lambda s: s.idle_connections),
            ),
            Metric(
                "rss_per_conn_kib",
                "gateway RSS per connection",
                "KiB",
                1,
                "<= 64 KiB",
                at_most("idle_scale", "rss_per_conn_kib", 64),
            ),
            Metric("zmq_before", "ZeroMQ connections to kernels, before", "", 0),
            Metric(
                "zmq_after",
                "ZeroMQ connections to kernels, with all open",
                "",
                0,
                "= before (per kernel)",
                sockets_per_kernel,
            ),
            Metric("fds_before", "gateway fds, before", "", 0),
            Metric("fds_after", "gateway fds, with all open", "", 0),
            Metric(
                "rtt_p50_ms",
                "one more client (kernel shared with idle ones): round trip p50",
                "ms",
                2,
                "<= workload 1 + 2 ms",
                within("idle_scale", "rtt_p50_ms", 2.0, ("round_trip", "rtt_p50_ms", "kgw")),
            ),
            Metric("rtt_p99_ms", "one more client (kernel shared): round trip p99", "ms", 2),
            Metric(
                "rtt_gateway_cpu_ms",
                "one more client (kernel shared): gateway CPU/execute",
                "ms",
                2,
            ),
            Metric(
                "rtt_failed",
                "one more client (kernel shared): not served",
                "",
                0,
                "0",
                at_most("idle_scale", "rtt_failed", 0),
            ),
            Metric(
                "rtt_own_p50_ms",
                "one more client (kernel of its own): round trip p50",
                "ms",
                2,
                "<= workload 1 + 2 ms",
                within("idle_scale", "rtt_own_p50_ms", 2.0, ("round_trip", "rtt_p50_ms", "kgw")),
            ),
            Metric("rtt_own_failed", "one more client (kernel of its own): not served", "", 0),
        ),
        fresh_per_repetition=True,
    ),
    Workload(
        7,
        "kernel_start",
        "Kernel start (cold)",
        kernel_start,
        _kernel_start_metrics(),
    ),
    Workload(
        8,
        "kernel_start_pool",
        f"Kernel start from a pool of {POOL_SIZE}",
        pooled_kernel_start,
        _kernel_start_metrics(),
        pool=POOL_SIZE,
    ),
)


def select(names: str | None) -> list[Workload]:
    """Workloads by number or key, comma-separated; all when ``names`` is empty."""
    if not names:
        return list(WORKLOADS)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    chosen: list[Workload] = []
    for name in wanted:
        matches = [w for w in WORKLOADS if name in (str(w.number), w.key)]
        if not matches:
            known = ", ".join(f"{w.number}/{w.key}" for w in WORKLOADS)
            raise ValueError(f"unknown workload {name!r} (known: {known})")
        chosen.extend(m for m in matches if m not in chosen)
    return sorted(chosen, key=lambda w: w.number)
