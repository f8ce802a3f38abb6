"""A kernel's broadcast output, kept once for all of its clients until each has read it.

A kernel's iopub socket cannot wait for a slow client: ZeroMQ's PUB socket drops what its
subscriber does not take. So the bridge reads iopub as fast as the kernel writes, and
appends each message once to the kernel's :class:`Backlog`. Every client connection is a
:class:`Reader`: a place in the backlog, plus the few messages meant for it alone (its
replies, its ``gateway_error`` answers), each ordered against the backlog by the position
the backlog had when it came. A reader is written from its place as fast as its transport
takes frames (see ``ChannelsProtocol``), never faster, so a slow client costs the gateway no
memory beyond its transport's buffer.

Memory is bounded by the backlog, not by the number of clients: messages that some reader
has not read yet are kept in memory up to ``memory_budget`` bytes (with their websocket
frames, made once per wire format), beyond that in segments on disk (``spill.py``), and at
most ``limit`` bytes in all. Past the limit the oldest segment is given up: each reader that
had not read it is told how many messages and bytes it missed (a ``stream`` message on
stderr with ``metadata.kgw_missed``), then goes on from the next message kept. Messages
every reader has read are released at once.

A session that drops keeps its reader (``offline.py``): it comes back to the same place.
This module does no I/O of its own; segments come from the factory it is given.
"""

from __future__ import annotations

import functools
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from twisted.logger import Logger

from kgw.channels import frames, wire
from kgw.channels.spill import FileSegment, Segment

log = Logger()

# Bytes of frames one write of a reader gathers (at least one frame, whatever its size).
PUMP_BYTES = 256 * 1024
MAX_SEGMENT_BYTES = 64 * 1024 * 1024
MiB = 1024 * 1024


@dataclass(frozen=True)
class BacklogSettings:
    """How much of a kernel's output is kept for readers behind: in memory, in all, where."""

    memory_budget: int = 8 * MiB
    limit: int = 2048 * MiB
    directory: str | None = None  # None: the system's temporary directory

    def open(self, name: str) -> Backlog:
        return Backlog(
            name, self.memory_budget, self.limit, functools.partial(FileSegment, self.directory)
        )


class Consumer(Protocol):
    """What a reader writes to: a client's websocket."""

    wire_format: str

    def writable(self) -> bool: ...

    def write_frames(self, frames: list[bytes]) -> None: ...

    def close_for(self, code: int, reason: str) -> None: ...


class Entry:
    """One kept message, and its websocket frames once made."""

    __slots__ = ("frames", "held", "kept", "parts", "size")

    def __init__(self, parts: wire.Parts, size: int, kept: bool = True) -> None:
        self.parts = parts
        self.size = size  # the message's bytes (as the v1 format counts them)
        self.held = size  # with its frames
        self.kept = kept  # in the backlog's memory (not read back from disk)
        self.frames: dict[str, bytes] = {}


