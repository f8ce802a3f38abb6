"""docs/compatibility.md: every row has a known status, and every test it names exists."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "compatibility.md"
START, END = "<!-- compat-table:start -->", "<!-- compat-table:end -->"
COLUMNS = ["jupyter_kernel_gateway", "kgw", "status", "test", "notes"]
STATUSES = ("same", "stricter", "better", "not supported")
NO_TEST = ("", "—", "-")


@attrs.frozen
class Row:
    """One row of the table: its line number in the file and its five cells."""

    line: int
    item: str
    kgw: str
    status: str
    test: str
    notes: str

    @property
    def tests(self) -> list[str]:
        """The node ids in the test cell, each written as `code`."""
        return re.findall(r"`([^`]+)`", self.test)


def split_cells(line: str) -> list[str]:
    """The cells of one Markdown table line (``\\|`` is a literal bar)."""
    inner = line.strip().removeprefix("|").removesuffix("|")
    return [cell.replace("\\|", "|").strip() for cell in re.split(r"(?<!\\)\|", inner)]


def read_table(text: str) -> tuple[list[str], list[Row]]:
    """The header and the rows of the table between the markers."""
    assert text.count(START) == 1 and text.count(END) == 1, "one pair of table markers"
    before, _, rest = text.partition(START)
    table, _, _ = rest.partition(END)
    first = before.count("\n") + 1
    lines = [
        (first + number, line) for number, line in enumerate(table.split("\n")) if line.strip()
    ]
    assert len(lines) >= 3, "the table needs a header, a separator and rows"
    header = split_cells(lines[0][1])
    separator = split_cells(lines[1][1])
    assert all(re.fullmatch(r":?-{3,}:?", cell) for cell in separator), lines[1][1]
    rows = []
    for number, line in lines[2:]:
        cells = split_cells(line)
        assert len(cells) == len(COLUMNS), f"line {number} has {len(cells)} cells: {line}"
        rows.append(Row(number, *cells))
    return header, rows


def node_names(node_id: str) -> tuple[Path, list[str]]:
    """A node id's file and the names in it (class, then function), without parameters."""
    path, *names = node_id.partition("[")[0].split("::")
    return ROOT / path, names


@pytest.fixture(scope="module")
def table() -> tuple[list[str], list[Row]]:
    """The header and rows of docs/compatibility.md's table."""
    return read_table(DOC.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def rows(table: tuple[list[str], list[Row]]) -> list[Row]:
    """The table's rows."""
    return table[1]


def test_the_table_has_the_agreed_columns(table: tuple[list[str], list[Row]]) -> None:
    assert table[0] == COLUMNS


def test_every_status_is_one_of_the_four(rows: list[Row]) -> None:
    unknown = [f"line {r.line}: {r.status!r}" for r in rows if r.status not in STATUSES]
    assert not unknown, f"status must be one of {STATUSES}: {unknown}"


def test_every_row_names_its_item_and_has_notes(rows: list[Row]) -> None:
    empty = [f"line {r.line}" for r in rows if not r.item or not r.notes]
    assert not empty, f"rows with an empty item or notes cell: {empty}"


def test_every_same_row_names_a_test(rows: list[Row]) -> None:
    untested = [f"line {r.line}: {r.item}" for r in rows if r.status == "same" and not r.tests]
    assert not untested, f"a 'same' row must name a test: {untested}"


def test_test_cells_hold_only_node_ids(rows: list[Row]) -> None:
    malformed = []
    for row in rows:
        leftover = re.sub(r"`[^`]+`", "", row.test).replace(",", "").strip()
        well_formed = not leftover if row.tests else row.test in NO_TEST
        if not well_formed:
            malformed.append(f"line {row.line}: {row.test}")
    assert not malformed, f"write tests as `path::name`, comma-separated, or —: {malformed}"


def test_every_named_test_exists(rows: list[Row]) -> None:
    missing = []
    for row in rows:
        for node_id in row.tests:
            if "::" not in node_id or not node_id.startswith("tests/"):
                missing.append(f"line {row.line}: {node_id} is no node id")
                continue
            path, names = node_names(node_id)
            if path.suffix != ".py" or not path.is_file():
                missing.append(f"line {row.line}: no file {path.relative_to(ROOT)}")
                continue
            source = path.read_text(encoding="utf-8")
            *classes, function = names
            wanted = [f"class {name}" for name in classes] + [f"def {function}("]
            missing += [f"line {row.line}: {node_id} ({w!r})" for w in wanted if w not in source]
    assert not missing, f"named tests that do not exist: {missing}"


def test_summary_counts_match_the_table(rows: list[Row]) -> None:
    text = DOC.read_text(encoding="utf-8").partition(START)[0]
    for status in STATUSES:
        counted = sum(row.status == status for row in rows)
        assert re.search(rf"\b{counted} {status}\b", text), f"summary: {counted} {status}"


@pytest.mark.parametrize(
    ("node_id", "expected"),
    [
        ("tests/unit/test_x.py::test_y", ["test_y"]),
        ("tests/unit/test_x.py::test_y[json]", ["test_y"]),
        ("tests/unit/test_x.py::test_y[a::b-[c]]", ["test_y"]),
        ("tests/unit/test_x.py::TestZ::test_y[v1]", ["TestZ", "test_y"]),
    ],
)
def test_node_ids_are_read_by_their_function_name(node_id: str, expected: list[str]) -> None:
    assert node_names(node_id) == (ROOT / "tests/unit/test_x.py", expected)


def test_cells_split_on_unescaped_bars_only() -> None:
    assert split_cells(r"| a | `x \| y` | c |") == ["a", "`x | y`", "c"]
