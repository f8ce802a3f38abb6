"""GatewayKernelManager: configuration, and the lifecycle over a fake REST API (no sockets)."""

from __future__ import annotations

import asyncio
import signal
import ssl
from typing import Any

import pytest
from traitlets import TraitError
from traitlets.config import Config

from kgw.channels.wire import V1_SUBPROTOCOL
from kgw.client import (
    AsyncGatewayKernelClient,
    AsyncGatewayKernelManager,
    GatewayError,
    GatewayKernelClient,
    GatewayKernelManager,
    GatewaySettings,
    KernelDied,
)
from kgw.client.rest import KernelsAPI, Model


class FakeAPI(KernelsAPI):
    """The gateway's kernels, in memory."""

    def __init__(self, settings: GatewaySettings) -> None:
        super().__init__(settings)
        self.kernels: dict[str, Model] = {}
        self.calls: list[tuple[str, ...]] = []

    def start(self, name: str | None, env: dict[str, str]) -> Model:
        kernel_id = f"k{len(self.kernels) + 1}"
        self.calls.append(("start", name or "", *[f"{k}={v}" for k, v in sorted(env.items())]))
        self.kernels[kernel_id] = {"id": kernel_id, "name": name or "python3"}
        self.kernels[kernel_id]["execution_state"] = "idle"
        return self.kernels[kernel_id]

    def get(self, kernel_id: str) -> Model:
        if kernel_id not in self.kernels:
            raise KernelDied(kernel_id, "Kernel does not exist")
        return self.kernels[kernel_id]

    def delete(self, kernel_id: str) -> bool:
        self.calls.append(("delete", kernel_id))
        return self.kernels.pop(kernel_id, None) is not None

    def interrupt(self, kernel_id: str) -> None:
        self.calls.append(("interrupt", self.get(kernel_id)["id"]))

    def restart(self, kernel_id: str) -> Model:
        self.calls.append(("restart", kernel_id))
        return self.get(kernel_id)


class FakeGatewayManager(GatewayKernelManager):
    api: FakeAPI | None = None

    def kernels_api(self) -> KernelsAPI:
        if self.api is None:
            self.api = FakeAPI(self.gateway_settings())
        return self.api


def test_defaults_come_from_jupyter_servers_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_GATEWAY_URL", "https://gw.example:8443/kg")
    monkeypatch.setenv("JUPYTER_GATEWAY_AUTH_TOKEN", "s3cret")
    monkeypatch.setenv("JUPYTER_GATEWAY_VALIDATE_CERT", "no")
    monkeypatch.setenv("JUPYTER_GATEWAY_REQUEST_TIMEOUT", "7.5")
    settings = GatewayKernelManager().gateway_settings()
    assert settings.url == "https://gw.example:8443/kg/"
    assert settings.ws_url == "wss://gw.example:8443/kg/"
    assert settings.http_headers() == {"Authorization": "token s3cret"}
    assert settings.request_timeout == 7.5
    assert settings.ssl_context.verify_mode == ssl.CERT_NONE


def test_traits_beat_the_environment_and_tls_verifies_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JUPYTER_GATEWAY_URL", "http://from-env:1/")
    config = Config()
    config.GatewayKernelManager.url = "https://from-config:2"
    config.GatewayKernelManager.ws_url = "wss://elsewhere:3/ws"
    config.GatewayKernelManager.headers = {"X-Tenant": "t1"}
    config.GatewayKernelManager.offer_v1 = False
    settings = GatewayKernelManager(config=config).gateway_settings()
    assert (settings.url, settings.ws_url) == ("https://from-config:2/", "wss://elsewhere:3/ws/")
    assert settings.http_headers() == {"X-Tenant": "t1"}
    assert settings.subprotocols == ()
    assert settings.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert settings.ssl_context.check_hostname
    assert (
        settings.channels_url("k 1", "s1")
        == "wss://elsewhere:3/ws/api/kernels/k%201/channels?session_id=s1"
    )
    assert GatewayKernelManager(url="http://x").gateway_settings().subprotocols == (V1_SUBPROTOCOL,)


