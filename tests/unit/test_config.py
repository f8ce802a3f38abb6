"""Settings: flags beat KG_* variables beat defaults, validated once at startup."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kgw import config
from kgw.config import CorsPolicy, GatewayConfig
from kgw.errors import ConfigError
from kgw.tap import Options, check_listen
from tests.certs import Authority

Getter = Callable[[GatewayConfig], Any]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see no KG_* variable (nor systemd's) from the machine they run on."""
    for name in list(os.environ):
        if name.startswith(("KG_", "KGW_", "LISTEN_")):
            monkeypatch.delenv(name)


def parse(*argv: str) -> GatewayConfig:
    """The config ``twistd kernelgateway argv...`` would run with."""
    options = Options()
    options.parseOptions(list(argv))
    result: GatewayConfig = options.gateway_config
    return result


def usage_error(*argv: str) -> str:
    """The message ``twistd kernelgateway argv...`` would refuse to start with."""
    with pytest.raises(SystemExit) as raised:
        parse(*argv)
    message = str(raised.value.code)
    assert message.startswith("kernelgateway: ")
    assert "\n" not in message
    return message


# --- defaults ---------------------------------------------------------------------------------


def test_defaults_are_the_gateway_config_defaults() -> None:
    assert parse() == GatewayConfig()
    assert config.load({}, {}) == GatewayConfig()


def test_default_listen_is_loopback_port_8888() -> None:
    assert parse().listen == ("tcp:8888:interface=127.0.0.1",)


def test_defaults_are_safe() -> None:
    gateway_config = parse()

    assert gateway_config.base_url == "/"
    assert gateway_config.auth_token == ""
    assert not gateway_config.allow_unauthenticated
    assert not gateway_config.list_kernels
    assert gateway_config.max_kernels == 0
    assert gateway_config.cors.headers() == {}


def test_every_default_parses() -> None:
    for setting in config.SETTINGS:
        setting.parse(setting.default)


# --- every setting, from its flag and from its variable ---------------------------------------

