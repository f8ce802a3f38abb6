"""The token check, the websocket origin policy and token redaction in logs."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kgw.web.auth import origin_allowed, presented_token, redact_token, token_matches

# --- presented_token --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        "token s3cret",
        "Token s3cret",
        "TOKEN s3cret",
        "Bearer s3cret",
        "bearer s3cret",
        "BEARER s3cret",
        "  token   s3cret  ",
    ],
)
def test_token_is_read_from_the_authorization_header(authorization: str) -> None:
    assert presented_token(authorization, None) == "s3cret"


def test_header_token_wins_over_the_query_token() -> None:
    assert presented_token("token from-header", "from-query") == "from-header"


@pytest.mark.parametrize("authorization", [None, "", "Basic dXNlcjpwdw==", "token", "token   "])
def test_query_token_is_used_when_the_header_carries_none(authorization: str | None) -> None:
    assert presented_token(authorization, "from-query") == "from-query"


def test_no_token_anywhere_is_none() -> None:
    assert presented_token(None, None) is None
    assert presented_token("Basic abc", None) is None


# --- token_matches ----------------------------------------------------------------------------


@pytest.mark.parametrize("presented", [None, "", "anything"])
def test_every_request_is_allowed_when_no_token_is_configured(presented: str | None) -> None:
    assert token_matches("", presented)


def test_the_configured_token_is_allowed() -> None:
    assert token_matches("s3cret", "s3cret")


@pytest.mark.parametrize("presented", [None, "", "wrong", "s3cre", "s3cret ", "S3CRET"])
def test_a_wrong_or_missing_token_is_refused(presented: str | None) -> None:
    assert not token_matches("s3cret", presented)


def test_non_ascii_tokens_are_compared() -> None:
    assert token_matches("jéton✓", "jéton✓")
    assert not token_matches("jéton✓", "jeton✓")


@settings(max_examples=50, deadline=None)
@given(expected=st.text(min_size=1), presented=st.text())
def test_token_matches_only_the_same_token(expected: str, presented: str) -> None:
    assert token_matches(expected, presented) == (expected == presented)


# --- origin_allowed ---------------------------------------------------------------------------


def test_a_request_without_origin_is_allowed() -> None:
    assert origin_allowed(None, "gateway:8888", "")


def test_star_allows_every_origin() -> None:
    assert origin_allowed("https://elsewhere.example", "gateway:8888", "*")


def test_the_configured_origin_is_allowed() -> None:
    assert origin_allowed("https://lab.example", "gateway:8888", "https://lab.example")


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://gateway:8888", "gateway:8888"),
        ("https://gateway:8888", "gateway:8888"),
        ("http://GATEWAY:8888", "gateway:8888"),
        ("http://gateway:8888", "Gateway:8888"),
        ("http://127.0.0.1:8888", "127.0.0.1:8888"),
    ],
)
def test_an_origin_on_the_same_host_is_allowed(origin: str, host: str) -> None:
    assert origin_allowed(origin, host, "")


@pytest.mark.parametrize(
    ("origin", "host", "allow_origin"),
    [
        ("https://evil.example", "gateway:8888", ""),
        ("https://evil.example", "gateway:8888", "https://lab.example"),
        ("http://gateway:9999", "gateway:8888", ""),
        ("http://gateway.evil.example:8888", "gateway:8888", ""),
        ("null", "gateway:8888", ""),
        ("https://evil.example", None, ""),
        ("https://evil.example", "", ""),
        ("null", "", ""),
    ],
)
def test_an_origin_on_another_host_is_refused(
    origin: str, host: str | None, allow_origin: str
) -> None:
    assert not origin_allowed(origin, host, allow_origin)


# --- redact_token -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/api/kernels?token=s3cret", "/api/kernels?token=[secret]"),
        (
            "/api/kernels/k1/channels?session_id=abc&token=s3cret",
            "/api/kernels/k1/channels?session_id=abc&token=[secret]",
        ),
        ("/api?token=s3cret&x=1&y=", "/api?token=[secret]&x=1&y="),
        ("/api?TOKEN=s3cret", "/api?TOKEN=[secret]"),
        ("/api?token=a=b=c", "/api?token=[secret]"),
        ("/api?token=", "/api?token=[secret]"),
        ("/api?token=one&token=two", "/api?token=[secret]&token=[secret]"),
        ("/api?tokens=kept&my_token=kept", "/api?tokens=kept&my_token=kept"),
        ("/api/kernels", "/api/kernels"),
        ("/api?", "/api?"),
    ],
)
def test_redact_token(uri: str, expected: str) -> None:
    assert redact_token(uri) == expected


# Tokens and other arguments share no character, so a surviving token is unmistakable.
tokens = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ-.~", min_size=6)
other_args = st.lists(
    st.tuples(
        st.text(alphabet="abcdefghij_", min_size=1).filter(lambda name: name != "token"),
        st.text(alphabet="abcdefghij0123456789", max_size=8),
    ),
    max_size=4,
)


@settings(max_examples=50, deadline=None)
@given(token=tokens, before=other_args, after=other_args)
def test_token_value_never_survives_and_other_args_are_kept(
    token: str, before: list[tuple[str, str]], after: list[tuple[str, str]]
) -> None:
    fields = [*(f"{k}={v}" for k, v in before), f"token={token}", *(f"{k}={v}" for k, v in after)]
    uri = "/api/kernels/k1/channels?" + "&".join(fields)

    redacted = redact_token(uri)

    assert token not in redacted
    args = parse_qs(redacted.partition("?")[2], keep_blank_values=True)
    assert args["token"] == ["[secret]"]
    for name, value in [*before, *after]:
        assert value in args[name]


def test_percent_encoded_token_name_is_redacted() -> None:
    redacted = redact_token("/api/kernels?tok%65n=s3cret")

    assert "s3cret" not in redacted
