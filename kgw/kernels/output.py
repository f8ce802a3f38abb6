"""A kernel's own stdout and stderr, read from pipes and logged line by line, bounded.

A kernel process writes to its stdout and stderr what does not go to its clients: startup
warnings, C-level writes, crash tracebacks. Each line becomes one log event with the kernel's
id, kernelspec name and stream, so ``--log-format json`` stays one JSON object per line and
an operator can tell which kernel said what.

Bounded whatever the kernel writes: lines longer than MAX_LINE bytes are cut (the log says
how much), and more than RATE lines a second (after a burst of BURST) are counted, not
logged, with one summary line per second saying how many were left out. The pipes are read
as fast as the kernel writes, so a chatty kernel never blocks on a full pipe, and memory
holds at most one partial line per stream.

:class:`OutputLog` is the sans-I/O part (bytes in, log events out, a clock for the rate);
:class:`KernelOutput` owns the pipes and their readers in the reactor.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IReactorFDSet, IReactorTime, IReadDescriptor
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

log = Logger()

MAX_LINE = 4096  # bytes of one line that are logged
RATE = 50.0  # lines a second, per kernel, once the burst is spent
BURST = 500  # lines logged at once before the rate applies
CHUNK = 65536  # bytes read from a pipe at a time, so other events run in between
LEVELS = {"stdout": LogLevel.info, "stderr": LogLevel.warn}


class OutputLog:
    """Turns one kernel's output bytes into log events, at most RATE lines a second."""

    def __init__(self, kernel_id: str, kernel_name: str, clock: IReactorTime) -> None:
        self.kernel_id = kernel_id
        self.kernel_name = kernel_name
        self._clock = clock
        self._partial: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self._cut: dict[str, int] = {"stdout": 0, "stderr": 0}  # bytes dropped from a line
        self._tokens = float(BURST)
        self._refilled = clock.seconds()
        self.suppressed_lines = 0
        self.suppressed_bytes = 0
        self._summary: IDelayedCall | None = None

    def feed(self, stream: str, data: bytes) -> None:
        """Bytes the kernel wrote to ``stream``; complete lines are logged."""
        partial = self._partial[stream]
        start = 0
        while (end := data.find(b"\n", start)) != -1:
            self._take(stream, data[start:end])
            self._line(stream, bytes(partial), self._cut[stream])
            partial.clear()
            self._cut[stream] = 0
            start = end + 1
        self._take(stream, data[start:])

    def _take(self, stream: str, piece: bytes) -> None:
        """Add to the partial line, keeping at most MAX_LINE bytes of it."""
        partial = self._partial[stream]
        room = MAX_LINE - len(partial)
        partial += piece[: max(room, 0)]
        self._cut[stream] += max(len(piece) - max(room, 0), 0)

    def flush(self) -> None:
        """The kernel's output ended: log what is left of unfinished lines, and the summary."""
        for stream, partial in self._partial.items():
            if partial or self._cut[stream]:
                self._line(stream, bytes(partial), self._cut[stream])
                partial.clear()
                self._cut[stream] = 0
        self._summarize()

    def _line(self, stream: str, raw: bytes, cut: int) -> None:
        if not self._allow():
            self.suppressed_lines += 1
            self.suppressed_bytes += len(raw) + cut + 1
            if self._summary is None:
                self._summary = self._clock.callLater(1.0, self._summarize)
            return
        text = raw.decode("utf-8", "replace").rstrip("\r")
        if cut:
            text += f" [line cut: {cut} more bytes]"
        log.emit(
            LEVELS[stream],
            "kernel {kernel_id} ({name}) {stream}: {line}",
            kernel_id=self.kernel_id,
            name=self.kernel_name,
            stream=stream,
            line=text,
        )

    def _allow(self) -> bool:
        now = self._clock.seconds()
        self._tokens = min(float(BURST), self._tokens + (now - self._refilled) * RATE)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def _summarize(self) -> None:
        if self._summary is not None and self._summary.active():
            self._summary.cancel()
        self._summary = None
        if not self.suppressed_lines:
            return
        log.warn(
            "kernel {kernel_id} ({name}): {lines} lines ({bytes} bytes) of its output "
            "not logged (more than {rate:.0f} lines a second)",
            kernel_id=self.kernel_id,
            name=self.kernel_name,
            lines=self.suppressed_lines,
            bytes=self.suppressed_bytes,
            rate=RATE,
        )
        self.suppressed_lines = self.suppressed_bytes = 0


@implementer(IReadDescriptor)
class _PipeReader:
    """Reads one pipe in the reactor and hands the bytes on."""

    def __init__(self, fd: int, stream: str, output: OutputLog) -> None:
        self._fd = fd
        self._stream = stream
        self._output = output
        os.set_blocking(fd, False)

    def fileno(self) -> int:
        return self._fd

    def doRead(self) -> Any:
        try:
            data = os.read(self._fd, CHUNK)
        except BlockingIOError:
            return None
        except OSError as e:
            return Failure(e)
        if not data:
            return ConnectionDone()
        self._output.feed(self._stream, data)
        return None

    def drain(self, most: int = 16) -> None:
        """Read what is waiting in the pipe now (at most ``most`` chunks), without blocking."""
        for _ in range(most):
            try:
                data = os.read(self._fd, CHUNK)
            except OSError:  # BlockingIOError: nothing more waiting
                return
            if not data:
                return
            self._output.feed(self._stream, data)

    def connectionLost(self, reason: Failure) -> None:
        pass

    def logPrefix(self) -> str:
        return f"kernel-{self._stream}"


class KernelOutput:
    """The pipes a kernel's stdout and stderr go to, read until the kernel is gone.

    The write ends stay open here for the kernel's whole life: jupyter_client starts a
    restarted kernel with the arguments of the first start, these file descriptors included.
    """

    def __init__(self, kernel_id: str, kernel_name: str, reactor: Any) -> None:
        self.log = OutputLog(kernel_id, kernel_name, reactor)
        self._reactor: IReactorFDSet = reactor
        self._readers: list[_PipeReader] = []
        self._ends: list[int] = []
        self.launch_kwargs: dict[str, int] = {}
        for stream in ("stdout", "stderr"):
            read_end, write_end = os.pipe()
            self._ends += [read_end, write_end]
            reader = _PipeReader(read_end, stream, self.log)
            self._readers.append(reader)
            self._reactor.addReader(reader)
            self.launch_kwargs[stream] = write_end

    def close(self) -> None:
        """Read what is left, stop reading, close the pipes; safe to call twice."""
        for reader in self._readers:
            self._reactor.removeReader(reader)
            reader.drain()  # what the kernel wrote just before it ended
        self._readers = []
        self.log.flush()
        for fd in self._ends:
            os.close(fd)
        self._ends = []
