"""docs/: the Sphinx build is clean, and the generated parts hold what they should.

The build runs once per session, as CI runs it: ``sphinx -W --keep-going -n``, so a warning
(a broken link or anchor, a page missing from the toctree, an example file that moved)
fails the suite.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from kgw import config

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
LATEST_BENCHMARK = ROOT / "benchmarks" / "results" / "latest.md"


@attrs.frozen
class Build:
    """A finished Sphinx HTML build: its exit status, its output and where it wrote."""

    returncode: int
    output: str
    html_dir: Path

    def text(self, page: str) -> str:
        """A built page as plain text: tags dropped, entities decoded."""
        markup = (self.html_dir / f"{page}.html").read_text(encoding="utf-8")
        return html.unescape(re.sub(r"<[^>]+>", "", markup))


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    out = tmp_path_factory.mktemp("docs")
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q"]
    command += ["-b", "html", "-d", str(out / "doctrees"), str(DOCS), str(out / "html")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    return Build(done.returncode, done.stdout + done.stderr, out / "html")


def options_table(build: Build) -> str:
    """The text of the generated options tables (one per topic) in configuration.html."""
    markup = (build.html_dir / "configuration.html").read_text(encoding="utf-8")
    tables = re.findall(r'<table class="[^"]*kgw-options.*?</table>', markup, re.S)
    assert len(tables) == len(config.TOPICS), "configuration.html has no generated tables"
    return html.unescape(re.sub(r"<[^>]+>", " ", " ".join(tables)))


def test_docs_build_without_warnings(build: Build) -> None:
    assert build.returncode == 0, build.output


def test_every_option_is_in_the_generated_table(build: Build) -> None:
    table = options_table(build)
    for setting in config.SETTINGS:
        flag = f"--{setting.name}" if setting.flag else f"--{setting.name}=VALUE"
        if setting.repeatable:
            flag = f"--{setting.name}=ENDPOINT"
        assert flag in table, setting.name
        assert setting.help in table, setting.name
        assert setting.env in table, setting.env
    assert "--listen=ENDPOINT" in table


def test_the_reference_groups_options_by_topic_as_help_does(build: Build) -> None:
    """One table per topic, in --help's order, each option under its own topic."""
    page = (build.html_dir / "configuration.html").read_text(encoding="utf-8")
    starts = [page.index(f'<p class="rubric">{html.escape(topic)}</p>') for topic in config.TOPICS]
    assert starts == sorted(starts)
    bounds = [*starts, len(page)]
    for setting in config.SETTINGS:
        topic = config.TOPICS.index(setting.topic)
        section = page[bounds[topic] : bounds[topic + 1]]
        assert f"--{setting.name}" in section, (setting.name, setting.topic)


def test_every_example_is_shown_whole(build: Build) -> None:
    pages = [build.text(path.stem) for path in DOCS.glob("*.md")]
    examples = [path for path in EXAMPLES.iterdir() if path.suffix in (".py", ".js", ".json")]
    assert examples
    for example in examples:
        if example.name == "package-lock.json":
            continue
        source = example.read_text(encoding="utf-8").strip()
        assert any(source in page for page in pages), f"{example.name} is not in the docs"


def test_benchmark_page_shows_the_latest_results(build: Build) -> None:
    rows = [line for line in LATEST_BENCHMARK.read_text().splitlines() if line.startswith("|")]
    assert len(rows) > 2
    page = build.text("benchmarks")
    for row in rows[2:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        metric = cells[1]
        assert metric in page, metric