# setting name -> (value to give, how to read it back, what it should read back as)
SETTING_CASES: dict[str, tuple[str, Getter, Any]] = {
    "listen": (
        "tcp:9000:interface=127.0.0.5",
        lambda c: c.listen,
        ("tcp:9000:interface=127.0.0.5",),
    ),
    "ip": ("127.0.0.2", lambda c: c.listen, ("tcp:8888:interface=127.0.0.2",)),
    "port": ("9999", lambda c: c.listen, ("tcp:9999:interface=127.0.0.1",)),
    "base-url": ("/gw", lambda c: c.base_url, "/gw/"),
    "auth-token": ("s3cret", lambda c: c.auth_token, "s3cret"),
    "allow-origin": ("https://lab.example", lambda c: c.cors.allow_origin, "https://lab.example"),
    "allow-credentials": ("true", lambda c: c.cors.allow_credentials, "true"),
    "allow-headers": ("X-One, X-Two", lambda c: c.cors.allow_headers, "X-One, X-Two"),
    "allow-methods": ("GET, POST", lambda c: c.cors.allow_methods, "GET, POST"),
    "expose-headers": ("X-Three", lambda c: c.cors.expose_headers, "X-Three"),
    "max-age": ("600", lambda c: c.cors.max_age, "600"),
    "max-kernels": ("5", lambda c: c.max_kernels, 5),
    "default-kernel-name": ("python3", lambda c: c.default_kernel_name, "python3"),
    "force-kernel-name": ("python3", lambda c: c.force_kernel_name, "python3"),
    "list-kernels": ("True", lambda c: c.list_kernels, True),
    "env-process-whitelist": (
        "HOME, LANG,,TZ",
        lambda c: c.env_process_whitelist,
        ("HOME", "LANG", "TZ"),
    ),
    "env-whitelist": ("MY_VAR,OTHER", lambda c: c.env_whitelist, ("MY_VAR", "OTHER")),
    "ws-stall-timeout": ("5", lambda c: c.ws_stall_timeout, 5),
    "ws-backlog-memory": ("16M", lambda c: c.ws_backlog_memory, 16 << 20),
    "ws-backlog-limit": ("1G", lambda c: c.ws_backlog_limit, 1 << 30),
    "ws-backlog-dir": ("/var/tmp", lambda c: c.ws_backlog_dir, "/var/tmp"),
    "allow-unauthenticated": ("", lambda c: c.allow_unauthenticated, True),
    "metrics-unauthenticated": ("", lambda c: c.metrics_unauthenticated, True),
    "prespawn-count": ("3", lambda c: c.prespawn_count, 3),
    "log-format": ("json", lambda c: c.log_format, "json"),
    "port-retries": ("7", lambda c: c.port_retries, 7),
    "trust-xheaders": ("true", lambda c: c.trust_xheaders, True),
    "ws-ping-interval": ("5", lambda c: c.ws_ping_interval, 5),
    "ws-ping-timeout": ("7", lambda c: c.ws_ping_timeout, 7),
    "pool": ("python3=4, ir=1", lambda c: c.pool, (("python3", 4), ("ir", 1))),
    "env-pool": ("python3=2", lambda c: c.env_pool, (("python3", 2),)),
    "seed-uri": ("/srv/seed.ipynb", lambda c: c.seed_uri, "/srv/seed.ipynb"),
    "restart-limit": ("2", lambda c: c.restart_limit, 2),
    "restart-window": ("30", lambda c: c.restart_window, 30),
    "cull-idle-timeout": ("600", lambda c: c.cull_idle_timeout, 600),
    "cull-interval": ("10", lambda c: c.cull_interval, 10),
    "cull-connected": ("", lambda c: c.cull_connected, True),
    "cull-busy": ("", lambda c: c.cull_busy, True),
    "certfile": ("{pki}/both.pem", lambda c: c.tls.certfile, "{pki}/both.pem"),
    "keyfile": (
        "{pki}/key.pem",
        lambda c: (c.tls.keyfile, c.tls.certfile),
        ("{pki}/key.pem", "{pki}/cert.pem"),
    ),
    "client-ca": ("{pki}/ours-ca.pem", lambda c: c.tls.client_ca, "{pki}/ours-ca.pem"),
    "ssl-version": ("5", lambda c: c.tls.tls12_only, True),
}
# Flags some settings need beside them (a key needs its certificate, a client CA needs TLS).
COMPANIONS = {
    "keyfile": ("--certfile", "{pki}/cert.pem"),
    "client-ca": ("--certfile", "{pki}/both.pem"),
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A server certificate and key, alone and in one file, and the CA that signed them."""
    directory = tmp_path_factory.mktemp("pki")
    issued = Authority(directory, "ours").issue("localhost", server=True)
    issued.cert.rename(directory / "cert.pem")
    issued.key.rename(directory / "key.pem")
    both = (directory / "key.pem").read_text() + (directory / "cert.pem").read_text()
    (directory / "both.pem").write_text(both)
    return directory


def case(name: str, pki: Path) -> tuple[str, Getter, Any, list[str]]:
    """SETTING_CASES[name] with certificate paths filled in, and the flags it needs beside."""
    value, read, expected = SETTING_CASES[name]

    def fill(item: Any) -> Any:
        if isinstance(item, str):
            return item.replace("{pki}", str(pki))
        if isinstance(item, tuple):
            return tuple(fill(x) for x in item)
        return item

    return fill(value), read, fill(expected), [fill(a) for a in COMPANIONS.get(name, ())]


SETTINGS_BY_NAME = {setting.name: setting for setting in config.SETTINGS}
ENV_SETTINGS = [setting.name for setting in config.SETTINGS]


def test_every_setting_has_a_case_here() -> None:
    assert set(SETTING_CASES) == set(SETTINGS_BY_NAME)


@pytest.mark.parametrize("name", ENV_SETTINGS)
def test_every_variable_is_read(name: str, monkeypatch: pytest.MonkeyPatch, pki: Path) -> None:
    value, read, expected, companions = case(name, pki)
    setting = SETTINGS_BY_NAME[name]
    monkeypatch.setenv(setting.env, "true" if setting.flag else value)

    assert read(parse(*companions)) == expected


@pytest.mark.parametrize("name", sorted(SETTING_CASES))
def test_every_flag_is_read(name: str, pki: Path) -> None:
    value, read, expected, companions = case(name, pki)
    argv = [f"--{name}"] if SETTINGS_BY_NAME[name].flag else [f"--{name}", value]

    assert read(parse(*argv, *companions)) == expected


def test_variables_are_the_ones_jupyter_kernel_gateway_reads() -> None:
    assert {s.env for s in config.SETTINGS if s.env} >= {
        "KG_IP",
        "KG_PORT",
        "KG_BASE_URL",
        "KG_AUTH_TOKEN",
        "KG_ALLOW_ORIGIN",
        "KG_ALLOW_CREDENTIALS",
        "KG_ALLOW_HEADERS",
        "KG_ALLOW_METHODS",
        "KG_EXPOSE_HEADERS",
        "KG_MAX_AGE",
        "KG_MAX_KERNELS",
        "KG_DEFAULT_KERNEL_NAME",
        "KG_FORCE_KERNEL_NAME",
        "KG_LIST_KERNELS",
        "KG_ENV_PROCESS_WHITELIST",
        "KG_ENV_WHITELIST",
    }


def test_every_setting_has_its_own_variable() -> None:
    """A systemd EnvironmentFile can set every option: KG_* where jupyter_kernel_gateway
    has the name, else KGW_*."""
    names = [setting.env for setting in config.SETTINGS]
    assert len(set(names)) == len(names)
    assert all(name.startswith(("KG_", "KGW_")) for name in names)
    for name in ("log-format", "pool", "cull-idle-timeout", "ws-stall-timeout", "restart-limit"):
        assert SETTINGS_BY_NAME[name].env.startswith("KGW_")


def test_kgw_listen_takes_several_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGW_LISTEN", "tcp:9000:interface=127.0.0.1  unix:/tmp/kgw.sock")

    assert parse().listen == ("tcp:9000:interface=127.0.0.1", "unix:/tmp/kgw.sock")
    assert parse("--listen", "tcp:9001:interface=127.0.0.1").listen == (
        "tcp:9001:interface=127.0.0.1",
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"KGW_POOL": "python3"}, "kernelgateway: KGW_POOL: expected name=count pairs"),
        ({"KGW_LISTEN": "bogus:1"}, "kernelgateway: KGW_LISTEN 'bogus:1': Unknown endpoint"),
        ({"KG_IP": "nowhere"}, "kernelgateway: KG_IP: not an IP address"),
        ({"KG_IP": "0.0.0.0"}, "kernelgateway: KG_IP 'tcp:8888:interface=0.0.0.0' listens on"),
        ({"KG_CLIENT_CA": "/nope/ca.pem"}, "kernelgateway: KG_CLIENT_CA: /nope/ca.pem: No such"),
        ({"KGW_CULL_BUSY": "maybe"}, "kernelgateway: KGW_CULL_BUSY: expected true or false"),
    ],
)
def test_errors_name_the_variable_they_came_from(
    env: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert usage_error().startswith(expected)


def test_sources_say_where_each_setting_came_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_SEED_URI", "/srv/seed.ipynb")
    loaded = parse("--pool", "python3=1")

    assert loaded.source("seed-uri") == "KG_SEED_URI"
    assert loaded.source("pool") == "--pool"
    assert loaded.source("max-kernels") == "--max-kernels"


def test_help_groups_options_by_topic() -> None:
    help_text = Options().getUsage(width=100)
    positions = [help_text.index(f"\n{topic}:\n") for topic in config.TOPICS]
    assert positions == sorted(positions)
    bounds = [*positions, len(help_text)]
    for setting in config.SETTINGS:
        at = help_text.index(f"  --{setting.name}")
        topic = config.TOPICS.index(setting.topic)
        assert bounds[topic] < at < bounds[topic + 1], setting.name
        section = " ".join(help_text[bounds[topic] : bounds[topic + 1]].split())
        assert f"[env {setting.env}]" in section


def test_unknown_flag_is_one_line_with_a_hint() -> None:
    message = usage_error("--bogus")

    assert (
        message == "kernelgateway: option --bogus not recognized; see twistd kernelgateway --help"
    )
    assert usage_error("--port").endswith("requires argument; see twistd kernelgateway --help")


def test_version_prints_kgw_version(capsys: pytest.CaptureFixture[str]) -> None:
    import kgw

    with pytest.raises(SystemExit) as raised:
        parse("--version")

    assert raised.value.code == 0
    assert capsys.readouterr().out.startswith(f"kgw {kgw.__version__} (twisted ")


def twistd_options(*argv: str) -> Any:
    from twisted.scripts.twistd import ServerOptions

    options = ServerOptions()
    options.parseOptions(list(argv))
    return options


def test_foreground_writes_no_pidfile_unless_asked() -> None:
    """README's first command works twice in a row in the same folder."""
    assert twistd_options("-n", "kernelgateway")["pidfile"] == ""
    assert twistd_options("-n", "--pidfile=kgw.pid", "kernelgateway")["pidfile"] == (
        os.path.abspath("kgw.pid")
    )
    assert twistd_options("kernelgateway")["pidfile"] == os.path.abspath("twistd.pid")


# --- precedence -------------------------------------------------------------------------------


def test_flag_beats_variable_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse().max_kernels == 0
    monkeypatch.setenv("KG_MAX_KERNELS", "3")
    assert parse().max_kernels == 3
    assert parse("--max-kernels", "7").max_kernels == 7


def test_port_flag_beats_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_PORT", "9001")
    monkeypatch.setenv("KG_IP", "127.0.0.3")

    assert parse("--port", "9000").listen == ("tcp:9000:interface=127.0.0.3",)


def test_token_flag_beats_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_AUTH_TOKEN", "from-env")

    assert parse("--auth-token", "from-flag").auth_token == "from-flag"


def test_a_flag_hides_a_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_PORT", "abc")

    assert parse("--port", "9000").listen == ("tcp:9000:interface=127.0.0.1",)


def test_list_kernels_flag_beats_a_false_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_LIST_KERNELS", "false")

    assert parse("--list-kernels").list_kernels


def test_load_merges_flags_environment_and_defaults() -> None:
    loaded = config.load(
        {"port": "9000", "auth-token": None},
        {"KG_PORT": "9001", "KG_AUTH_TOKEN": "env-token", "KG_BASE_URL": "kg"},
    )

    assert loaded.listen == ("tcp:9000:interface=127.0.0.1",)
    assert loaded.auth_token == "env-token"
    assert loaded.base_url == "/kg/"
    assert loaded.max_kernels == 0


def test_load_ignores_unrelated_variables() -> None:
    assert config.load({}, {"PORT": "1", "KG_UNKNOWN": "x"}) == GatewayConfig()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("True", True),
        ("true", True),
        ("1", True),
        ("yes", True),
        ("on", True),
        ("False", False),
        ("false", False),
        ("0", False),
        ("no", False),
        ("", False),
    ],
)
def test_list_kernels_variable_values(
    value: str, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KG_LIST_KERNELS", value)

    assert parse().list_kernels is expected


# --- bad values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        ([], {"KG_PORT": "abc"}, "KG_PORT"),
        ([], {"KG_PORT": ""}, "KG_PORT"),
        ([], {"KG_PORT": "65536"}, "KG_PORT"),
        (["--port", "70000"], {}, "--port"),
        (["--port", "-1"], {}, "--port"),
        (["--port", "8o88"], {}, "--port"),
        ([], {"KG_MAX_KERNELS": "-1"}, "KG_MAX_KERNELS"),
        (["--max-kernels", "many"], {}, "--max-kernels"),
        ([], {"KG_LIST_KERNELS": "maybe"}, "KG_LIST_KERNELS"),
        (["--ws-backlog-limit", "1024"], {}, "--ws-backlog-limit"),
        ([], {"KGW_WS_BACKLOG_MEMORY": "lots"}, "KGW_WS_BACKLOG_MEMORY"),
        (["--ws-backlog-memory", "64M", "--ws-backlog-limit", "32M"], {}, "--ws-backlog-memory"),
        (["--ip", "not-an-address"], {}, "--ip"),
        ([], {"KG_IP": "999.1.1.1"}, "not an IP address"),
    ],
)
def test_bad_value_is_a_usage_error_naming_its_source(
    argv: list[str], env: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    message = usage_error(*argv)

    assert named in message


def test_bad_value_message_quotes_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_PORT", "abc")

    assert "'abc'" in usage_error()


def test_bad_value_in_load_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="KG_MAX_KERNELS"):
        config.load({}, {"KG_MAX_KERNELS": "-1"})


