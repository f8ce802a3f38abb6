"""A fresh checkout: what the suite builds stays in it and is ignored; README says what it needs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from benchmarks import environment

ROOT = Path(__file__).parents[2]


def ignored(path: str) -> bool:
    done = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
    return done.returncode == 0


def test_what_the_suite_builds_is_in_the_checkout_and_ignored() -> None:
    # The jupyter_kernel_gateway virtualenv of the benchmarks, which the tests use too.
    venv = environment.JKG_VENV
    assert venv.is_relative_to(ROOT), venv
    assert ignored(str(venv.relative_to(ROOT)))


def test_local_environments_and_npm_output_are_ignored() -> None:
    for path in (
        ".venv/bin/python",
        "docs/examples/node_modules/x.js",
        "docs/examples/package-lock.json",
        "tests/node/node_modules/x.js",
    ):
        assert ignored(path), path


def test_readme_lists_the_test_prerequisites() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    head = readme[: readme.index("## ")]
    for needed in ("Node.js 20", "npm", "systemd-analyze", "PyPI", ".ci/run"):
        assert needed in head, needed
