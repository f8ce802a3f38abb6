"""The kernels REST calls and how gateway errors surface (a fake transport, no sockets)."""

from __future__ import annotations

import json

import pytest

from kgw.client.errors import GatewayError, GatewayHTTPError, KernelDied
from kgw.client.rest import KernelsAPI, Response
from kgw.client.settings import GatewaySettings

SETTINGS = GatewaySettings("http://gateway.test/kg", auth_token="s3cret")
MODEL = {"id": "k/1", "name": "python3", "execution_state": "idle", "connections": 0}


class Recorder:
    """Answers every request with one response and remembers the requests."""

    def __init__(self, status: int, body: object = b"", reason: str = "") -> None:
        self.response = Response(
            status, reason, body if isinstance(body, bytes) else json.dumps(body).encode()
        )
        self.requests: list[tuple[str, str, object]] = []

    def __call__(
        self, settings: GatewaySettings, method: str, url: str, body: bytes | None
    ) -> Response:
        self.requests.append((method, url, None if body is None else json.loads(body)))
        return self.response


def test_start_posts_the_name_and_env_and_returns_the_model() -> None:
    transport = Recorder(201, MODEL)
    model = KernelsAPI(SETTINGS, transport).start("python3", {"KERNEL_USERNAME": "ada"})
    assert model == MODEL
    assert transport.requests == [
        (
            "POST",
            "http://gateway.test/kg/api/kernels",
            {"name": "python3", "env": {"KERNEL_USERNAME": "ada"}},
        )
    ]


def test_start_without_a_name_or_env_sends_an_empty_body() -> None:
    transport = Recorder(201, MODEL)
    KernelsAPI(SETTINGS, transport).start(None, {})
    assert transport.requests[0][2] == {}


def test_kernel_paths_quote_the_id() -> None:
    transport = Recorder(204)
    KernelsAPI(SETTINGS, transport).interrupt("k/1")
    assert transport.requests == [
        ("POST", "http://gateway.test/kg/api/kernels/k%2F1/interrupt", {})
    ]


def test_an_error_carries_the_gateways_reason_and_message() -> None:
    body = {"reason": "Resource Limit", "message": "Maximum number of kernels reached (1)"}
    with pytest.raises(GatewayHTTPError) as caught:
        KernelsAPI(SETTINGS, Recorder(403, body, "Forbidden")).start(None, {})
    error = caught.value
    assert (error.status, error.reason, error.message) == (403, *body.values())
    assert "HTTP 403 Resource Limit: Maximum number of kernels reached (1)" in str(error)
    assert "s3cret" not in str(error)


def test_an_error_without_a_json_body_keeps_the_phrase_and_text() -> None:
    with pytest.raises(GatewayHTTPError) as caught:
        KernelsAPI(SETTINGS, Recorder(502, b"<html>bad gateway</html>", "Bad Gateway")).get("k")
    assert (caught.value.reason, caught.value.message) == (
        "Bad Gateway",
        "<html>bad gateway</html>",
    )


def test_a_kernel_the_gateway_does_not_know_is_kernel_died() -> None:
    body = {"reason": "Not Found", "message": "Kernel does not exist: k1"}
    api = KernelsAPI(SETTINGS, Recorder(404, body))
    with pytest.raises(KernelDied) as caught:
        api.restart("k1")
    assert caught.value.kernel_id == "k1"
    assert isinstance(caught.value.__cause__, GatewayHTTPError)
    assert api.delete("k1") is False


def test_an_unknown_kernelspec_is_an_http_error_not_a_dead_kernel() -> None:
    body = {"reason": "Not Found", "message": "Kernel spec does not exist: nope"}
    with pytest.raises(GatewayHTTPError) as caught:
        KernelsAPI(SETTINGS, Recorder(404, body)).start("nope", {})
    assert not isinstance(caught.value, KernelDied)


def test_an_answer_that_is_not_a_model_is_an_error() -> None:
    with pytest.raises(GatewayError, match="not a JSON object"):
        KernelsAPI(SETTINGS, Recorder(200, b"[]")).get("k")