# --- base URL ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/", "/"),
        ("", "/"),
        ("//", "/"),
        ("/kg", "/kg/"),
        ("kg", "/kg/"),
        ("kg/", "/kg/"),
        ("/kg/", "/kg/"),
        ("//kg//", "/kg/"),
        ("/a/b", "/a/b/"),
        ("a/b/", "/a/b/"),
    ],
)
def test_base_url_is_normalised(given: str, expected: str) -> None:
    assert config.normalize_base_url(given) == expected


def test_base_url_variable_is_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_BASE_URL", "gateway")

    assert parse().base_url == "/gateway/"


# --- listening --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "listen"),
    [
        (["--ip", "127.0.0.1", "--port", "9000"], "tcp:9000:interface=127.0.0.1"),
        (["--port", "0"], "tcp:0:interface=127.0.0.1"),
        (["--ip", "::1"], "tcp6:8888:interface=\\:\\:1"),
        (["--ip", "0.0.0.0", "--auth-token", "t"], "tcp:8888:interface=0.0.0.0"),
        (["--ip", "", "--auth-token", "t"], "tcp:8888"),
    ],
)
def test_ip_and_port_make_the_listen_string(argv: list[str], listen: str) -> None:
    assert parse(*argv).listen == (listen,)


def test_listen_is_repeatable_and_keeps_its_order() -> None:
    gateway_config = parse(
        "--listen",
        "tcp:9000:interface=127.0.0.1",
        "--listen",
        "unix:/run/kgw/kgw.sock",
        "--listen",
        "tcp6:9001:interface=\\:\\:1",
    )

    assert gateway_config.listen == (
        "tcp:9000:interface=127.0.0.1",
        "unix:/run/kgw/kgw.sock",
        "tcp6:9001:interface=\\:\\:1",
    )