class _MemoryChunk:
    __slots__ = ("entries", "last_parent", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.entries: deque[Entry] = deque()
        self.last_parent = b"{}"

    @property
    def end(self) -> int:
        return self.start + len(self.entries)

    def bytes_from(self, seq: int) -> int:
        return sum(e.size for i, e in enumerate(self.entries) if self.start + i >= seq)


class _DiskChunk:
    __slots__ = ("count", "last_parent", "segment", "size", "start")

    def __init__(self, start: int, segment: Segment) -> None:
        self.start = start
        self.count = 0
        self.segment = segment
        self.size = 0  # the messages' bytes, as the v1 format counts them
        self.last_parent = b"{}"

    @property
    def end(self) -> int:
        return self.start + self.count


_Chunk = _MemoryChunk | _DiskChunk


class Backlog:
    """The messages of one kernel that some reader has not read yet."""

    def __init__(
        self,
        name: str,
        memory_budget: int,
        limit: int,
        open_segment: Callable[[], Segment],
    ) -> None:
        self.name = name  # the kernel's id, for log lines
        self.end = 0  # the position the next message gets
        self.memory = 0  # bytes of messages and frames kept in memory
        self.disk = 0  # bytes in segments
        self.limit = limit
        self._budget = memory_budget
        self._segment_bytes = max(64 * 1024, min(MAX_SEGMENT_BYTES, limit // 8))
        self._open_segment = open_segment
        self._chunks: deque[_Chunk] = deque()
        self._readers: dict[Reader, None] = {}
        self._spilling = False
        self._sealed = False  # the next message starts a chunk of its own
        # The message last read back from disk: readers at the same place share it.
        self._last_read: tuple[_DiskChunk, int, Entry, int] | None = None

    # --- readers ---------------------------------------------------------------------------

    def reader(self) -> Reader:
        """A new reader, placed after every message kept so far."""
        reader = Reader(self, self.end)
        self._readers[reader] = None
        self._sealed = True  # so that a reader never starts inside a segment
        return reader

    def remove(self, reader: Reader) -> None:
        self._readers.pop(reader, None)
        self.release()

    @property
    def readers(self) -> list[Reader]:
        return list(self._readers)

    # --- writing ---------------------------------------------------------------------------

    def append(self, parts: wire.Parts) -> None:
        """Keep a message for every reader."""
        if not self._readers:
            self.end += 1  # nobody to keep it for
            return
        size = frames.size(parts)
        if self._spilling and self.memory <= self._budget // 2:
            self._spilling = False
        elif not self._spilling and self.memory + size > self._budget:
            self._spilling = True
        last = self._chunks[-1] if self._chunks and not self._sealed else None
        self._sealed = False
        if not self._spilling:
            if not isinstance(last, _MemoryChunk):
                last = _MemoryChunk(self.end)
                self._chunks.append(last)
            last.entries.append(Entry(parts, size))
            self.memory += size
        else:
            if not isinstance(last, _DiskChunk) or last.segment.size >= self._segment_bytes:
                last = _DiskChunk(self.end, self._open_segment())
                self._chunks.append(last)
            before = last.segment.size
            last.segment.append(wire.parts_to_v1(parts))
            last.count += 1
            last.size += size
            self.disk += last.segment.size - before
        last.last_parent = parts.parent_header
        self.end += 1
        while self.memory + self.disk > self.limit and self._chunks:
            self._give_up(self._chunks.popleft())

    def _give_up(self, chunk: _Chunk) -> None:
        """The backlog is over its limit: drop its oldest chunk, and tell its readers."""
        for reader in self._readers:
            if reader.seq >= chunk.end:
                continue
            if isinstance(chunk, _MemoryChunk):
                missed = chunk.bytes_from(reader.seq)
            else:
                missed = chunk.size - (reader.chunk_read if reader.chunk is chunk else 0)
            reader.missed(chunk.end - max(reader.seq, chunk.start), missed, chunk.last_parent)
            reader.seq, reader.chunk = chunk.end, None
        self._free(chunk)

    def _free(self, chunk: _Chunk) -> None:
        if isinstance(chunk, _MemoryChunk):
            self.memory -= sum(e.held for e in chunk.entries)
            chunk.entries.clear()
        else:
            self.disk -= chunk.segment.size
            chunk.segment.close()
            if self._last_read is not None and self._last_read[0] is chunk:
                self._last_read = None

    def release(self) -> None:
        """Free what every reader has read."""
        if not self._chunks:
            return
        low = min((r.seq for r in self._readers), default=self.end)
        while self._chunks:
            chunk = self._chunks[0]
            if isinstance(chunk, _MemoryChunk):
                while chunk.entries and chunk.start < low:
                    self.memory -= chunk.entries.popleft().held
                    chunk.start += 1
                if chunk.entries:
                    return
            elif chunk.end > low:
                return
            self._free(self._chunks.popleft())

    def close(self) -> None:
        """Free everything (the kernel is gone)."""
        while self._chunks:
            self._free(self._chunks.popleft())
        self._readers.clear()

    # --- reading ---------------------------------------------------------------------------

    def next(self, reader: Reader) -> Entry | None:
        """The next message for ``reader``, moving it on; None when it has read them all."""
        if reader.seq >= self.end:
            return None
        chunk = self._chunk_of(reader)
        if chunk is None:  # kept for nobody when it came
            reader.seq = self.end
            return None
        if isinstance(chunk, _MemoryChunk):
            entry = chunk.entries[reader.seq - chunk.start]
        else:
            if reader.chunk is not chunk:
                reader.chunk, reader.offset, reader.chunk_read = chunk, 0, 0
            cached = self._last_read
            if cached is not None and cached[0] is chunk and cached[1] == reader.offset:
                entry, after = cached[2], cached[3]
            else:
                data, after = chunk.segment.read(reader.offset)
                entry = Entry(wire.v1_to_parts(data), len(data), kept=False)
                self._last_read = (chunk, reader.offset, entry, after)
            reader.offset = after
            reader.chunk_read += entry.size
        reader.chunk = chunk
        reader.seq += 1
        return entry

    def _chunk_of(self, reader: Reader) -> _Chunk | None:
        hint = reader.chunk
        if hint is not None and hint.start <= reader.seq < hint.end:
            return hint
        for chunk in self._chunks:
            if chunk.start <= reader.seq < chunk.end:
                return chunk
        return None

    def frame(self, entry: Entry, wire_format: str) -> bytes:
        """An entry's websocket frame, made once per wire format."""
        framed = entry.frames.get(wire_format)
        if framed is None:
            framed = entry.frames[wire_format] = frames.frame(entry.parts, wire_format)
            entry.held += len(framed)
            if entry.kept:
                self.memory += len(framed)
        return framed


class Reader:
    """One client's place in its kernel's backlog, and the messages meant for it alone."""

    is_client = True

    def __init__(self, backlog: Backlog, seq: int) -> None:
        self.consumer: Consumer | None = None  # None while its session is away
        self.seq = seq  # the position of the next backlog message it reads
        self.chunk: _Chunk | None = None
        self.offset = 0  # where it is in its chunk's segment
        self.chunk_read = 0  # bytes of messages it has read from that chunk
        self._backlog = backlog
        self._own: deque[tuple[int, wire.Parts]] = deque()
        self._missed = (0, 0, b"{}")  # messages, bytes, the parent of the last one

    def deliver(self, parts: wire.Parts) -> None:
        """A message for this client alone: after the backlog messages kept so far."""
        self._own.append((self._backlog.end, parts))
        self.pump()

    def missed(self, messages: int, size: int, parent: bytes) -> None:
        count, total, _ = self._missed
        self._missed = (count + messages, total + size, parent)

    @property
    def pending(self) -> bool:
        return bool(self._own) or self.seq < self._backlog.end or bool(self._missed[0])

    def close_for(self, code: int, reason: str) -> None:
        if self.consumer is not None:
            self.consumer.close_for(code, reason)

    def pump(self, release: bool = True) -> None:
        """Write what is waiting for this client, while its transport takes it."""
        while self.consumer is not None and self.consumer.writable():
            batch = self._take(self.consumer.wire_format)
            if not batch:
                break
            self.consumer.write_frames(batch)
        if release:
            self._backlog.release()

    def _take(self, wire_format: str) -> list[bytes]:
        batch: list[bytes] = []
        size = 0
        while size < PUMP_BYTES:
            if self._own and self._own[0][0] <= self.seq:
                data = frames.frame(self._own.popleft()[1], wire_format)
            elif self._missed[0]:
                data = frames.frame(self._notice(), wire_format)
            else:
                entry = self._backlog.next(self)
                if entry is None:
                    break
                data = self._backlog.frame(entry, wire_format)
            batch.append(data)
            size += len(data)
        return batch

    def _notice(self) -> wire.Parts:
        """The message that tells this client what it missed, in the cell it was for."""
        (count, size, parent), self._missed = self._missed, (0, 0, b"{}")
        log.warn(
            "kernel {kernel_id}: a client missed {count} messages ({size} bytes) of output: "
            "more than --ws-backlog-limit ({limit} bytes) behind",
            kernel_id=self._backlog.name,
            count=count,
            size=size,
            limit=self._backlog.limit,
        )
        return missed_notice(count, size, parent)


def missed_notice(count: int, size: int, parent: bytes) -> wire.Parts:
    """A ``stream`` message on stderr saying how much output a client missed."""
    header = wire.gateway_header("stream")
    text = (
        f"[kgw] {count} output messages ({size} bytes) were given up before this client "
        "read them: it fell more than the gateway's --ws-backlog-limit behind.\n"
    )
    return wire.Parts(
        "iopub",
        json.dumps(header).encode(),
        parent,
        json.dumps({"kgw_missed": {"messages": count, "bytes": size}}).encode(),
        json.dumps({"name": "stderr", "text": text}).encode(),
        _header=header,
    )
