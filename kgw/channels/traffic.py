"""Counts of the messages and bytes relayed, kept on the relay path as plain integers.

The metrics room turns them into Prometheus counters when /metrics is scraped.
"""

from __future__ import annotations

TO_KERNEL = "to_kernel"
TO_CLIENTS = "to_clients"


class Traffic:
    """Messages and bytes relayed, by channel and direction."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], list[int]] = {}

    def add(self, channel: str, direction: str, size: int) -> None:
        entry = self.counts.get((channel, direction))
        if entry is None:
            entry = self.counts[(channel, direction)] = [0, 0]
        entry[0] += 1
        entry[1] += size