def test_listen_replaces_ip_and_port() -> None:
    gateway_config = parse(
        "--ip", "0.0.0.0", "--port", "1", "--listen", "tcp:2:interface=127.0.0.1"
    )

    assert gateway_config.listen == ("tcp:2:interface=127.0.0.1",)


def test_options_do_not_share_listen_lists() -> None:
    parse("--listen", "tcp:9000:interface=127.0.0.1")

    assert parse().listen == ("tcp:8888:interface=127.0.0.1",)


@pytest.mark.parametrize("interface", ["127.0.0.1", "127.1.2.3", "::1", "localhost"])
def test_loopback_interfaces(interface: str) -> None:
    assert config.is_loopback(interface)


@pytest.mark.parametrize("interface", ["", "0.0.0.0", "::", "10.0.0.1", "example.com", "bogus"])
def test_interfaces_others_can_reach(interface: str) -> None:
    assert not config.is_loopback(interface)


# --- check_listen -----------------------------------------------------------------------------

PUBLIC = [
    "tcp:8888",
    "tcp:8888:interface=0.0.0.0",
    "tcp6:8888:interface=\\:\\:",
    "tcp:8888:interface=10.1.2.3",
    "tcp:8888:interface=example.com",
]
LOOPBACK = [
    "tcp:8888:interface=127.0.0.1",
    "tcp:0:interface=127.0.0.1",
    "tcp6:8888:interface=\\:\\:1",
    "tcp:8888:interface=localhost",
    "unix:/run/kgw/kgw.sock",
]
UNPARSEABLE = [
    "",
    "foo:bar",
    "tcp:",
    "tcp:abc",
    "tcp:8888:bogus=1",
    "tcp:8888:interface=127.0.0.1:backlog=many",
    "ssl:8443:privateKey=/nonexistent/key.pem",
]


