"""Reading seed notebooks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kgw.errors import ConfigError
from kgw.kernels.seed import load_seed


def notebook(path: Path, cells: list[dict[str, object]], kernel: str | None = None) -> Path:
    metadata = {"kernelspec": {"name": kernel, "display_name": kernel}} if kernel else {}
    path.write_text(json.dumps({"cells": cells, "metadata": metadata, "nbformat": 4}))
    return path


def test_code_cells_in_order_from_path_or_file_url(tmp_path: Path) -> None:
    path = notebook(
        tmp_path / "seed.ipynb",
        [
            {"cell_type": "code", "source": ["a = 1\n", "b = 2"]},
            {"cell_type": "markdown", "source": "# not code"},
            {"cell_type": "code", "source": "c = 3"},
        ],
    )
    for uri in (str(path), path.as_uri()):
        seed = load_seed(uri)
        assert seed.cells == ("a = 1\nb = 2", "c = 3")
        assert seed.applies_to("python3") and seed.applies_to("ir")


def test_seed_applies_only_to_its_kernelspec(tmp_path: Path) -> None:
    seed = load_seed(str(notebook(tmp_path / "s.ipynb", [], kernel="python3")))
    assert seed.applies_to("python3")
    assert not seed.applies_to("ir")


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "cannot read it"), ("{not json", "invalid JSON"), ("[]", "no cells")],
)
def test_unusable_seed_is_a_config_error(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "seed.ipynb"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=expected):
        load_seed(str(path))


def test_remote_seed_urls_are_refused() -> None:
    with pytest.raises(ConfigError, match="only local paths"):
        load_seed("https://example.org/seed.ipynb")
