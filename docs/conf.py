"""Sphinx configuration: kgw's Markdown pages, read with myst-parser.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.

The options table in configuration.md is not written by hand: the ``kgw-options`` directive
below renders it from ``kgw.config.SETTINGS`` at build time, one table per topic, so the
reference always matches ``twistd kernelgateway --help``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # build from a checkout without installing kgw
    sys.path.insert(0, str(ROOT))

import kgw  # noqa: E402
from kgw import config as kgw_config  # noqa: E402

project = "kgw"
author = "the kgw developers"
copyright = "the kgw developers"
release = version = kgw.__version__

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**/node_modules"]
# Links such as configuration.md#kernel-environment name headings by their GitHub slugs.
myst_heading_anchors = 4
html_theme = "alabaster"
html_title = f"kgw {release}"
html_static_path: list[str] = []
nitpicky = True
# Keep "--port" as two hyphens: flags are written in prose and in generated tables.
smartquotes = False

HEADER = ("Flag", "Environment variable", "Default", "Meaning")
WIDTHS = (28, 26, 14, 52)  # relative; the text and LaTeX builders use them


def _code(text: str) -> nodes.Node:
    return nodes.literal(text, text)


def _default(setting: kgw_config.Setting) -> nodes.Node:
    if setting.flag:
        return nodes.Text("off" if setting.default == "false" else setting.default)
    return _code(setting.default) if setting.default else nodes.Text("empty")


def setting_row(setting: kgw_config.Setting) -> tuple[nodes.Node, ...]:
    """The cells of one option: flag, environment variable, default, meaning."""
    flag = f"--{setting.name}" if setting.flag else f"--{setting.name}=VALUE"
    if setting.repeatable:
        flag = f"--{setting.name}=ENDPOINT"
    default = _default(setting)
    if setting.name == "listen":
        default = nodes.Text("from --ip and --port")
    return (_code(flag), _code(setting.env), default, nodes.Text(setting.help))


def _table(header: tuple[str, ...], rows: list[tuple[nodes.Node, ...]]) -> nodes.table:
    table = nodes.table(classes=["kgw-options"])
    group = nodes.tgroup(cols=len(header))
    table += group
    group.extend(nodes.colspec(colwidth=width) for width in WIDTHS)
    head = nodes.thead()
    head += _row(tuple(nodes.Text(title) for title in header))
    group += head
    body = nodes.tbody()
    body.extend(_row(cells) for cells in rows)
    group += body
    return table


def _row(cells: tuple[nodes.Node, ...]) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        entry += nodes.paragraph("", "", cell)
        row += entry
    return row


class OptionsTable(SphinxDirective):
    """``{kgw-options}``: one table per topic, one row per option of ``twistd kernelgateway``."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        # Rebuild this page when the option definitions change.
        self.env.note_dependency(kgw_config.__file__)
        output: list[nodes.Node] = []
        for topic in kgw_config.TOPICS:
            rows = [setting_row(s) for s in kgw_config.SETTINGS if s.topic == topic]
            output += [nodes.rubric(topic, topic), _table(HEADER, rows)]
        return output


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("kgw-options", OptionsTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
