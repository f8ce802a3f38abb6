"""jupyter_client's KernelManager interface for a kernel that runs on a gateway.

``start_kernel()`` is ``POST /api/kernels``, ``attach_kernel(id)`` takes a kernel that
already runs there, ``shutdown_kernel()`` is ``DELETE``,
``restart_kernel()`` and ``interrupt_kernel()`` are the gateway's ``/restart`` and
``/interrupt``, ``is_alive()`` reads the kernel's model. ``client()`` returns a
:mod:`kgw.client.channels` client on the kernel's channels websocket. Options are traitlets,
configurable like the rest of Jupyter; the gateway connection's are in
:mod:`kgw.client.options`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import weakref
from typing import Any

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager, KernelManager
from jupyter_core.utils import run_sync
from traitlets import Dict as DictTrait
from traitlets import DottedObjectName, Type, Unicode

from kgw.client.channels import AsyncGatewayKernelClient, GatewayKernelClient
from kgw.client.errors import GatewayError, KernelDied
from kgw.client.options import GatewayOptions
from kgw.client.rest import KernelsAPI, Model


class _GatewayManagerMixin(GatewayOptions, KernelManager):
    """The REST-backed lifecycle; the two flavours below bind jupyter_client's public names."""

    kernel_name = Unicode(
        "", config=True, help="Kernelspec on the gateway; empty: the gateway's default."
    )
    env = DictTrait(
        value_trait=Unicode(),
        config=True,
        help="Variables for the kernel, sent in the start request together with this "
        "process's KERNEL_* variables.",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shut_down = False
        self._started_here = False
        self._clients: weakref.WeakSet[Any] = weakref.WeakSet()
        self.model: Model | None = None

    # --- the gateway -----------------------------------------------------------------------

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

    async def _async_attach_kernel(self, kernel_id: str) -> None:
        """Use a kernel that already runs on the gateway (pooled, or started by someone
        else): ``GET /api/kernels/<id>``, then clients, restart, interrupt and shutdown work
        as for a kernel this manager started. Raises KernelDied when the gateway does not
        know the id. ``cleanup_resources()`` (nbclient's cleanup) leaves an attached kernel
        running; ``shutdown_kernel()`` still deletes it."""
        if self.has_kernel:
            raise GatewayError(f"this manager already has kernel {self.kernel_id}")
        model = await asyncio.to_thread(self.kernels_api().get, kernel_id)
        self.model = model
        self.kernel_id = str(model["id"])
        self.kernel_name = str(model.get("name") or self.kernel_name)
        self._shut_down = False
        self._started_here = False
        self.log.debug("attached to kernel %s (%s)", self.kernel_id, self.kernel_name)

    async def _async_start_kernel(self, **kw: Any) -> None:
        """Start a kernel on the gateway. ``cwd``, ``extra_arguments`` and other arguments
        about a local process are ignored; ``KERNEL_*`` names in ``env`` are sent.

        With ``kernel_id=...``, attach to that existing kernel instead, as jupyter_server's
        GatewayKernelManager does (see :meth:`attach_kernel`)."""
        if kw.get("kernel_id"):
            await self._async_attach_kernel(str(kw["kernel_id"]))
            return
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
        self.log.debug(
            "kernel %s (%s) started on %s", self.kernel_id, model.get("name"), api.settings.url
        )

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

    def client(self, **kwargs: Any) -> GatewayKernelClient:
        client: GatewayKernelClient = self.client_factory(**self._client_kwargs(kwargs))
        self._clients.add(client)
        return client

    start_kernel = run_sync(_GatewayManagerMixin._async_start_kernel)
    attach_kernel = run_sync(_GatewayManagerMixin._async_attach_kernel)
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

    def client(self, **kwargs: Any) -> AsyncGatewayKernelClient:  # type: ignore[override]
        client: AsyncGatewayKernelClient = self.client_factory(**self._client_kwargs(kwargs))
        self._clients.add(client)
        return client

    start_kernel = _GatewayManagerMixin._async_start_kernel
    attach_kernel = _GatewayManagerMixin._async_attach_kernel
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
