"""jupyter_client's KernelManager interface for a kernel that runs on a gateway.

``start_kernel()`` is ``POST /api/kernels``, ``shutdown_kernel()`` is ``DELETE``,
``restart_kernel()`` and ``interrupt_kernel()`` are the gateway's ``/restart`` and
``/interrupt``, ``is_alive()`` reads the kernel's model. ``client()`` returns a
:mod:`kgw.client.channels` client on the kernel's channels websocket. Options are traitlets,
configurable like the rest of Jupyter, with defaults from jupyter_server's
``JUPYTER_GATEWAY_*`` environment variables.
"""

from __future__ import annotations

import asyncio
import os
import signal
import weakref
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager, KernelManager
from jupyter_core.utils import run_sync
from traitlets import (
    Bool,
    DottedObjectName,
    Float,
    Int,
    TraitError,
    Type,
    Unicode,
    default,
    observe,
    validate,
)
from traitlets import Dict as DictTrait

from kgw.channels.wire import V1_SUBPROTOCOL
from kgw.client.channels import AsyncGatewayKernelClient, GatewayKernelClient
from kgw.client.errors import GatewayError, KernelDied
from kgw.client.rest import KernelsAPI, Model
from kgw.client.settings import GatewaySettings, RetryPolicy

_SETTINGS_TRAITS = [
    "url",
    "ws_url",
    "auth_token",
    "headers",
    "ca_certs",
    "client_cert",
    "client_key",
    "validate_cert",
    "connect_timeout",
    "request_timeout",
    "offer_v1",
    "reconnect_attempts",
    "reconnect_interval",
    "reconnect_interval_max",
]


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


