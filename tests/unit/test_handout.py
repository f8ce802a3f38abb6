"""An env-pool kernel handed to a request with env: which variables, the code that sets them."""

from __future__ import annotations

import os

import pytest

from kgw.kernels import handout


def test_only_the_request_variables_are_changed() -> None:
    base = {"PATH": "/usr/bin", "LANG": "C.UTF-8", "KERNEL_GATEWAY": "1"}
    target = {**base, "KERNEL_USERNAME": "erin", "LANG": "de_DE.UTF-8"}
    assert handout.changes(base, target) == {"KERNEL_USERNAME": "erin", "LANG": "de_DE.UTF-8"}
    assert handout.removed(base, target) == []
    assert handout.removed({**base, "OLD": "x"}, target) == ["OLD"]


def test_only_python_kernels_can_take_variables() -> None:
    assert handout.can_apply("python")
    assert handout.can_apply("Python")
    assert not handout.can_apply("R")
    assert not handout.can_apply("")


def test_the_code_sets_and_unsets_and_leaves_no_name_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KGW_HANDOUT_OLD", "x")
    monkeypatch.delenv("KGW_HANDOUT_NEW", raising=False)
    tricky = "quote ' and \" and $(touch /tmp/x) and \n newline"
    code = handout.python_code({"KGW_HANDOUT_NEW": tricky}, ["KGW_HANDOUT_OLD"])
    namespace: dict[str, object] = {}
    try:
        exec(code, namespace)  # what the kernel runs, with the user's namespace
        assert os.environ["KGW_HANDOUT_NEW"] == tricky
        assert "KGW_HANDOUT_OLD" not in os.environ
        assert set(namespace) == {"__builtins__"}
    finally:
        os.environ.pop("KGW_HANDOUT_NEW", None)
