"""``twistd kernelgateway``: command-line options and the service tree.

Nothing imported here at module level may import the reactor or txzmq: twistd imports this
module while it parses options, before the asyncio reactor is installed in makeService().
"""

from __future__ import annotations

import os
import socket
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.python import usage

import kgw
from kgw import config as kgw_config
from kgw.errors import ConfigError


def _setting_help(setting: kgw_config.Setting) -> str:
    default = f" (default: {setting.default})" if setting.default and not setting.flag else ""
    return f"{setting.help} [env {setting.env}]{default}"


def _explicit_pidfile(argv: list[str]) -> bool:
    """True when twistd's own arguments (before the subcommand) name a pidfile."""
    for arg in argv:
        if arg == "kernelgateway":
            return False
        if arg == "--pidfile" or arg.startswith("--pidfile="):
            return True
    return False


class Options(usage.Options):
    """Options of ``twistd kernelgateway``; each KG_*/KGW_* variable is read when its flag
    is absent."""

    synopsis = "[options]"
    longdesc = (
        "Serve Jupyter kernels over HTTP and websockets, compatible with clients of "
        "jupyter_kernel_gateway (jupyter-websocket mode) and jupyter_server. Every option "
        "can also come from the environment variable shown with it; a flag wins."
    )
    optParameters: list[list[Any]] = [
        [s.name, None, None, _setting_help(s)]
        for s in kgw_config.SETTINGS
        if not s.flag and not s.repeatable
    ]
    optFlags: list[list[Any]] = [
        [s.name, None, _setting_help(s)] for s in kgw_config.SETTINGS if s.flag
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, endpoint: str) -> None:
        self["listen"].append(endpoint)

    opt_listen.__doc__ = _setting_help(kgw_config.SETTING["listen"])

    def opt_version(self) -> None:
        """Print kgw's version and exit."""
        from importlib.metadata import version

        print(
            f"kgw {kgw.__version__} (twisted {version('twisted')}, jupyter_client "
            f"{version('jupyter_client')}, Python {sys.version.split()[0]})"
        )
        raise SystemExit(0)

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            # Not twistd's whole usage text: one line, and where to look.
            raise SystemExit(f"kernelgateway: {e}; see twistd kernelgateway --help") from None

    def getUsage(self, width: int | None = None) -> str:
        """The options grouped by topic, as docs/configuration.md shows them."""
        width = width or int(os.environ.get("COLUMNS", "80"))
        text = [textwrap.fill(self.longdesc, width), ""]
        general = [
            ("--help", "Show this help and exit."),
            ("--version", "Show kgw's version and exit."),
        ]
        for topic in kgw_config.TOPICS:
            rows = [
                (f"--{s.name}" if s.flag else f"--{s.name}=VALUE", _setting_help(s))
                for s in kgw_config.SETTINGS
                if s.topic == topic
            ]
            text += [f"{topic}:", *_rows(rows, width), ""]
        text += ["General:", *_rows(general, width)]
        return "\n".join(text) + "\n"

    def postOptions(self) -> None:
        flags: dict[str, str | None] = {}
        for setting in kgw_config.SETTINGS:
            if setting.repeatable:
                continue
            value = self.get(setting.name)
            if setting.flag:
                flags[setting.name] = "true" if value else None
            else:
                flags[setting.name] = value
        try:
            self.gateway_config = kgw_config.load(flags, os.environ, tuple(self["listen"]))
            check_listen(self.gateway_config)
        except ConfigError as e:
            # Not a UsageError: twistd would print its whole usage text above the one line.
            raise SystemExit(f"kernelgateway: {e}") from None
        parent = getattr(self, "parent", None)
        self.log_elsewhere = False
        if parent is not None:
            self.log_elsewhere = (
                not parent.get("nodaemon")
                or parent.get("logfile") not in (None, "", "-")
                or bool(parent.get("syslog"))
            )
            if self.gateway_config.log_format == "json":
                # twistd builds its log observer from --logger after parsing options.
                parent["logger"] = "kgw.logs.json_observer"
            default_pidfile = parent.get("pidfile") == "twistd.pid"
            if parent.get("nodaemon") and default_pidfile and not _explicit_pidfile(sys.argv[1:]):
                # In the foreground a pidfile only gets in the way of the next start.
                parent["pidfile"] = ""


def _rows(rows: list[tuple[str, str]], width: int) -> list[str]:
    """Two columns: the flag, then its help wrapped beside it (below it when too long)."""
    column = 30
    lines = []
    for flag, help_text in rows:
        wrapped = textwrap.wrap(help_text, max(width - column, 30), break_on_hyphens=False)
        first = f"  {flag}"
        if len(first) < column - 1:
            lines.append(first.ljust(column) + wrapped[0])
            wrapped = wrapped[1:]
        else:
            lines.append(first)
        lines += [" " * column + line for line in wrapped]
    return lines


def check_listen(gateway_config: kgw_config.GatewayConfig) -> None:
    """Reject endpoint strings Twisted cannot parse, and public listening without a token."""
    from OpenSSL.crypto import Error as OpenSSLError
    from twisted.internet.endpoints import UNIXServerEndpoint, serverFromString
    from twisted.internet.testing import MemoryReactor

    from kgw.tls import check_key_and_certificate, endpoint_files

    named = gateway_config.source("listen")
    for description in gateway_config.listen:
        files = endpoint_files(description)
        if files is not None:
            try:
                check_key_and_certificate(*files)
            except ConfigError as e:
                raise ConfigError(f"{named} {description!r}: {e}") from None
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
            raise ConfigError(f"{named} {description!r}: {reason}") from None
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
                f"{named} {description!r} listens on {where} without --auth-token "
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
    from kgw.startup import StartupReport

    try:
        report = StartupReport(getattr(options, "log_elsewhere", False))
        gateway: MultiService = build_gateway(options.gateway_config, reactor, os.environ, report)
    except ConfigError as e:
        raise SystemExit(f"kernelgateway: {e}") from None
    return gateway
