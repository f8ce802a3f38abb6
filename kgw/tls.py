"""TLS for the listening endpoints: files checked at startup, TLS 1.2 at least, client CAs.

Certificates and keys come from ``--certfile``/``--keyfile`` (turned into an ``ssl:``
endpoint string by kgw.config) or from an ``ssl:`` endpoint given to ``--listen``. Either
way the endpoint's OpenSSL context is given kgw's policy before the first handshake: the
lowest protocol version (TLS 1.2 unless ``--ssl-version`` pins 1.2 or asks for less, which
is refused with a warning), and with ``--client-ca`` a client certificate signed by that CA
is required during the handshake (mutual TLS).

Nothing here imports the reactor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IOpenSSLContextFactory
from zope.interface import implementer

from kgw.errors import ConfigError

# Python's ssl.PROTOCOL_* numbers, which jupyter_kernel_gateway's KG_SSL_VERSION takes.
_PROTOCOLS = {
    "2": "PROTOCOL_TLS",  # also PROTOCOL_SSLv23: negotiate the highest version
    "17": "PROTOCOL_TLS_SERVER",
    "3": "PROTOCOL_TLSv1",
    "4": "PROTOCOL_TLSv1_1",
    "5": "PROTOCOL_TLSv1_2",
}
_OLD = ("PROTOCOL_TLSv1", "PROTOCOL_TLSv1_1")


@attrs.frozen
class TLSPolicy:
    """What every TLS endpoint of the gateway enforces."""

    certfile: str = ""  # --certfile: TLS on every endpoint that is not already ssl:
    keyfile: str = ""  # --keyfile (default: the key is in the --certfile file)
    tls12_only: bool = False  # --ssl-version 5 (PROTOCOL_TLSv1_2): TLS 1.2 and nothing else
    client_ca: str = ""  # PEM file of the CA(s) client certificates must be signed by
    warning: str = ""  # said at startup: a requested setting kgw would not honour


def parse_ssl_version(value: str) -> TLSPolicy:
    """KG_SSL_VERSION as jupyter_kernel_gateway takes it: a Python ssl.PROTOCOL_* number
    (or its name). Versions below TLS 1.2 are never allowed: asking for one gives TLS 1.2 at
    least, and a warning at startup."""
    text = value.strip()
    if not text:
        return TLSPolicy()
    name = _PROTOCOLS.get(text, text if text.startswith("PROTOCOL_") else f"PROTOCOL_{text}")
    if name == "PROTOCOL_SSLv23":
        name = "PROTOCOL_TLS"
    if name in ("PROTOCOL_TLS", "PROTOCOL_TLS_SERVER"):
        return TLSPolicy()
    if name == "PROTOCOL_TLSv1_2":
        return TLSPolicy(tls12_only=True)
    if name in _OLD:
        return TLSPolicy(
            warning=(
                f"--ssl-version {value} ({name}) asks for a TLS version below 1.2, which kgw "
                "never allows: serving TLS 1.2 and 1.3 instead; clients limited to TLS "
                "1.0/1.1 will fail to connect"
            )
        )
    known = ", ".join(f"{number} ({n})" for number, n in _PROTOCOLS.items())
    raise ConfigError(f"expected a Python ssl protocol number: one of {known}; got {value!r}")


def with_files(
    policy: TLSPolicy,
    certfile: str,
    keyfile: str,
    client_ca: str,
    named: Mapping[str, str] | None = None,
) -> TLSPolicy:
    """The policy with its certificate, key and client CA files, each checked.

    ``named`` maps a setting to how the user gave it ("--certfile", "KG_CERTFILE").
    """
    names = {"certfile": "--certfile", "keyfile": "--keyfile", "client-ca": "--client-ca"}
    names.update(named or {})
    if keyfile and not certfile:
        raise ConfigError(f"{names['keyfile']} needs --certfile (KG_CERTFILE)")
    if certfile:
        try:
            check_key_and_certificate(keyfile or certfile, certfile)
        except ConfigError as e:
            raise ConfigError(f"{names['keyfile' if keyfile else 'certfile']}: {e}") from None
    if client_ca:
        try:
            check_ca_file(client_ca)
        except ConfigError as e:
            raise ConfigError(f"{names['client-ca']}: {e}") from None
    return attrs.evolve(policy, certfile=certfile, keyfile=keyfile, client_ca=client_ca)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror or e}") from None


def _certificates(path: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(_read(path))
    except ValueError:
        raise ConfigError(f"{path}: no PEM certificate in it") from None


def check_ca_file(path: str) -> None:
    """The client CA file must hold at least one PEM certificate."""
    _certificates(path)


def _key_and_certificates(key_path: str, cert_path: str) -> tuple[Any, list[x509.Certificate]]:
    """Load both as OpenSSL would at the first handshake; raise ConfigError naming the file."""
    certificates = _certificates(cert_path)
    try:
        key = serialization.load_pem_private_key(_read(key_path), password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{key_path}: no PEM private key in it (or it is encrypted)") from None
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    try:
        context.use_certificate(certificates[0])
        context.use_privatekey(key)  # type: ignore[arg-type]
        context.check_privatekey()
    except SSL.Error:
        raise ConfigError(f"{key_path}: this key does not belong to {cert_path}") from None
    return key, certificates


def check_key_and_certificate(key_path: str, cert_path: str) -> None:
    _key_and_certificates(key_path, cert_path)


def context_factory(policy: TLSPolicy) -> PolicyContextFactory:
    """The TLS server context of --certfile/--keyfile, with the policy applied."""
    from twisted.internet.ssl import CertificateOptions

    key, certificates = _key_and_certificates(policy.keyfile or policy.certfile, policy.certfile)
    first, *chain = (crypto.X509.from_cryptography(c) for c in certificates)
    options = CertificateOptions(
        privateKey=crypto.PKey.from_cryptography_key(key),
        certificate=first,
        extraCertChain=chain,
    )
    return PolicyContextFactory(options, policy)


def endpoint_files(description: str) -> tuple[str, str] | None:
    """(privateKey, certKey) of an ``ssl:`` endpoint string, None for other endpoints.

    Twisted's own parser reads the files too, but its errors do not say which file is wrong.
    """
    if not description.startswith("ssl:"):
        return None
    fields: dict[str, str] = {}
    for field in _split(description):
        key, eq, value = field.partition("=")
        if eq:
            fields[key] = value
    key = fields.get("privateKey", "server.pem")
    return key, fields.get("certKey", key)


def _split(description: str) -> list[str]:
    """An endpoint string's colon-separated fields, with Twisted's backslash escapes."""
    fields, current, escaped = [], [], False
    for char in description:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    fields.append("".join(current))
    return fields


@implementer(IOpenSSLContextFactory)
class PolicyContextFactory:
    """Wraps an endpoint's context factory and applies the gateway's TLS policy to it."""

    def __init__(self, inner: Any, policy: TLSPolicy) -> None:
        self._inner = inner
        self._policy = policy
        self._context: SSL.Context | None = None

    def getContext(self) -> SSL.Context:
        if self._context is None:
            context: SSL.Context = self._inner.getContext()
            context.set_min_proto_version(SSL.TLS1_2_VERSION)
            if self._policy.tls12_only:
                context.set_max_proto_version(SSL.TLS1_2_VERSION)
            if self._policy.client_ca:
                context.load_verify_locations(self._policy.client_ca)
                context.load_client_ca(self._policy.client_ca.encode())
                context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT)
            self._context = context
        return self._context


def secure(endpoint: Any, factory: Any, policy: TLSPolicy) -> tuple[Any, bool]:
    """The factory to listen with on ``endpoint``, and whether it speaks TLS.

    An ``ssl:`` endpoint gets kgw's policy on its own certificate; with --certfile, any other
    endpoint (tcp:, systemd:, ...) is wrapped in TLS with that certificate.
    """
    from twisted.internet.endpoints import SSL4ServerEndpoint
    from twisted.protocols.tls import TLSMemoryBIOFactory

    if isinstance(endpoint, SSL4ServerEndpoint):
        # The endpoint keeps its context factory in a private attribute; there is no public
        # way to reach the OpenSSL context an ``ssl:`` string builds.
        endpoint._sslContextFactory = PolicyContextFactory(endpoint._sslContextFactory, policy)
        return factory, True
    if policy.certfile:
        return TLSMemoryBIOFactory(context_factory(policy), False, factory), True
    return factory, False
