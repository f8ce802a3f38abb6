from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.harness import Gateway


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    """One gateway without a token, kernel listing on, shared by a module's tests."""
    with Gateway("--list-kernels") as gw:
        yield gw
    assert gw.leftover_kernels() == []


@pytest.fixture(scope="module")
def kernel_id(gateway: Gateway) -> str:
    """One kernel shared by a module's tests (tests must leave it idle and alive)."""
    return gateway.start_kernel()
