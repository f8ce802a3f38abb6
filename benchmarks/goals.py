"""kgw's goals: each check reads every target's values of a run and says met or missed.

A check returns None when there is nothing to judge (the workload or a target did not run).
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.sizes import Sizes

# (workload key, metric key, target name) -> that metric's values, one per repetition
Values = Callable[[str, str, str], list[float]]
Check = Callable[[Values, Sizes], bool | None]


def median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def within(workload: str, metric: str, slack: float, base: tuple[str, str, str]) -> Check:
    """kgw's median is at most ``slack`` above a base median."""

    def check(values: Values, sizes: Sizes) -> bool | None:
        ours, theirs = median(values(workload, metric, "kgw")), median(values(*base))
        if ours is None or theirs is None:
            return None
        return ours <= theirs + slack

    return check


def rate(workload: str, metric: str, complete: str) -> Check:
    """kgw delivered everything in every repetition, at >= 90% of the floor's rate."""

    def check(values: Values, sizes: Sizes) -> bool | None:
        flags = values(workload, complete, "kgw")
        ours, floor = (
            median(values(workload, metric, "kgw")),
            median(values(workload, metric, "floor")),
        )
        if not flags:
            return None
        if not all(flags):
            return False
        if ours is None or floor is None:
            return None
        return ours >= 0.9 * floor

    return check


def every(workload: str, metric: str, expected: Callable[[Sizes], float]) -> Check:
    """kgw's value equals ``expected`` in every repetition."""

    def check(values: Values, sizes: Sizes) -> bool | None:
        ours = values(workload, metric, "kgw")
        return all(v == expected(sizes) for v in ours) if ours else None

    return check


def at_most(workload: str, metric: str, limit: float) -> Check:
    def check(values: Values, sizes: Sizes) -> bool | None:
        ours = values(workload, metric, "kgw")
        return all(v <= limit for v in ours) if ours else None

    return check


def sockets_per_kernel(values: Values, sizes: Sizes) -> bool | None:
    before, after = (
        values("idle_scale", "zmq_before", "kgw"),
        values("idle_scale", "zmq_after", "kgw"),
    )
    if not before or not after:
        return None
    return all(a == b for a, b in zip(before, after, strict=True))