@pytest.mark.parametrize("listen", PUBLIC)
def test_public_listening_without_a_token_is_refused(listen: str) -> None:
    with pytest.raises(ConfigError) as raised:
        check_listen(GatewayConfig(listen=(listen,)))

    message = str(raised.value)
    assert repr(listen) in message
    assert "--auth-token" in message
    assert "--allow-unauthenticated" in message


@pytest.mark.parametrize("listen", PUBLIC)
def test_public_listening_with_a_token_is_accepted(listen: str) -> None:
    check_listen(GatewayConfig(listen=(listen,), auth_token="s3cret"))


@pytest.mark.parametrize("listen", PUBLIC)
def test_public_listening_when_allowed_unauthenticated_is_accepted(listen: str) -> None:
    check_listen(GatewayConfig(listen=(listen,), allow_unauthenticated=True))


@pytest.mark.parametrize("listen", LOOPBACK)
def test_loopback_listening_without_a_token_is_accepted(listen: str) -> None:
    check_listen(GatewayConfig(listen=(listen,)))


def test_every_listen_string_is_checked() -> None:
    with pytest.raises(ConfigError, match="'tcp:9000'"):
        check_listen(GatewayConfig(listen=("tcp:8888:interface=127.0.0.1", "tcp:9000")))


@pytest.mark.parametrize("listen", UNPARSEABLE)
def test_unparseable_listen_string_is_refused_in_one_line(listen: str) -> None:
    with pytest.raises(ConfigError) as raised:
        check_listen(GatewayConfig(listen=(listen,), auth_token="s3cret"))

    message = str(raised.value)
    assert message.startswith(f"--listen {listen!r}: ")
    assert "\n" not in message