def test_a_url_that_is_not_http_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUPYTER_GATEWAY_URL", raising=False)
    with pytest.raises(TraitError):
        GatewayKernelManager(url="ftp://gateway")
    with pytest.raises(GatewayError, match="JUPYTER_GATEWAY_URL"):
        GatewayKernelManager().gateway_settings()


def test_start_sends_the_kernel_name_and_only_kernel_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KERNEL_USERNAME", "ada")
    monkeypatch.setenv("SECRET_TOKEN", "do-not-send")
    km = FakeGatewayManager(url="http://gw", kernel_name="python3", env={"EXTRA": "1"})
    km.start_kernel(cwd="/local/dir", extra_arguments=["--x"], env={"KERNEL_X": "y", "HOME": "/"})
    assert km.api is not None
    assert km.api.calls == [("start", "python3", "EXTRA=1", "KERNEL_USERNAME=ada", "KERNEL_X=y")]
    assert km.kernel_id == "k1"
    assert km.has_kernel
    with pytest.raises(GatewayError, match="already has kernel k1"):
        km.start_kernel()


def test_the_lifecycle_maps_to_rest_calls() -> None:
    km = FakeGatewayManager(url="http://gw")
    assert not km.has_kernel and not km.is_alive()
    with pytest.raises(RuntimeError, match="No kernel is running"):
        km.interrupt_kernel()
    km.start_kernel()
    assert km.is_alive()
    km.interrupt_kernel()
    km.signal_kernel(signal.SIGINT)
    with pytest.raises(GatewayError, match="only SIGINT"):
        km.signal_kernel(signal.SIGTERM)
    km.restart_kernel()
    km.shutdown_kernel(now=True)
    assert not km.has_kernel and not km.is_alive()
    km.shutdown_kernel()  # nothing left to do
    assert km.api is not None
    assert [c[0] for c in km.api.calls] == [
        "start",
        "interrupt",
        "interrupt",
        "restart",
        "delete",
    ]


def test_a_dead_kernel_is_not_alive_and_cleanup_deletes_it() -> None:
    km = FakeGatewayManager(url="http://gw")
    km.start_kernel()
    assert km.api is not None
    km.api.kernels["k1"]["execution_state"] = "dead"
    assert not km.is_alive()
    km.cleanup_resources()
    assert km.api.kernels == {}
    assert not km.has_kernel


def test_a_kernel_deleted_elsewhere_is_not_alive() -> None:
    km = FakeGatewayManager(url="http://gw")
    km.start_kernel()
    assert km.api is not None
    km.api.kernels.clear()
    assert not km.is_alive()


def test_clients_get_the_kernel_the_session_and_the_settings() -> None:
    km = FakeGatewayManager(url="http://gw", auth_token="t")
    with pytest.raises(GatewayError, match="start_kernel"):
        km.client()
    km.start_kernel()
    kc = km.client()
    assert isinstance(kc, GatewayKernelClient)
    assert (kc.kernel_id, kc.parent, kc.session) == ("k1", km, km.session)
    assert kc.settings == km.gateway_settings()


def test_the_async_manager_is_a_coroutine_api_with_an_async_client() -> None:
    class FakeAsyncManager(AsyncGatewayKernelManager):
        api: FakeAPI | None = None

        def kernels_api(self) -> KernelsAPI:
            if self.api is None:
                self.api = FakeAPI(self.gateway_settings())
            return self.api

    async def scenario() -> Any:
        km = FakeAsyncManager(url="http://gw")
        await km.start_kernel()
        assert await km.is_alive()
        kc = km.client()
        await km.shutdown_kernel()
        assert not await km.is_alive()
        return kc

    assert isinstance(asyncio.run(scenario()), AsyncGatewayKernelClient)


def test_gateway_options_configure_both_managers_and_the_flavour_wins() -> None:
    config = Config()
    config.GatewayOptions.url = "http://shared:1"
    config.GatewayOptions.reconnect_attempts = 9
    config.AsyncGatewayKernelManager.url = "http://async-only:2"
    assert GatewayKernelManager(config=config).gateway_settings().url == "http://shared:1/"
    async_settings = AsyncGatewayKernelManager(config=config).gateway_settings()
    assert async_settings.url == "http://async-only:2/"
    assert async_settings.retry.attempts == 9
