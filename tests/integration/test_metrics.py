"""/api/status and /metrics: what an operator's dashboard and Prometheus scraper read."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import KERNEL_TIMEOUT, Gateway

TOKEN = "metrics-t0ken"


def scrape(gateway: Gateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed as Prometheus parses it."""
    response = gateway.request("GET", "metrics")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def pool_full(gateway: Gateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Scrape until the pool has its one ready kernel again (the previous test took it)."""
    deadline = time.monotonic() + KERNEL_TIMEOUT
    while True:
        samples = scrape(gateway)
        if samples[("kgw_pool_kernels", (("kernel_name", "python3"),))] == 1:
            return samples
        assert time.monotonic() < deadline, "the pool was not refilled"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with Gateway("--prespawn-count", "1", token=TOKEN) as gw:
        gw.wait_for_line(re.compile("pool: 1 kernels ready"), KERNEL_TIMEOUT)
        yield gw


def test_status_has_jupyter_servers_shape_and_needs_the_token(gateway: Gateway) -> None:
    assert gateway.request("GET", "api/status", headers={"Authorization": ""}).status_code == 401
    before = gateway.request("GET", "api/status").json()
    assert set(before) == {"started", "last_activity", "connections", "kernels"}
    started = datetime.fromisoformat(before["started"])
    assert datetime.fromisoformat(before["last_activity"]) >= started
    kernel_id = gateway.start_kernel()
    try:
        with gateway.connect(kernel_id) as ws:
            ws.execute("pass")
            status = gateway.request("GET", "api/status").json()
            assert status["kernels"] == before["kernels"] + 1
            assert status["connections"] == before["connections"] + 1
            assert status["started"] == before["started"]
            assert status["last_activity"] > before["last_activity"]
    finally:
        gateway.request("DELETE", f"api/kernels/{kernel_id}")


def test_metrics_after_starting_a_kernel_and_running_code(gateway: Gateway) -> None:
    assert gateway.request("GET", "metrics", headers={"Authorization": ""}).status_code == 401
    before = pool_full(gateway)
    kernel_id = gateway.start_kernel()  # handed out by the pool
    try:
        with gateway.connect(kernel_id) as ws:
            reply, _ = ws.execute("print('x' * 1000)")
            assert reply["content"]["status"] == "ok"
            after = scrape(gateway)
            assert after[("kgw_kernels", (("state", "idle"),))] >= 1
            assert after[("kgw_websocket_connections", ())] >= 1
        restarted = gateway.request("POST", f"api/kernels/{kernel_id}/restart")
        assert restarted.status_code == 200
        final = scrape(gateway)
    finally:
        gateway.request("DELETE", f"api/kernels/{kernel_id}")

    def grew(name: str, *labels: tuple[str, str], by: float = 1) -> bool:
        key = (name, tuple(sorted(labels)))
        return final.get(key, 0) - before.get(key, 0) >= by

    pooled = ("source", "pool")
    assert grew("kgw_kernel_start_seconds_count", pooled)
    assert grew("kgw_kernel_start_seconds_bucket", pooled, ("le", "+Inf"))
    assert grew("kgw_kernel_restarts_total", ("reason", "requested"))
    to_kernel, to_clients = ("direction", "to_kernel"), ("direction", "to_clients")
    assert grew("kgw_messages_total", ("channel", "shell"), to_kernel)
    assert grew("kgw_messages_total", ("channel", "shell"), to_clients)
    # busy, execute_input, stream, idle at least
    assert grew("kgw_messages_total", ("channel", "iopub"), to_clients, by=4)
    assert grew("kgw_message_bytes_total", ("channel", "iopub"), to_clients, by=1000)
    assert ("kgw_kernel_culls_total", ()) in final
    assert ("kgw_kernel_deaths_total", ()) in final


def test_metrics_unauthenticated_opens_only_status_and_metrics() -> None:
    with Gateway("--metrics-unauthenticated", token=TOKEN) as gw:
        anonymous = {"Authorization": ""}
        assert gw.request("GET", "metrics", headers=anonymous).status_code == 200
        assert gw.request("GET", "api/status", headers=anonymous).status_code == 200
        assert gw.request("GET", "api/kernels", headers=anonymous).status_code == 401
        assert gw.request("GET", "api", headers=anonymous).status_code == 401