class _GatewayManagerMixin(KernelManager):
    """Traits and the REST-backed lifecycle; the two flavours below bind the public names."""

    url = Unicode(
        None,
        allow_none=True,
        config=True,
        help="The gateway's base URL, http:// or https:// (JUPYTER_GATEWAY_URL).",
    )
    ws_url = Unicode(
        None,
        allow_none=True,
        config=True,
        help="The gateway's websocket base URL; default: url with ws:// or wss:// "
        "(JUPYTER_GATEWAY_WS_URL).",
    )
    auth_token = Unicode(
        None,
        allow_none=True,
        config=True,
        help="The gateway's token, sent as 'Authorization: token <t>' "
        "(JUPYTER_GATEWAY_AUTH_TOKEN).",
    )
    headers = DictTrait(
        value_trait=Unicode(), config=True, help="More HTTP headers for every request."
    )
    ca_certs = Unicode(
        None,
        allow_none=True,
        config=True,
        help="CA bundle to verify the gateway's certificate (JUPYTER_GATEWAY_CA_CERTS).",
    )
    client_cert = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Client certificate for mutual TLS (JUPYTER_GATEWAY_CLIENT_CERT).",
    )
    client_key = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Key of the client certificate (JUPYTER_GATEWAY_CLIENT_KEY).",
    )
    validate_cert = Bool(
        True,
        config=True,
        help="Verify the gateway's TLS certificate (JUPYTER_GATEWAY_VALIDATE_CERT=no: off).",
    )
    connect_timeout = Float(
        40.0,
        config=True,
        help="Seconds to open a connection or websocket (JUPYTER_GATEWAY_CONNECT_TIMEOUT).",
    )
    request_timeout = Float(
        120.0,
        config=True,
        help="Seconds to wait for an HTTP answer; a kernel start can take a while "
        "(JUPYTER_GATEWAY_REQUEST_TIMEOUT).",
    )
    kernel_name = Unicode(
        "", config=True, help="Kernelspec on the gateway; empty: the gateway's default."
    )
    env = DictTrait(
        value_trait=Unicode(),
        config=True,
        help="Variables for the kernel, sent in the start request together with this "
        "process's KERNEL_* variables.",
    )
    offer_v1 = Bool(
        True,
        config=True,
        help="Offer the v1.kernel.websocket.jupyter.org subprotocol (off: JSON frames only).",
    )
    reconnect_attempts = Int(
        5, config=True, help="Attempts to reopen a dropped channels websocket before giving up."
    )
    reconnect_interval = Float(
        0.5, config=True, help="Seconds before the second attempt; doubles with each one."
    )
    reconnect_interval_max = Float(
        5.0, config=True, help="Longest wait between two reconnection attempts, seconds."
    )

    @default("url")
    def _url_default(self) -> str | None:
        return _env("JUPYTER_GATEWAY_URL")

    @default("ws_url")
    def _ws_url_default(self) -> str | None:
        return _env("JUPYTER_GATEWAY_WS_URL")

    @default("auth_token")
    def _auth_token_default(self) -> str | None:
        return _env("JUPYTER_GATEWAY_AUTH_TOKEN")

    @default("ca_certs")
    def _ca_certs_default(self) -> str | None:
        return _env("JUPYTER_GATEWAY_CA_CERTS")

    @default("client_cert")
    def _client_cert_default(self) -> str | None:
        return _env("JUPYTER_GATEWAY_CLIENT_CERT")

    @default("client_key")
    def _client_key_default(self) -> str | None:
        return _env("JUPYTER_GATEWAY_CLIENT_KEY")

    @default("validate_cert")
    def _validate_cert_default(self) -> bool:
        return (_env("JUPYTER_GATEWAY_VALIDATE_CERT") or "yes").lower() not in ("no", "false")

    @default("connect_timeout")
    def _connect_timeout_default(self) -> float:
        return float(_env("JUPYTER_GATEWAY_CONNECT_TIMEOUT") or 40.0)

    @default("request_timeout")
    def _request_timeout_default(self) -> float:
        return float(_env("JUPYTER_GATEWAY_REQUEST_TIMEOUT") or 120.0)

    @validate("url")
    def _check_url(self, proposal: dict[str, Any]) -> str | None:
        value: str | None = proposal["value"]
        if value and not value.lower().startswith(("http://", "https://")):
            raise TraitError(f"the gateway url must start with http:// or https://: {value!r}")
        return value

    @observe(*_SETTINGS_TRAITS)
    def _settings_changed(self, change: dict[str, Any]) -> None:
        self._settings = None

    _settings: GatewaySettings | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shut_down = False
        self._started_here = False
        self._clients: weakref.WeakSet[Any] = weakref.WeakSet()
        self.model: Model | None = None

    # --- the gateway -----------------------------------------------------------------------

    def gateway_settings(self) -> GatewaySettings:
        """The traits as one value for the REST and websocket sides."""
        if self._settings is None:
            if not self.url:
                raise GatewayError(
                    "no gateway URL: set GatewayKernelManager.url or JUPYTER_GATEWAY_URL"
                )
            self._settings = GatewaySettings(
                url=self.url,
                ws_url=self.ws_url or "",
                auth_token=self.auth_token or "",
                headers=dict(self.headers),
                ca_certs=self.ca_certs,
                client_cert=self.client_cert,
                client_key=self.client_key,
                validate_cert=self.validate_cert,
                connect_timeout=self.connect_timeout,
                request_timeout=self.request_timeout,
                subprotocols=(V1_SUBPROTOCOL,) if self.offer_v1 else (),
                retry=RetryPolicy(
                    attempts=self.reconnect_attempts,
                    interval=self.reconnect_interval,
                    interval_max=self.reconnect_interval_max,
                ),
            )
        return self._settings

    def kernels_api(self) -> KernelsAPI:
        return KernelsAPI(self.gateway_settings())

    @property
    def kernel_spec(self) -> KernelSpec | None:
        """None: the kernelspec lives on the gateway (``GET /api/kernelspecs/<name>``)."""
        return None

    @property
    def has_kernel(self) -> bool:
        return self.kernel_id is not None and not self._shut_down

    def _client_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if not self.kernel_id:
            raise GatewayError("no kernel yet: call start_kernel() before client()")
        return {
            "parent": self,
            "session": self.session,
            "kernel_id": self.kernel_id,
            "settings": self.gateway_settings(),
            **kwargs,
        }

    def _kernel_env(self, env: dict[str, str] | None) -> dict[str, str]:
        # Only KERNEL_* variables leave this machine unasked, as with jupyter_server's client.
        sent = {k: v for k, v in os.environ.items() if k.startswith("KERNEL_")}
        sent.update({k: v for k, v in (env or {}).items() if k.startswith("KERNEL_")})
        sent.update(self.env)
        return sent

    # --- lifecycle -------------------------------------------------------------------------

    async def _async_start_kernel(self, **kw: Any) -> None:
        """Start a kernel on the gateway. ``cwd``, ``extra_arguments`` and other arguments
        about a local process are ignored; ``KERNEL_*`` names in ``env`` are sent."""
        if self.has_kernel:
            raise GatewayError(f"this manager already has kernel {self.kernel_id}")
        self._attempted_start = True
        self._launch_args = dict(kw)
        api = self.kernels_api()
        env = self._kernel_env(kw.get("env"))
        model = await asyncio.to_thread(api.start, self.kernel_name or None, env)
        self.model = model
        self.kernel_id = str(model["id"])
        self._shut_down = False
        self._started_here = True
        self.log.debug("kernel %s (%s) started on %s", self.kernel_id, model.get("name"), api)

    async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        """``DELETE`` the kernel (the gateway shuts it down politely, then by force)."""
        if not self.has_kernel:
            return
        assert self.kernel_id is not None
        for client in list(self._clients):
            client.kernel_shut_down()
        await asyncio.to_thread(self.kernels_api().delete, self.kernel_id)
        self._shut_down = True

    async def _async_restart_kernel(
        self, now: bool = False, newports: bool = False, **kw: Any
    ) -> None:
        """``POST .../restart``: same kernel id; connected clients stay connected."""
        if not self.has_kernel:
            raise RuntimeError("Cannot restart the kernel. No previous call to 'start_kernel'.")
        assert self.kernel_id is not None
        self.model = await asyncio.to_thread(self.kernels_api().restart, self.kernel_id)

    async def _async_interrupt_kernel(self) -> None:
        if not self.has_kernel:
            raise RuntimeError("Cannot interrupt kernel. No kernel is running!")
        assert self.kernel_id is not None
        await asyncio.to_thread(self.kernels_api().interrupt, self.kernel_id)

    async def _async_signal_kernel(self, signum: int) -> None:
        """Only SIGINT has a REST equivalent (``/interrupt``)."""
        if signum != signal.SIGINT:
            raise GatewayError(f"a gateway kernel cannot be sent signal {signum}; only SIGINT")
        await self._async_interrupt_kernel()

    async def _async_is_alive(self) -> bool:
        """Does the gateway still have the kernel, not dead? (``GET /api/kernels/<id>``)."""
        if not self.has_kernel:
            return False
        assert self.kernel_id is not None
        try:
            self.model = await asyncio.to_thread(self.kernels_api().get, self.kernel_id)
        except KernelDied:
            return False
        return self.model.get("execution_state") != "dead"

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        """Delete a kernel this manager started and nobody shut down (nbclient skips
        ``shutdown_kernel`` for a kernel that is not alive: the gateway would keep it)."""
        if restart or not (self._started_here and self.has_kernel):
            return
        try:
            await self._async_shutdown_kernel()
        except GatewayError as e:
            self.log.warning("kernel %s: could not delete it: %s", self.kernel_id, e)

    async def _async_request_shutdown(self, restart: bool = False) -> None:
        await self._async_shutdown_kernel(restart=restart)

    async def _async_finish_shutdown(
        self, waittime: float | None = None, pollinterval: float = 0.1, restart: bool = False
    ) -> None:
        """Nothing to wait for: ``DELETE`` answers once the kernel is gone."""

    async def _async_kill_kernel(self, restart: bool = False) -> None:
        await self._async_shutdown_kernel(now=True, restart=restart)

    async def _async_send_kernel_sigterm(self, restart: bool = False) -> None:
        await self._async_shutdown_kernel(now=True, restart=restart)


