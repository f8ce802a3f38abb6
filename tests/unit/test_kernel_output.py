"""A kernel's stdout/stderr as log events: attributed, line by line, bounded."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs

from kgw.kernels.output import BURST, MAX_LINE, RATE, KernelOutput, OutputLog


def lines(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["stream"], e["line"]) for e in events if "stream" in e]


def test_each_line_is_an_event_with_kernel_id_name_and_stream() -> None:
    output = OutputLog("k-1", "python3", Clock())
    with capturedLogs() as events:
        output.feed("stderr", b"first\nsec")
        output.feed("stdout", b"out\n")
        output.feed("stderr", b"ond\r\n")
    assert lines(events) == [("stderr", "first"), ("stdout", "out"), ("stderr", "second")]
    assert {e["kernel_id"] for e in events} == {"k-1"}
    assert {e["name"] for e in events} == {"python3"}
    assert [e["log_level"] for e in events] == [LogLevel.warn, LogLevel.info, LogLevel.warn]


def test_a_long_line_is_cut_and_says_how_much() -> None:
    output = OutputLog("k-1", "python3", Clock())
    with capturedLogs() as events:
        output.feed("stdout", b"a" * (MAX_LINE + 10))
        output.feed("stdout", b"b" * 90 + b"\nnext\n")
    [(_, cut), (_, after)] = lines(events)
    assert cut == "a" * MAX_LINE + " [line cut: 100 more bytes]"
    assert after == "next"


def test_an_unfinished_line_is_logged_when_the_output_ends() -> None:
    output = OutputLog("k-1", "python3", Clock())
    with capturedLogs() as events:
        output.feed("stderr", b"Segmentation fault")
        assert lines(events) == []
        output.flush()
    assert lines(events) == [("stderr", "Segmentation fault")]


def test_more_than_the_rate_is_counted_and_summarized_each_second() -> None:
    clock = Clock()
    output = OutputLog("k-1", "python3", clock)
    with capturedLogs() as events:
        output.feed("stderr", b"x\n" * (BURST + 1000))
        assert len(lines(events)) == BURST
        clock.advance(1.0)  # the summary, and RATE more lines allowed
        output.feed("stderr", b"y\n" * int(RATE))
    [summary] = [e for e in events if "lines" in e]
    assert summary["lines"] == 1000
    assert summary["bytes"] == 2000
    assert summary["log_level"] == LogLevel.warn
    assert lines(events)[-1] == ("stderr", "y")
    assert len(lines(events)) == BURST + int(RATE)


class FakeReactor(Clock):
    """Records the readers a KernelOutput adds, so the test can drive them."""

    def __init__(self) -> None:
        super().__init__()
        self.readers: list[Any] = []

    def addReader(self, reader: Any) -> None:
        self.readers.append(reader)

    def removeReader(self, reader: Any) -> None:
        self.readers.remove(reader)


def test_pipes_are_read_and_closed_with_nothing_left_open() -> None:
    reactor = FakeReactor()
    output = KernelOutput("k-1", "python3", reactor)
    fds = [reader.fileno() for reader in reactor.readers] + list(output.launch_kwargs.values())
    with capturedLogs() as events:
        os.write(output.launch_kwargs["stdout"], b"hello\n")
        os.write(output.launch_kwargs["stderr"], b"bye")  # no newline: the kernel died
        stdout_reader = reactor.readers[0]
        assert stdout_reader.doRead() is None
        assert stdout_reader.doRead() is None  # nothing waiting: not an error
        output.close()
        output.close()
    assert lines(events) == [("stdout", "hello"), ("stderr", "bye")]
    assert reactor.readers == []
    for fd in fds:
        try:
            os.fstat(fd)
        except OSError:
            continue
        raise AssertionError(f"fd {fd} left open")