def test_options_refuse_public_listening_without_a_token() -> None:
    message = usage_error("--ip", "0.0.0.0")

    assert "'0.0.0.0'" in message
    assert "--allow-unauthenticated" in message


def test_options_refuse_a_bare_tcp_port_without_a_token() -> None:
    assert "every interface" in usage_error("--listen", "tcp:8888")


def test_options_accept_public_listening_with_a_token_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KG_AUTH_TOKEN", "s3cret")

    assert parse("--listen", "tcp:8888").listen == ("tcp:8888",)


def test_options_accept_public_listening_when_allowed_unauthenticated() -> None:
    gateway_config = parse("--ip", "0.0.0.0", "--allow-unauthenticated")

    assert gateway_config.listen == ("tcp:8888:interface=0.0.0.0",)
    assert gateway_config.allow_unauthenticated


def test_options_refuse_an_unparseable_listen_string() -> None:
    assert usage_error("--listen", "foo:bar").startswith("kernelgateway: --listen 'foo:bar': ")


def test_systemd_endpoint_without_an_inherited_socket_is_a_usage_error() -> None:
    assert "--listen" in usage_error(
        "--listen", "systemd:domain=INET:index=0", "--auth-token", "s3cret"
    )


def test_cors_policy_sends_only_configured_headers() -> None:
    policy = CorsPolicy(allow_origin="*", max_age="600")

    assert policy.headers() == {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Max-Age": "600",
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KG_API", "kernel_gateway.notebook_http"),
        ("KG_CELL_PARSER", "kernel_gateway.notebook_http.cell.parser"),
        ("KG_ALLOW_NOTEBOOK_DOWNLOAD", "True"),
        ("KG_STATIC_PATH", "/srv/static"),
    ],
)
def test_notebook_http_settings_are_refused(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    message = usage_error()
    assert name in message
    assert "not supported" in message


def test_websocket_api_setting_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_API", "kernel_gateway.jupyter_websocket")
    parse()


def test_configuration_reference_lists_every_option() -> None:
    reference = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    for setting in config.SETTINGS:
        assert f"`--{setting.name}" in reference, setting.name
        if setting.env:
            assert f"`{setting.env}`" in reference, setting.env


def test_every_config_field_is_a_setting_or_made_of_settings() -> None:
    """Config once: a default is written only in SETTINGS, and load() maps by name."""
    import attrs

    composite = {"listen", "tls", "notify_socket", "cors", "sources"}
    for field in set(attrs.fields_dict(GatewayConfig)) - composite:
        assert field.replace("_", "-") in config.SETTING, field
    for field in attrs.fields_dict(CorsPolicy):
        assert field.replace("_", "-") in config.SETTING, field