class GatewayKernelManager(_GatewayManagerMixin):
    """A blocking ``KernelManager`` for a kernel on a gateway.

    ``client()`` returns a :class:`GatewayKernelClient`, which also works under nbclient.
    """

    client_class = DottedObjectName("kgw.client.channels.GatewayKernelClient", config=True)
    client_factory = Type(klass="kgw.client.channels.GatewayKernelClient", config=True)

    def client(self, **kwargs: Any) -> BlockingKernelClient:
        client: GatewayKernelClient = self.client_factory(**self._client_kwargs(kwargs))
        self._clients.add(client)
        return client

    start_kernel = run_sync(_GatewayManagerMixin._async_start_kernel)
    shutdown_kernel = run_sync(_GatewayManagerMixin._async_shutdown_kernel)
    restart_kernel = run_sync(_GatewayManagerMixin._async_restart_kernel)
    interrupt_kernel = run_sync(_GatewayManagerMixin._async_interrupt_kernel)
    signal_kernel = run_sync(_GatewayManagerMixin._async_signal_kernel)
    is_alive = run_sync(_GatewayManagerMixin._async_is_alive)
    cleanup_resources = run_sync(_GatewayManagerMixin._async_cleanup_resources)
    request_shutdown = run_sync(_GatewayManagerMixin._async_request_shutdown)
    finish_shutdown = run_sync(_GatewayManagerMixin._async_finish_shutdown)
    _kill_kernel = run_sync(_GatewayManagerMixin._async_kill_kernel)
    _send_kernel_sigterm = run_sync(_GatewayManagerMixin._async_send_kernel_sigterm)


class AsyncGatewayKernelManager(_GatewayManagerMixin, AsyncKernelManager):
    """An ``AsyncKernelManager`` for a kernel on a gateway; ``client()`` is async too."""

    client_class = DottedObjectName("kgw.client.channels.AsyncGatewayKernelClient", config=True)
    client_factory = Type(klass="kgw.client.channels.AsyncGatewayKernelClient", config=True)

    def client(self, **kwargs: Any) -> AsyncKernelClient:  # type: ignore[override]
        client: AsyncGatewayKernelClient = self.client_factory(**self._client_kwargs(kwargs))
        self._clients.add(client)
        return client

    start_kernel = _GatewayManagerMixin._async_start_kernel
    shutdown_kernel = _GatewayManagerMixin._async_shutdown_kernel
    restart_kernel = _GatewayManagerMixin._async_restart_kernel
    interrupt_kernel = _GatewayManagerMixin._async_interrupt_kernel
    signal_kernel = _GatewayManagerMixin._async_signal_kernel
    is_alive = _GatewayManagerMixin._async_is_alive
    cleanup_resources = _GatewayManagerMixin._async_cleanup_resources
    request_shutdown = _GatewayManagerMixin._async_request_shutdown
    finish_shutdown = _GatewayManagerMixin._async_finish_shutdown
    _kill_kernel = _GatewayManagerMixin._async_kill_kernel
    _send_kernel_sigterm = _GatewayManagerMixin._async_send_kernel_sigterm
