"""Token auth, base URL, CORS and websocket origin checks against a real kgw."""

from __future__ import annotations

import pytest
import requests
from websockets.exceptions import InvalidStatus

from tests.integration.harness import Gateway, stream_text

TOKEN = "tok-8f3e2a91c7"


@pytest.fixture(scope="module")
def secured() -> Gateway:
    with Gateway("--list-kernels", token=TOKEN, base_url="/kg/") as gw:
        yield gw  # type: ignore[misc]
    assert gw.leftover_kernels() == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "api"),
        ("GET", "api/kernelspecs"),
        ("GET", "api/kernelspecs/python3"),
        ("GET", "kernelspecs/python3/logo-64x64.png"),
        ("GET", "api/kernels"),
        ("POST", "api/kernels"),
        ("GET", "api/kernels/any"),
        ("DELETE", "api/kernels/any"),
        ("POST", "api/kernels/any/interrupt"),
        ("POST", "api/kernels/any/restart"),
    ],
)
def test_every_endpoint_requires_the_token(secured: Gateway, method: str, path: str) -> None:
    url = secured.url + path
    missing = requests.request(method, url, timeout=30)
    assert missing.status_code == 401
    assert missing.json()["reason"] == "Unauthorized"
    wrong = requests.request(method, url, headers={"Authorization": "token nope"}, timeout=30)
    assert wrong.status_code == 401


def test_token_in_header_or_query(secured: Gateway) -> None:
    for headers, params in [
        ({"Authorization": f"token {TOKEN}"}, {}),
        ({"Authorization": f"Bearer {TOKEN}"}, {}),
        ({}, {"token": TOKEN}),
    ]:
        response = requests.get(secured.url + "api", headers=headers, params=params, timeout=30)
        assert response.status_code == 200, (headers, params)


def test_websocket_requires_the_token_and_works_under_base_url(secured: Gateway) -> None:
    assert secured.url.endswith("/kg/")
    assert requests.get(secured.url.replace("/kg/", "/") + "api", timeout=30).status_code == 404
    kernel_id = secured.start_kernel()
    saved, secured.token = secured.token, None
    try:
        with pytest.raises(InvalidStatus) as refused:
            secured.connect(kernel_id)
        assert refused.value.response.status_code == 401
        with secured.connect(kernel_id, query=f"?token={TOKEN}&session_id=abc") as ks:
            _, iopub = ks.execute("print('via query token')")
            assert stream_text(iopub) == "via query token\n"
    finally:
        secured.token = saved
    with secured.connect(kernel_id) as ks:
        _, iopub = ks.execute("print('via header')")
        assert stream_text(iopub) == "via header\n"


def test_token_never_logged(secured: Gateway) -> None:
    requests.get(secured.url + "api", params={"token": TOKEN}, timeout=30)
    requests.get(secured.url + "api", params={"token": "wrong-guess-123"}, timeout=30)
    requests.get(secured.url + "api", headers={"Authorization": f"token {TOKEN}"}, timeout=30)
    secured.wait_for_line(__import__("re").compile(r"GET /kg/api\?token=\[secret\] 401"), 30)
    assert TOKEN not in secured.log
    assert "wrong-guess-123" not in secured.log


CORS_ENV = {
    "KG_ALLOW_ORIGIN": "https://docs.example.org",
    "KG_ALLOW_CREDENTIALS": "true",
    "KG_ALLOW_HEADERS": "Authorization, Content-Type",
    "KG_ALLOW_METHODS": "GET, POST, DELETE",
    "KG_EXPOSE_HEADERS": "Location",
    "KG_MAX_AGE": "600",
}


def test_cors_headers_preflight_and_origin_check() -> None:
    with Gateway(token=TOKEN, env=CORS_ENV) as gw:
        preflight = requests.options(
            gw.url + "api/kernels",
            headers={
                "Origin": "https://docs.example.org",
                "Access-Control-Request-Method": "POST",
            },
            timeout=30,
        )
        assert preflight.status_code == 200
        expected = {
            "Access-Control-Allow-Origin": "https://docs.example.org",
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Allow-Methods": "GET, POST, DELETE",
            "Access-Control-Expose-Headers": "Location",
            "Access-Control-Max-Age": "600",
        }
        for name, value in expected.items():
            assert preflight.headers[name] == value
        # Errors carry the headers too, so a browser can read them.
        refused = requests.get(gw.url + "api", timeout=30)
        assert refused.status_code == 401
        assert refused.headers["Access-Control-Allow-Origin"] == "https://docs.example.org"

        kernel_id = gw.start_kernel()
        with gw.connect(kernel_id, origin="https://docs.example.org") as ks:
            ks.execute("pass")
        with pytest.raises(InvalidStatus) as cross:
            gw.connect(kernel_id, origin="https://evil.example.com")
        assert cross.value.response.status_code == 403


def test_websocket_origin_without_cors_config() -> None:
    with Gateway() as gw:
        kernel_id = gw.start_kernel()
        host = gw.url.split("/")[2]
        with gw.connect(kernel_id, origin=f"http://{host}") as ks:
            ks.execute("pass")
        with pytest.raises(InvalidStatus) as cross:
            gw.connect(kernel_id, origin="https://elsewhere.example.com")
        assert cross.value.response.status_code == 403
