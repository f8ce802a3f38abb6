"""TLS settings: jupyter_kernel_gateway's KG_SSL_VERSION, endpoint strings and their files."""

from __future__ import annotations

import pytest

from kgw.errors import ConfigError
from kgw.tls import TLSPolicy, endpoint_files, parse_ssl_version


@pytest.mark.parametrize("value", ["", "2", "17", "PROTOCOL_TLS", "PROTOCOL_SSLv23", "TLS"])
def test_negotiating_protocols_keep_the_default_policy(value: str) -> None:
    assert parse_ssl_version(value) == TLSPolicy()


@pytest.mark.parametrize("value", ["5", "PROTOCOL_TLSv1_2", "TLSv1_2"])
def test_tls_1_2_pins_the_version(value: str) -> None:
    assert parse_ssl_version(value) == TLSPolicy(tls12_only=True)


@pytest.mark.parametrize("value", ["3", "4", "PROTOCOL_TLSv1", "TLSv1_1"])
def test_versions_below_1_2_are_refused_with_a_warning(value: str) -> None:
    policy = parse_ssl_version(value)
    assert not policy.tls12_only
    assert "below 1.2, which kgw never allows" in policy.warning


@pytest.mark.parametrize("value", ["0", "1", "16", "PROTOCOL_SSLv3", "tls please"])
def test_other_values_are_errors(value: str) -> None:
    with pytest.raises(ConfigError, match="expected a Python ssl protocol number"):
        parse_ssl_version(value)


def test_endpoint_files() -> None:
    assert endpoint_files("tcp:8888") is None
    assert endpoint_files("ssl:8443") == ("server.pem", "server.pem")
    assert endpoint_files("ssl:8443:privateKey=k.pem") == ("k.pem", "k.pem")
    description = "ssl:8443:interface=\\:\\:1:privateKey=k.pem:certKey=/etc/kgw\\:tls/c.pem"
    assert endpoint_files(description) == ("k.pem", "/etc/kgw:tls/c.pem")
