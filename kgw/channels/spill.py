"""Where a kernel's backlog keeps what does not fit its memory budget: unnamed files.

Each segment is one file opened with ``O_TMPFILE`` (through ``tempfile.TemporaryFile``):
it has no name, only the gateway can read it, and it is gone when closed or when the
gateway dies, so a crash leaves nothing behind. A record is a little-endian uint32 length
and the bytes. Reads and writes are synchronous: they go to the page cache, and a
segment is read back soon after it is written.
"""

from __future__ import annotations

import os
import struct
import tempfile
from typing import Protocol

_LENGTH = struct.Struct("<I")
MAX_RECORD = (1 << 32) - 1


class Segment(Protocol):
    """Records appended one after another and read back in order."""

    @property
    def size(self) -> int: ...

    def append(self, data: bytes) -> None: ...

    def read(self, offset: int) -> tuple[bytes, int]: ...

    def close(self) -> None: ...


class FileSegment:
    """A segment in an unnamed file under ``directory``."""

    def __init__(self, directory: str | None = None) -> None:
        self._file = tempfile.TemporaryFile(dir=directory, buffering=0)
        self._fd = self._file.fileno()
        self.size = 0

    def append(self, data: bytes) -> None:
        if len(data) > MAX_RECORD:
            raise ValueError(f"a record of {len(data)} bytes is over {MAX_RECORD}")
        written = os.pwritev(self._fd, [_LENGTH.pack(len(data)), data], self.size)
        if written != _LENGTH.size + len(data):  # a full disk writes short or raises
            raise OSError(f"short write to a backlog file ({written} bytes)")
        self.size += written

    def read(self, offset: int) -> tuple[bytes, int]:
        """The record at ``offset`` and the offset of the next one."""
        (length,) = _LENGTH.unpack(os.pread(self._fd, _LENGTH.size, offset))
        data = os.pread(self._fd, length, offset + _LENGTH.size)
        if len(data) != length:
            raise OSError(f"short read from a backlog file at {offset}")
        return data, offset + _LENGTH.size + length

    def close(self) -> None:
        self._file.close()


def check_directory(directory: str | None) -> None:
    """Raise OSError unless unnamed files can be written under ``directory``."""
    segment = FileSegment(directory)
    try:
        segment.append(b"kgw")
        if segment.read(0)[0] != b"kgw":
            raise OSError(f"{directory}: a test record did not read back")
    finally:
        segment.close()
