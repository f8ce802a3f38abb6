"""``twistd kernelgateway``: command-line options and the service tree.

Nothing imported here at module level may import the reactor or txzmq: twistd imports this
module while it parses options, before the asyncio reactor is installed in makeService().
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.python import usage

from kgw import config as kgw_config
from kgw.errors import ConfigError


def _setting_help(setting: kgw_config.Setting) -> str:
    env = f" [env {setting.env}]" if setting.env else ""
    return f"{setting.help}{env} (default: {setting.default!r})"


class Options(usage.Options):
    """Options of ``twistd kernelgateway``; each KG_* variable is read when its flag is absent."""

    synopsis = "[options]"
    longdesc = (
        "Serve Jupyter kernels over HTTP and websockets, compatible with clients of "
        "jupyter_kernel_gateway (jupyter-websocket mode) and jupyter_server."
    )
    optParameters: list[list[Any]] = [
        [s.name, None, None, _setting_help(s)] for s in kgw_config.SETTINGS if not s.flag
    ]
    optFlags: list[list[Any]] = [
        [s.name, None, _setting_help(s)] for s in kgw_config.SETTINGS if s.flag
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, endpoint: str) -> None:
        """Listen on a Twisted endpoint string, e.g. tcp:8888:interface=127.0.0.1 (repeatable;
        replaces --ip/--port)"""
        self["listen"].append(endpoint)

    def postOptions(self) -> None:
        flags: dict[str, str | None] = {}
        for setting in kgw_config.SETTINGS:
            value = self.get(setting.name)
            if setting.flag:
                flags[setting.name] = "true" if value else None
            else:
                flags[setting.name] = value
        try:
            self.gateway_config = kgw_config.load(flags, os.environ, tuple(self["listen"]))
            check_listen(self.gateway_config)
            parent = getattr(self, "parent", None)
            if self.gateway_config.log_format == "json" and parent is not None:
                # twistd builds its log observer from --logger after parsing options.
                parent["logger"] = "kgw.logs.json_observer"
        except ConfigError as e:
            # Not a UsageError: twistd would print its whole usage text above the one line.
            raise SystemExit(f"kernelgateway: {e}") from None


def check_listen(gateway_config: kgw_config.GatewayConfig) -> None:
    """Reject endpoint strings Twisted cannot parse, and public listening without a token."""
    from OpenSSL.crypto import Error as OpenSSLError
    from twisted.internet.endpoints import UNIXServerEndpoint, serverFromString
    from twisted.internet.testing import MemoryReactor

    from kgw.tls import check_key_and_certificate, endpoint_files

    for description in gateway_config.listen:
        files = endpoint_files(description)
        if files is not None:
            try:
                check_key_and_certificate(*files)
            except ConfigError as e:
                raise ConfigError(f"--listen {description!r}: {e}") from None
        try:
            endpoint = serverFromString(MemoryReactor(), description)
        except (ValueError, KeyError, TypeError, IndexError, OSError, OpenSSLError) as e:
            reason = str(e) or type(e).__name__
            if description.startswith("systemd:"):
                reason = "no such inherited socket (LISTEN_FDS/LISTEN_FDNAMES)"
                if os.environ.get("LISTEN_FDS") and not os.environ.get("LISTEN_FDNAMES"):
                    reason += (
                        "; LISTEN_FDS is set without LISTEN_FDNAMES, which Twisted needs "
                        "(systemd sets both; systemd-socket-activate needs --fdname)"
                    )
            raise ConfigError(f"--listen {description!r}: {reason}") from None
        if isinstance(endpoint, UNIXServerEndpoint):
            continue
        interface = _interface_of(endpoint)
        public = interface is None or not kgw_config.is_loopback(interface)
        if public and not gateway_config.auth_token and not gateway_config.allow_unauthenticated:
            where = (
                repr(interface)
                if interface
                else ("every interface" if interface == "" else "an interface kgw cannot check")
            )
            raise ConfigError(
                f"--listen {description!r} listens on {where} without --auth-token "
                "(KG_AUTH_TOKEN); set a token or pass --allow-unauthenticated"
            )


def _interface_of(endpoint: object) -> str | None:
    """The address an endpoint listens on, also for a socket inherited from systemd."""
    interface = getattr(endpoint, "_interface", None)
    if interface is not None:
        return str(interface)
    fileno = getattr(endpoint, "fileno", None)
    family = getattr(endpoint, "addressFamily", None)
    if isinstance(fileno, int) and family is not None:
        try:
            with socket.fromfd(fileno, family, socket.SOCK_STREAM) as inherited:
                return str(inherited.getsockname()[0])
        except OSError:
            return None
    return None


def _install_asyncio_reactor() -> None:
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor

        if type(reactor).__name__ != "AsyncioSelectorReactor":
            raise ConfigError(
                f"kgw needs the asyncio reactor, but {type(reactor).__name__} is installed; "
                "run twistd --reactor=asyncio or leave --reactor unset"
            )
        return
    from twisted.internet import asyncioreactor

    asyncioreactor.install()


def makeService(options: Options) -> IService:
    """Build the gateway service tree: kernels first (stopped last), then the listeners."""
    try:
        _install_asyncio_reactor()
    except ConfigError as e:
        raise SystemExit(f"kernelgateway: {e}") from None
    from twisted.internet import reactor

    from kgw.service import build_gateway

    try:
        gateway: MultiService = build_gateway(options.gateway_config, reactor, os.environ)
    except ConfigError as e:
        raise SystemExit(f"kernelgateway: {e}") from None
    return gateway
