"""The distribution name: setup.py and every install command in the docs agree on it.

"kgw" on PyPI is an unrelated project; a doc that says ``pip install kgw`` sends a user to a
stranger's code.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
DOCUMENTS += [ROOT / "setup.py", ROOT / ".ci" / "run", *sorted((ROOT / "docs").rglob("*.py"))]
# `pip install` and its arguments, up to the end of the command.
PIP_INSTALL = re.compile(r"pip install((?:\s+(?!#|&&|\|)[^\s`]+)+)")


def distribution_name() -> str:
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DISTRIBUTION":
            assert isinstance(node.value, ast.Constant)
            return str(node.value.value)
    raise AssertionError("setup.py has no DISTRIBUTION")


def installed_projects(text: str) -> list[str]:
    """The project names that the text's pip install commands ask for (no flags, no paths)."""
    found = []
    for match in PIP_INSTALL.finditer(text):
        for argument in match.group(1).split():
            argument = argument.strip("'\"")
            if argument.startswith("-") or argument.startswith(".") or "/" in argument:
                continue
            found.append(re.split(r"[\[<>=!~;]", argument, maxsplit=1)[0])
    return found


def test_setup_names_the_distribution_that_is_ours() -> None:
    name = distribution_name()
    assert name != "kgw"
    assert "name=DISTRIBUTION" in (ROOT / "setup.py").read_text(encoding="utf-8")


def test_no_document_tells_anyone_to_install_kgw() -> None:
    name = distribution_name()
    for document in DOCUMENTS:
        projects = installed_projects(document.read_text(encoding="utf-8"))
        assert "kgw" not in projects, f"{document.relative_to(ROOT)} says pip install kgw"
        ours = [p for p in projects if p.startswith("kgw")]
        assert all(p == name for p in ours), (document.relative_to(ROOT), ours)


def test_the_docs_name_the_release_they_mean() -> None:
    client = (ROOT / "docs" / "client.md").read_text(encoding="utf-8")
    name = distribution_name()
    assert f"pip install {name} " in client
    assert f"pip install '{name}[gateway]'" in client


def test_the_check_catches_the_trap() -> None:
    assert installed_projects("run `pip install kgw` first") == ["kgw"]
    assert installed_projects("pip install 'kgw[gateway]' && twistd") == ["kgw"]
    assert installed_projects("pip install -e '.[test]' && pytest") == []
