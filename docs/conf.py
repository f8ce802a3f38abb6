"""Sphinx configuration: kgw's Markdown pages, read with myst-parser.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.

The options table in configuration.md is not written by hand: the ``kgw-options`` directive
below renders it from ``kgw.config.SETTINGS`` (and ``--listen`` from ``kgw.tap.Options``)
at build time, so the reference always matches ``twistd kernelgateway --help``.
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
from kgw.tap import Options  # noqa: E402

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
    """The cells of one option: flag, KG_* variable, default, meaning."""
    flag = f"--{setting.name}" if setting.flag else f"--{setting.name}=VALUE"
    env = _code(setting.env) if setting.env else nodes.Text("none")
    return (_code(flag), env, _default(setting), nodes.Text(setting.help))


def listen_row() -> tuple[nodes.Node, ...]:
    """``--listen`` is repeatable, so it lives in kgw.tap rather than in SETTINGS."""
    meaning = " ".join((Options.opt_listen.__doc__ or "").split())
    default = " ".join(kgw_config.GatewayConfig().listen)
    return (_code("--listen=ENDPOINT"), nodes.Text("none"), _code(default), nodes.Text(meaning))


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
    """``{kgw-options}``: one row per option of ``twistd kernelgateway``."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        # Rebuild this page when the option definitions change.
        self.env.note_dependency(kgw_config.__file__)
        rows = [setting_row(setting) for setting in kgw_config.SETTINGS]
        return [_table(HEADER, [*rows, listen_row()])]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("kgw-options", OptionsTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
