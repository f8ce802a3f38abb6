"""Every setting of the gateway, its flag, its KG_* variable and its default, in one place.

Flags beat environment variables beat defaults. ``load()`` turns both into one frozen,
validated :class:`GatewayConfig`; nothing else in kgw reads the environment.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from kgw.errors import ConfigError
from kgw.tls import TLSPolicy, parse_ssl_version, with_files

MiB = 1024 * 1024


def _text(value: str) -> str:
    return value


def _int(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"expected a whole number, got {value!r}") from None
        if maximum is not None and not minimum <= number <= maximum:
            raise ConfigError(f"must be between {minimum} and {maximum}, got {number}")
        if number < minimum:
            raise ConfigError(f"must be at least {minimum}, got {number}")
        return number

    return parse


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _bytes(minimum: int) -> Callable[[str], int]:
    """A size in bytes: a whole number, or one with K, M, G or T (powers of 1024)."""

    def parse(value: str) -> int:
        text = value.strip().upper().removesuffix("IB").removesuffix("B")
        unit = text[-1:] if text[-1:] in _UNITS else ""
        try:
            number = int(text[: len(text) - len(unit)]) * _UNITS[unit]
        except ValueError:
            raise ConfigError(f"expected a size such as 64M or 2G, got {value!r}") from None
        if number < minimum:
            raise ConfigError(f"must be at least {minimum} bytes, got {value!r}")
        return number

    return parse


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off", ""):
        return False
    raise ConfigError(f"expected true or false, got {value!r}")


def _pool(value: str) -> tuple[tuple[str, int], ...]:
    sizes = []
    for item in _names(value):
        name, eq, count = item.partition("=")
        if not eq or not name.strip():
            raise ConfigError(f"expected name=count pairs, got {item!r}")
        sizes.append((name.strip(), _int(0)(count.strip())))
    return tuple(sizes)


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in allowed:
            raise ConfigError(f"expected one of {', '.join(allowed)}, got {value!r}")
        return value

    return parse


def _names(value: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in value.split(",") if name.strip())


@attrs.frozen
class Setting:
    """One option: its flag, environment variable, default and parser."""

    name: str
    env: str
    default: str
    parse: Callable[[str], Any]
    help: str
    topic: str
    flag: bool = False  # an on/off switch on the command line
    repeatable: bool = False  # given once per value on the command line (--listen)


# The topics of the options, in the order ``--help`` and the reference show them.
LISTENING = "Listening"
TLS = "TLS"
AUTH = "Authentication and CORS"
KERNELS = "Kernels"
POOL = "Pool and lifecycle"
WEBSOCKETS = "Websockets"
LOGS = "Logs and metrics"
TOPICS = (LISTENING, TLS, AUTH, KERNELS, POOL, WEBSOCKETS, LOGS)


def _endpoints(value: str) -> tuple[str, ...]:
    return tuple(value.split())


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "listen",
        "KGW_LISTEN",
        "",
        _endpoints,
        "Listen on a Twisted endpoint string, e.g. tcp:8888:interface=127.0.0.1; repeatable, "
        "replaces --ip/--port (KGW_LISTEN: several, separated by spaces).",
        LISTENING,
        repeatable=True,
    ),
    Setting("ip", "KG_IP", "127.0.0.1", _text, "Interface to listen on (with --port).", LISTENING),
    Setting("port", "KG_PORT", "8888", _int(0, 65535), "Port to listen on (with --ip).", LISTENING),
    Setting(
        "port-retries",
        "KG_PORT_RETRIES",
        "50",
        _int(0),
        "Further ports to try, one up each time, when --port is taken (not with --listen).",
        LISTENING,
    ),
    Setting(
        "trust-xheaders",
        "KG_TRUST_XHEADERS",
        "false",
        _bool,
        "Take the client address from X-Forwarded-For/X-Real-Ip (behind a proxy you trust).",
        LISTENING,
        flag=True,
    ),
    Setting(
        "certfile",
        "KG_CERTFILE",
        "",
        _text,
        "PEM certificate (chain) file: serve HTTPS/WSS on every endpoint that is not ssl:.",
        TLS,
    ),
    Setting(
        "keyfile",
        "KG_KEYFILE",
        "",
        _text,
        "PEM private key of --certfile (default: read from the --certfile file).",
        TLS,
    ),
    Setting(
        "client-ca",
        "KG_CLIENT_CA",
        "",
        _text,
        "PEM file of CAs: clients must present a certificate signed by one (mutual TLS).",
        TLS,
    ),
    Setting(
        "ssl-version",
        "KG_SSL_VERSION",
        "",
        _text,
        "Python ssl.PROTOCOL_* number as jupyter_kernel_gateway takes it: 5 pins TLS 1.2; "
        "never below TLS 1.2.",
        TLS,
    ),
    Setting(
        "log-format",
        "KGW_LOG_FORMAT",
        "text",
        _choice("text", "json"),
        "text (readable) or json (one JSON object per line, for journald and log shippers).",
        LOGS,
    ),
    Setting("base-url", "KG_BASE_URL", "/", _text, "URL prefix of every resource.", LISTENING),
    Setting(
        "auth-token", "KG_AUTH_TOKEN", "", _text, "Shared token every request must carry.", AUTH
    ),
    Setting(
        "allow-unauthenticated",
        "KGW_ALLOW_UNAUTHENTICATED",
        "false",
        _bool,
        "Allow listening on a non-loopback interface without --auth-token.",
        AUTH,
        flag=True,
    ),
    Setting(
        "metrics-unauthenticated",
        "KGW_METRICS_UNAUTHENTICATED",
        "false",
        _bool,
        "Serve /metrics and /api/status without the token (for a Prometheus scraper).",
        LOGS,
        flag=True,
    ),
    Setting(
        "allow-origin", "KG_ALLOW_ORIGIN", "", _text, "Access-Control-Allow-Origin value.", AUTH
    ),
    Setting(
        "allow-credentials",
        "KG_ALLOW_CREDENTIALS",
        "",
        _text,
        "Access-Control-Allow-Credentials value.",
        AUTH,
    ),
    Setting(
        "allow-headers", "KG_ALLOW_HEADERS", "", _text, "Access-Control-Allow-Headers value.", AUTH
    ),
    Setting(
        "allow-methods", "KG_ALLOW_METHODS", "", _text, "Access-Control-Allow-Methods value.", AUTH
    ),
    Setting(
        "expose-headers",
        "KG_EXPOSE_HEADERS",
        "",
        _text,
        "Access-Control-Expose-Headers value.",
        AUTH,
    ),
    Setting("max-age", "KG_MAX_AGE", "", _text, "Access-Control-Max-Age value.", AUTH),
    Setting(
        "max-kernels",
        "KG_MAX_KERNELS",
        "0",
        _int(0),
        "Most kernels at once (0: no limit).",
        KERNELS,
    ),
    Setting(
        "default-kernel-name",
        "KG_DEFAULT_KERNEL_NAME",
        "",
        _text,
        "Kernelspec used when a request names none (default: jupyter_client's default).",
        KERNELS,
    ),
    Setting(
        "force-kernel-name",
        "KG_FORCE_KERNEL_NAME",
        "",
        _text,
        "Kernelspec used for every kernel, whatever the request names.",
        KERNELS,
    ),
    Setting(
        "list-kernels",
        "KG_LIST_KERNELS",
        "false",
        _bool,
        "Allow GET /api/kernels to list every running kernel.",
        KERNELS,
        flag=True,
    ),
    Setting(
        "env-process-whitelist",
        "KG_ENV_PROCESS_WHITELIST",
        "",
        _names,
        "Gateway environment variables passed to kernels started with an env (comma list).",
        KERNELS,
    ),
    Setting(
        "env-whitelist",
        "KG_ENV_WHITELIST",
        "",
        _names,
        "Client env variables, besides KERNEL_*, passed to kernels (comma list).",
        KERNELS,
    ),
    Setting(
        "prespawn-count",
        "KG_PRESPAWN_COUNT",
        "0",
        _int(0),
        "Ready kernels of the default kernelspec kept warm in the pool.",
        POOL,
    ),
    Setting(
        "pool",
        "KGW_POOL",
        "",
        _pool,
        "Ready kernels per kernelspec for requests without an env, e.g. python3=4,ir=1 "
        "(adds to --prespawn-count).",
        POOL,
    ),
    Setting(
        "env-pool",
        "KGW_ENV_POOL",
        "",
        _pool,
        "Ready kernels per kernelspec for requests that send an env (jupyter_server's "
        "GatewayClient always does), e.g. python3=2: started with the environment such a "
        "request gets; the request's own variables are set as one is handed out (Python "
        "kernelspecs only).",
        POOL,
    ),
    Setting(
        "seed-uri",
        "KG_SEED_URI",
        "",
        _text,
        "Notebook (path or file: URL) whose code cells run in every new kernel.",
        POOL,
    ),
    Setting(
        "restart-limit",
        "KGW_RESTART_LIMIT",
        "5",
        _int(0),
        "Automatic restarts within --restart-window before a dying kernel is declared dead.",
        POOL,
    ),
    Setting(
        "restart-window",
        "KGW_RESTART_WINDOW",
        "60",
        _int(1),
        "Seconds over which --restart-limit counts restarts.",
        POOL,
    ),
    Setting(
        "cull-idle-timeout",
        "KGW_CULL_IDLE_TIMEOUT",
        "0",
        _int(0),
        "Shut down kernels idle this many seconds (0: never), as jupyter_server does.",
        POOL,
    ),
    Setting(
        "cull-interval",
        "KGW_CULL_INTERVAL",
        "300",
        _int(1),
        "Seconds between checks for idle kernels.",
        POOL,
    ),
    Setting(
        "cull-connected",
        "KGW_CULL_CONNECTED",
        "false",
        _bool,
        "Also cull idle kernels that have websocket connections.",
        POOL,
        flag=True,
    ),
    Setting(
        "cull-busy",
        "KGW_CULL_BUSY",
        "false",
        _bool,
        "Also cull kernels that are busy (by last activity only).",
        POOL,
        flag=True,
    ),
    Setting(
        "ws-ping-interval",
        "KG_WS_PING_INTERVAL_SECS",
        "30",
        _int(0),
        "Seconds between websocket pings, so proxies keep idle connections (0: no pings).",
        WEBSOCKETS,
    ),
    Setting(
        "ws-ping-timeout",
        "KGW_WS_PING_TIMEOUT",
        "30",
        _int(1),
        "Seconds a client may take to answer a ping before its websocket is closed.",
        WEBSOCKETS,
    ),
    Setting(
        "ws-stall-timeout",
        "KGW_WS_STALL_TIMEOUT",
        "30",
        _int(0),
        "Seconds a websocket client may read nothing while output waits for it before it is "
        "closed (1008); a slow client that reads is never closed (0: never).",
        WEBSOCKETS,
    ),
    Setting(
        "ws-backlog-memory",
        "KGW_WS_BACKLOG_MEMORY",
        "8M",
        _bytes(MiB),
        "Bytes of a kernel's output kept in memory for clients that read slower than it "
        "writes; the rest goes to unnamed files in --ws-backlog-dir.",
        WEBSOCKETS,
    ),
    Setting(
        "ws-backlog-limit",
        "KGW_WS_BACKLOG_LIMIT",
        "2G",
        _bytes(16 * MiB),
        "Bytes of a kernel's output kept in all (memory and disk) for clients behind; past "
        "it the oldest is given up and those clients are told how much they missed.",
        WEBSOCKETS,
    ),
    Setting(
        "ws-backlog-dir",
        "KGW_WS_BACKLOG_DIR",
        "",
        _text,
        "Directory of the backlog's files (default: the system's temporary directory).",
        WEBSOCKETS,
    ),
)

SETTING = {setting.name: setting for setting in SETTINGS}


def _default(name: str) -> Any:
    """The parsed default of a setting: the one place a default is written is SETTINGS."""
    setting = SETTING[name]
    return setting.parse(setting.default)


def normalize_base_url(base_url: str) -> str:
    """'/', '/kg', 'kg/' -> '/', '/kg/', '/kg/'."""
    stripped = base_url.strip("/")
    return f"/{stripped}/" if stripped else "/"


def _tcp_endpoint(ip: str, port: int, source: str = "--ip") -> str:
    if not ip:
        return f"tcp:{port}"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise ConfigError(f"{source}: not an IP address: {ip!r}") from None
    interface = str(address).replace(":", "\\:")
    kind = "tcp6" if address.version == 6 else "tcp"
    return f"{kind}:{port}:interface={interface}"


@attrs.frozen
class CorsPolicy:
    """The CORS response headers; an empty value sends no header."""

    allow_origin: str = _default("allow-origin")
    allow_credentials: str = _default("allow-credentials")
    allow_headers: str = _default("allow-headers")
    allow_methods: str = _default("allow-methods")
    expose_headers: str = _default("expose-headers")
    max_age: str = _default("max-age")

    def headers(self) -> dict[str, str]:
        named = {
            "Access-Control-Allow-Origin": self.allow_origin,
            "Access-Control-Allow-Credentials": self.allow_credentials,
            "Access-Control-Allow-Headers": self.allow_headers,
            "Access-Control-Allow-Methods": self.allow_methods,
            "Access-Control-Expose-Headers": self.expose_headers,
            "Access-Control-Max-Age": self.max_age,
        }
        return {name: value for name, value in named.items() if value}


@attrs.frozen
class GatewayConfig:
    """The validated settings of one gateway, passed down explicitly."""

    listen: tuple[str, ...] = (_tcp_endpoint(_default("ip"), _default("port")),)
    tls: TLSPolicy = attrs.Factory(TLSPolicy)
    port_retries: int = _default("port-retries")  # only for the endpoint made from --ip/--port
    trust_xheaders: bool = _default("trust-xheaders")
    notify_socket: str = ""  # systemd's $NOTIFY_SOCKET, for Type=notify
    log_format: str = _default("log-format")
    base_url: str = normalize_base_url(_default("base-url"))
    auth_token: str = _default("auth-token")
    allow_unauthenticated: bool = _default("allow-unauthenticated")
    metrics_unauthenticated: bool = _default("metrics-unauthenticated")
    cors: CorsPolicy = CorsPolicy()
    max_kernels: int = _default("max-kernels")
    default_kernel_name: str = _default("default-kernel-name")
    force_kernel_name: str = _default("force-kernel-name")
    list_kernels: bool = _default("list-kernels")
    env_process_whitelist: tuple[str, ...] = _default("env-process-whitelist")
    env_whitelist: tuple[str, ...] = _default("env-whitelist")
    ws_stall_timeout: int = _default("ws-stall-timeout")
    ws_backlog_memory: int = _default("ws-backlog-memory")
    ws_backlog_limit: int = _default("ws-backlog-limit")
    ws_backlog_dir: str = _default("ws-backlog-dir")
    ws_ping_interval: int = _default("ws-ping-interval")
    ws_ping_timeout: int = _default("ws-ping-timeout")
    prespawn_count: int = _default("prespawn-count")
    pool: tuple[tuple[str, int], ...] = _default("pool")
    env_pool: tuple[tuple[str, int], ...] = _default("env-pool")
    seed_uri: str = _default("seed-uri")
    restart_limit: int = _default("restart-limit")
    restart_window: int = _default("restart-window")
    cull_idle_timeout: int = _default("cull-idle-timeout")
    cull_interval: int = _default("cull-interval")
    cull_connected: bool = _default("cull-connected")
    cull_busy: bool = _default("cull-busy")
    # Where each setting came from ("--pool" or "KGW_POOL"), for errors found after load().
    sources: Mapping[str, str] = attrs.field(factory=dict, eq=False, repr=False)

    def source(self, name: str) -> str:
        """How the user gave setting ``name``: its flag, or the variable it came from."""
        return self.sources.get(name, f"--{name}")


# jupyter_kernel_gateway's notebook-http mode, which kgw does not have (yet): refuse its
# options rather than ignore them.
NOTEBOOK_HTTP_VARIABLES = ("KG_CELL_PARSER", "KG_ALLOW_NOTEBOOK_DOWNLOAD", "KG_STATIC_PATH")
WEBSOCKET_API = "kernel_gateway.jupyter_websocket"


def check_unsupported(environ: Mapping[str, str]) -> None:
    """Raise ConfigError for jupyter_kernel_gateway settings of a mode kgw does not serve."""
    api = environ.get("KG_API", WEBSOCKET_API)
    if api not in (WEBSOCKET_API, "jupyter-websocket"):
        raise ConfigError(
            f"KG_API={api!r}: kgw serves only the jupyter-websocket mode ({WEBSOCKET_API}); "
            "notebook-http is not supported"
        )
    for name in NOTEBOOK_HTTP_VARIABLES:
        if environ.get(name):
            raise ConfigError(
                f"{name}: belongs to jupyter_kernel_gateway's notebook-http mode, "
                "which is not supported by kgw"
            )


def load(
    flags: Mapping[str, str | None],
    environ: Mapping[str, str],
    listen: tuple[str, ...] = (),
) -> GatewayConfig:
    """Merge flags, environment and defaults into a validated config, or raise ConfigError."""
    check_unsupported(environ)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        raw = flags.get(setting.name)
        source = f"--{setting.name}"
        if setting.repeatable and listen:  # --listen, given on the command line
            values[setting.name], sources[setting.name] = listen, source
            continue
        if raw is None and setting.env in environ:
            raw, source = environ[setting.env], setting.env
        sources[setting.name] = source
        if raw is None:
            raw, source = setting.default, f"--{setting.name} default"
        try:
            values[setting.name] = setting.parse(raw)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
    if values["ws-backlog-memory"] > values["ws-backlog-limit"]:
        raise ConfigError(
            f"{sources['ws-backlog-memory']}: {values['ws-backlog-memory']} bytes is more than "
            f"{sources['ws-backlog-limit']} ({values['ws-backlog-limit']} bytes)"
        )
    listen = values["listen"]
    port_retries = 0
    if not listen:
        listen = (_tcp_endpoint(values["ip"], values["port"], sources["ip"]),)
        sources["listen"] = sources["ip"]
        port_retries = values["port-retries"] if values["port"] else 0
    try:
        tls = parse_ssl_version(values["ssl-version"])
    except ConfigError as e:
        raise ConfigError(f"{sources['ssl-version']}: {e}") from None
    tls = with_files(tls, values["certfile"], values["keyfile"], values["client-ca"], sources)
    if tls.client_ca and not tls.certfile and not any(d.startswith("ssl:") for d in listen):
        raise ConfigError(
            f"{sources['client-ca']} needs TLS: set --certfile (KG_CERTFILE) or --listen ssl:..."
        )
    # Every setting whose name is a GatewayConfig field goes there as parsed; the rest
    # (ip and port, the TLS files, the CORS headers) are combined below.
    fields = attrs.fields_dict(GatewayConfig)
    direct = {
        field: values[setting.name]
        for setting in SETTINGS
        if (field := setting.name.replace("-", "_")) in fields
    }
    cors_fields = attrs.fields_dict(CorsPolicy)
    cors = {
        field: values[setting.name]
        for setting in SETTINGS
        if (field := setting.name.replace("-", "_")) in cors_fields
    }
    direct.update(
        listen=listen,
        tls=tls,
        port_retries=port_retries,
        notify_socket=environ.get("NOTIFY_SOCKET", ""),
        base_url=normalize_base_url(values["base-url"]),
        cors=CorsPolicy(**cors),
        sources=sources,
    )
    config = GatewayConfig(**direct)
    return config


def is_loopback(interface: str) -> bool:
    """True for an interface only this machine can reach ('' means every interface)."""
    if interface == "localhost":
        return True
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return False
