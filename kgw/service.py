"""The service tree of one gateway: kernels, the web site, and its listening endpoints."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorCore
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.server import Request, Site
from txzmq import ZmqFactory

from kgw.channels.protocol import make_factory
from kgw.config import GatewayConfig
from kgw.errors import ConfigError
from kgw.kernels.registry import KernelRegistry
from kgw.kernels.sessions import SessionManager
from kgw.kernels.supervisor import KernelSupervisor
from kgw.startup import StartupReport
from kgw.systemd import notify
from kgw.tls import TLSPolicy, secure
from kgw.web import api, kernels, sessions
from kgw.web.app import GatewayApp
from kgw.web.auth import redact_token

log = Logger()


class _NoDelayChannel(HTTPChannel):
    """HTTP/1.1 with TCP_NODELAY, so small replies are not held back by delayed ACKs."""

    def connectionMade(self) -> None:
        super().connectionMade()
        transport: Any = self.transport
        try:
            transport.setTcpNoDelay(True)
        except (AttributeError, OSError):  # UNIX sockets have no Nagle
            pass


class GatewaySite(Site):
    """A Site that logs each request through twisted.logger, never with the token."""

    protocol = _NoDelayChannel  # type: ignore[assignment]
    trust_xheaders = False

    def log(self, request: Any) -> None:
        started = getattr(request, "_kgw_started", None)
        log.info(
            "{method} {path} {status} {duration_ms:.1f}ms {client}",
            method=request.method.decode("ascii", "replace"),
            path=redact_token(request.uri.decode("utf-8", "replace")),
            status=request.code,
            duration_ms=(time.monotonic() - started) * 1000 if started else 0.0,
            client=_address(request, self.trust_xheaders),
        )


def _address(request: Request, trust_xheaders: bool) -> str:
    if trust_xheaders:
        # As tornado: X-Real-Ip, else the last X-Forwarded-For hop (the one our proxy added;
        # earlier entries are whatever the client claimed).
        forwarded = request.getHeader(b"X-Real-Ip") or request.getHeader(b"X-Forwarded-For")
        if forwarded:
            return forwarded.decode("latin-1").split(",")[-1].strip()
    peer = request.getClientAddress()
    host = getattr(peer, "host", None)
    return f"{host}:{getattr(peer, 'port', '')}" if host else str(peer)


class _TimedRequest(Request):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._kgw_started = time.monotonic()


class KernelService(Service):
    """Owns the kernels. At start, fills the pool and tries the seed, and only then listens
    (a failure stops the gateway with one line, before any client could connect); at stop
    closes websockets and shuts every kernel down."""

    def __init__(
        self,
        registry: KernelRegistry,
        supervisor: KernelSupervisor,
        zmq_factory: ZmqFactory,
        reactor: Any,
        listeners: list[ListenService],
        report: StartupReport,
        notify_socket: str = "",
    ) -> None:
        self._notify_socket = notify_socket
        self.registry = registry
        self._supervisor = supervisor
        self._zmq = zmq_factory
        self._reactor = reactor
        self._listeners = listeners
        self._report = report

    def startService(self) -> None:
        super().startService()
        self._supervisor.start()
        # twistd starts services before the reactor runs; stopping needs it running.
        self._reactor.callWhenRunning(
            lambda: Deferred.fromCoroutine(self._start()).addErrback(self._fatal)
        )

    async def _start(self) -> None:
        await self.registry.startup_check()
        if not self.running:  # stopped (a signal) while kernels were starting
            return
        for pool in self.registry.pools:
            if pool.sizes:
                log.info("{pool}: {count} kernels ready", pool=pool.label, count=len(pool.ready()))
        for listener in self._listeners:
            listener.listen()
        notify(self._notify_socket, "READY=1")

    def _fatal(self, failure: Failure) -> None:
        error = failure.value
        if isinstance(error, ConfigError):
            message = str(error)
        else:
            message = f"cannot start: {getattr(error, 'message', None) or error}"
            log.failure("startup failed", failure, level=LogLevel.debug)
        self._report(message)
        # twistd has no exit status of its own to give: leave with 1 once all is shut down.
        self._reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)
        self._reactor.stop()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        notify(self._notify_socket, "STOPPING=1")
        self._supervisor.stop()
        log.info("shutting down {count} kernels", count=len(self.registry.list()))

        async def stop() -> None:
            await self.registry.shutdown_all()
            self._zmq.shutdown()
            log.info("all kernels shut down")

        return Deferred.fromCoroutine(stop())


class ListenService(Service):
    """Listens on one endpoint string once told to (see KernelService); stops listening first
    at shutdown."""

    def __init__(
        self,
        reactor: Any,
        description: str,
        site: Site,
        base_url: str,
        retries: int = 0,
        tls: TLSPolicy | None = None,
    ) -> None:
        self._reactor = reactor
        self._tls = tls or TLSPolicy()
        self._secure = False
        self._description = description
        self._retries = retries
        self._site = site
        self._base_url = base_url
        self._port: IListeningPort | None = None

    def listen(self) -> None:
        """Listen, moving up to ``retries`` ports while taken; ConfigError if it cannot."""
        for attempt in range(self._retries + 1):
            description = _next_port(self._description, attempt)
            outcome = self._listen(description)
            if not isinstance(outcome, Failure):
                break
            if attempt < self._retries and outcome.check(CannotListenError):
                log.info("port taken: {description}; trying the next", description=description)
                continue
            raise ConfigError(f"cannot listen on {description!r}: {outcome.getErrorMessage()}")
        self._port = outcome
        address: Any = self._port.getHost()
        host = getattr(address, "host", None)
        if host is not None:
            shown = f"[{host}]" if ":" in host else host
            scheme = "https" if self._secure else "http"
            url = f"{scheme}://{shown}:{address.port}{self._base_url}"
        else:
            url = f"{address}"
        log.info("kernelgateway listening on {url}", url=url)

    def _listen(self, description: str) -> Any:
        outcome: list[Any] = []
        endpoint = serverFromString(self._reactor, description)
        factory, self._secure = secure(endpoint, self._site, self._tls)
        endpoint.listen(factory).addBoth(outcome.append)
        if not outcome:
            raise ConfigError(f"--listen {description!r} did not bind at once")
        return outcome[0]

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        if self._port is None:
            return None
        port, self._port = self._port, None
        stopped: Deferred[None] | None = port.stopListening()
        return stopped


def _next_port(description: str, offset: int) -> str:
    """tcp:8888:interface=... with the port moved up by ``offset``."""
    if not offset:
        return description
    fields = description.split(":")
    fields[1] = str(int(fields[1]) + offset)
    return ":".join(fields)


def build_gateway(
    config: GatewayConfig,
    reactor: IReactorCore,
    environ: Mapping[str, str],
    report: StartupReport | None = None,
) -> MultiService:
    """Compose the gateway: kernels are stopped last, after the listeners."""
    zmq_factory = ZmqFactory()
    zmq_factory.reactor = reactor
    registry = KernelRegistry(config, reactor, zmq_factory, environ)  # type: ignore[arg-type]
    registry.check_kernel_names()
    supervisor = KernelSupervisor(registry, reactor, config)  # type: ignore[arg-type]
    app = GatewayApp(config)
    api.install(app, registry)
    sessions.install(app, SessionManager(registry))
    kernels.install(app, registry, make_factory(config.ws_ping_interval, config.ws_ping_timeout))
    site = GatewaySite(app.resource())
    site.requestFactory = _TimedRequest
    site.trust_xheaders = config.trust_xheaders

    gateway = MultiService()
    listeners = [
        ListenService(reactor, description, site, config.base_url, config.port_retries, config.tls)
        for description in config.listen
    ]
    KernelService(
        registry,
        supervisor,
        zmq_factory,
        reactor,
        listeners,
        report or StartupReport(),
        config.notify_socket,
    ).setServiceParent(gateway)
    if config.tls.warning:
        log.warn("kernelgateway: {warning}", warning=config.tls.warning)
    for listener in listeners:  # stopped before the kernels
        listener.setServiceParent(gateway)
    return gateway
