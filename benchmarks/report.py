"""Turn per-repetition rows into medians, spreads, ratios and goals; print and save them."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.sizes import Sizes
from benchmarks.workloads import Metric, Workload

TARGETS = ("floor", "kgw", "jkg")


@dataclass
class Outcome:
    """What one workload did on one target."""

    rows: list[dict[str, float | None]] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    leftovers: list[int] = field(default_factory=list)
    profile: dict[str, Any] | None = None

    def values(self, metric: str) -> list[float]:
        return [float(v) for row in self.rows if (v := row.get(metric)) is not None]


Results = dict[str, dict[str, Outcome]]  # workload key -> target -> outcome


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"values": [], "median": None, "min": None, "max": None}
    return {
        "values": values,
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def summarize(
    workloads: Sequence[Workload], results: Results, sizes: Sizes, judge: bool = True
) -> dict[str, Any]:
    """The JSON shape of a run's results (without machine info); goals unjudged if not judge."""

    def values(workload: str, metric: str, target: str) -> list[float]:
        outcome = results.get(workload, {}).get(target)
        return outcome.values(metric) if outcome else []

    summary: dict[str, Any] = {}
    for workload in workloads:
        outcomes = results.get(workload.key, {})
        metrics: dict[str, Any] = {}
        for metric in workload.metrics:
            entry: dict[str, Any] = {"label": metric.label, "unit": metric.unit}
            for target in TARGETS:
                if target in outcomes:
                    entry[target] = _stats(values(workload.key, metric.key, target))
            medians = {t: entry[t]["median"] for t in TARGETS if t in entry}
            entry["ratio_kgw_floor"] = _ratio(medians.get("kgw"), medians.get("floor"))
            entry["ratio_kgw_jkg"] = _ratio(medians.get("kgw"), medians.get("jkg"))
            entry["goal"] = metric.goal or None
            entry["met"] = metric.check(values, sizes) if metric.check and judge else None
            entry["shown"] = metric.shown
            metrics[metric.key] = entry
        summary[workload.key] = {
            "number": workload.number,
            "title": workload.title,
            "metrics": metrics,
            "runs": {
                target: {
                    "error": o.error,
                    "seconds": round(o.seconds, 1),
                    "repetitions": len(o.rows),
                    "leftover_kernels": o.leftovers,
                    "profile": o.profile,
                }
                for target, o in outcomes.items()
            },
        }
    return summary


# --- rendering ------------------------------------------------------------------------------


def _number(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _cell(stats: dict[str, Any] | None, metric: Metric) -> str:
    if not stats or stats["median"] is None:
        return "-"
    median = _number(stats["median"], metric.digits)
    if len(stats["values"]) > 1 and stats["min"] != stats["max"]:
        low, high = (_number(stats[k], metric.digits) for k in ("min", "max"))
        return f"{median} ({low}\N{EN DASH}{high})"
    return median


def _goal_cell(entry: dict[str, Any]) -> str:
    if not entry["goal"]:
        return ""
    verdict = {True: "met", False: "MISSED", None: "n/a"}[entry["met"]]
    return f"{verdict}: {entry['goal']}"


HEADER = ("#", "metric", "unit", "floor", "kgw", "jkg", "kgw/floor", "kgw/jkg", "kgw target")


def table_rows(workloads: Sequence[Workload], summary: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    for workload in workloads:
        data = summary[workload.key]
        for metric in workload.metrics:
            entry = data["metrics"][metric.key]
            if not entry["shown"]:
                continue
            rows.append(
                (
                    f"{workload.number} {workload.title}",
                    metric.label,
                    metric.unit,
                    *(_cell(entry.get(t), metric) for t in TARGETS),
                    _number(entry["ratio_kgw_floor"], 2),
                    _number(entry["ratio_kgw_jkg"], 2),
                    _goal_cell(entry),
                )
            )
    return rows


def render_text(workloads: Sequence[Workload], summary: dict[str, Any]) -> str:
    rows = [HEADER, *table_rows(workloads, summary)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = []
    previous = ""
    for n, row in enumerate(rows):
        first = row[0] if row[0] != previous else ""
        previous = row[0]
        cells = [first, *row[1:]]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n" + render_problems(summary, markdown=False)


def render_markdown(workloads: Sequence[Workload], summary: dict[str, Any]) -> str:
    rows = table_rows(workloads, summary)
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    previous = ""
    for row in rows:
        first = row[0] if row[0] != previous else ""
        previous = row[0]
        lines.append("| " + " | ".join([first, *row[1:]]) + " |")
    return "\n".join(lines) + "\n" + render_problems(summary, markdown=True)


def render_problems(summary: dict[str, Any], markdown: bool) -> str:
    """Errors and leftover kernels, one line each (empty when there are none)."""
    lines = []
    for data in summary.values():
        for target, run in data["runs"].items():
            if run["error"]:
                first = run["error"].strip().splitlines()[0][:300]
                lines.append(f"{data['number']} {data['title']} on {target}: error: {first}")
            if run["leftover_kernels"]:
                count = len(run["leftover_kernels"])
                lines.append(
                    f"{data['number']} {data['title']} on {target}: {count} kernels left behind"
                )
    if not lines:
        return ""
    bullet = "- " if markdown else "  "
    return "\nProblems:\n" + "\n".join(bullet + line for line in lines) + "\n"


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n", encoding="utf-8")
