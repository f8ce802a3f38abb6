"""What the gateway counts: Prometheus metrics for /metrics, and the figures of /api/status.

Per-message traffic is counted in plain integers on the relay path (a dict lookup and two
additions) and turned into Prometheus counters only when /metrics is scraped; events that
happen a few times a minute (kernel starts, restarts, culls) use prometheus_client directly.
Every gateway has its own CollectorRegistry, never the process-wide default one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kgw.channels.traffic import Traffic


class KernelsView(Protocol):
    """What the metrics read of the kernels at scrape time (the registry provides it)."""

    pool: Any
    env_pool: Any

    def list(self) -> list[Any]: ...


# Kernel start latency: a pooled kernel is handed out in milliseconds, a cold one takes
# about a second, a heavy or remote one much longer.
START_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)


class GatewayMetrics:
    """Everything /metrics reports and /api/status summarises, for one gateway."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.traffic = Traffic()
        self.started = datetime.now(UTC)
        self.kernels: KernelsView | None = None  # set by watch()
        self.kernel_start = Histogram(
            "kgw_kernel_start_seconds",
            "Time from a client's request for a kernel until it is ready, by where it came from",
            ["source"],
            buckets=START_BUCKETS,
            registry=self.registry,
        )
        self.restarts = Counter(
            "kgw_kernel_restarts",
            "Kernel restarts: requested by a client, or automatic after the kernel died",
            ["reason"],
            registry=self.registry,
        )
        self.culls = Counter("kgw_kernel_culls", "Idle kernels culled", registry=self.registry)
        self.deaths = Counter(
            "kgw_kernel_deaths",
            "Kernels declared dead after dying too often or failing to restart",
            registry=self.registry,
        )
        self.registry.register(_LiveCollector(self))

    def watch(self, kernels: KernelsView) -> None:
        self.kernels = kernels

    def observe_start(self, source: str, started: float) -> None:
        """A kernel handed to a client; ``started`` is time.monotonic() at the request."""
        self.kernel_start.labels(source).observe(time.monotonic() - started)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)

    def status(self) -> dict[str, object]:
        """jupyter_server's /api/status model."""
        kernels = self.kernels.list() if self.kernels is not None else []
        last = max((k.bridge.last_activity for k in kernels), default=self.started)
        return {
            "started": _iso(self.started),
            "last_activity": _iso(max(last, self.started)),
            "connections": sum(k.bridge.connection_count for k in kernels),
            "kernels": len(kernels),
        }


def _iso(moment: datetime) -> str:
    # jupyter_server's isoformat: microseconds and a Z for UTC.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _LiveCollector(Collector):
    """Figures read at scrape time: kernels by state, connections, pool, traffic."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        kernels = self._metrics.kernels
        by_state = GaugeMetricFamily(
            "kgw_kernels", "Kernels handed to clients, by execution state", labels=["state"]
        )
        connections = 0
        if kernels is not None:
            states: dict[str, int] = dict.fromkeys(("starting", "idle", "busy", "restarting"), 0)
            for kernel in kernels.list():
                state = "dead" if kernel.dead else kernel.bridge.execution_state
                states[state] = states.get(state, 0) + 1
                connections += kernel.bridge.connection_count
            for state, count in sorted(states.items()):
                by_state.add_metric([state], count)
        yield by_state
        yield GaugeMetricFamily(
            "kgw_websocket_connections", "Open websocket connections to kernels", connections
        )
        pool = GaugeMetricFamily(
            "kgw_pool_kernels", "Ready kernels waiting in the pool", labels=["kernel_name"]
        )
        env_pool = GaugeMetricFamily(
            "kgw_env_pool_kernels",
            "Ready kernels waiting in the env pool (for requests with an env)",
            labels=["kernel_name"],
        )
        if kernels is not None:
            for family, kept in ((pool, kernels.pool), (env_pool, kernels.env_pool)):
                ready: dict[str, int] = dict.fromkeys(kept.sizes, 0)
                for kernel in kept.ready():
                    ready[kernel.name] = ready.get(kernel.name, 0) + 1
                for name, count in sorted(ready.items()):
                    family.add_metric([name], count)
        yield pool
        yield env_pool
        messages = CounterMetricFamily(
            "kgw_messages",
            "Jupyter messages relayed, by channel and direction",
            labels=["channel", "direction"],
        )
        sizes = CounterMetricFamily(
            "kgw_message_bytes",
            "Bytes of Jupyter messages relayed (ZeroMQ frames), by channel and direction",
            labels=["channel", "direction"],
        )
        for (channel, direction), (count, size) in sorted(self._metrics.traffic.counts.items()):
            messages.add_metric([channel, direction], count)
            sizes.add_metric([channel, direction], size)
        yield messages
        yield sizes
