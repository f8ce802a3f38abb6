"""A kernel's backlog in memory and in unnamed files: every reader gets every message, in
order, at its own pace; memory stays within the budget; past the limit, readers are told."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kgw.channels import frames, wire
from kgw.channels.backlog import Backlog, BacklogSettings, Reader
from kgw.channels.spill import FileSegment, check_directory
from tests.unit.test_bridge import unframe


class Consumer:
    """A websocket that takes frames while not paused."""

    def __init__(self, wire_format: str = frames.V1) -> None:
        self.wire_format = wire_format
        self.paused = False
        self.frames: list[bytes] = []

    def writable(self) -> bool:
        return not self.paused

    def write_frames(self, data: list[bytes]) -> None:
        self.frames.extend(data)

    def close_for(self, code: int, reason: str) -> None:
        pass

    def texts(self) -> list[str]:
        if self.wire_format == frames.JSON:
            return [json.loads(_payload(f))["content"]["text"] for f in self.frames]
        return [json.loads(unframe(f).content)["text"] for f in self.frames]

    def messages(self) -> list[wire.Parts]:
        return [unframe(f) for f in self.frames]


def _payload(frame: bytes) -> bytes:
    length = frame[1] & 0x7F
    return frame[{126: 4, 127: 10}.get(length, 2) :]


def stream(text: str, parent: str = "cell") -> wire.Parts:
    return wire.message_to_parts(
        {
            "header": {"msg_id": f"m-{text[:8]}", "msg_type": "stream"},
            "parent_header": {"msg_id": parent},
            "content": {"name": "stdout", "text": text},
            "channel": "iopub",
        }
    )


def backlog(tmp_path: Path, memory: int = 10_000, limit: int = 10_000_000) -> Backlog:
    return BacklogSettings(memory, limit, str(tmp_path)).open("k1")


def reader_of(log: Backlog, consumer: Consumer) -> Reader:
    reader = log.reader()
    reader.consumer = consumer
    return reader


def test_a_reader_that_keeps_up_leaves_nothing_held(tmp_path: Path) -> None:
    log = backlog(tmp_path)
    consumer = Consumer()
    reader = reader_of(log, consumer)
    for n in range(5):
        log.append(stream(f"line {n}"))
        reader.pump()
    assert consumer.texts() == [f"line {n}" for n in range(5)]
    assert (log.memory, log.disk) == (0, 0)


def test_a_paused_reader_gets_everything_in_order_and_memory_stays_in_budget(
    tmp_path: Path,
) -> None:
    log = backlog(tmp_path, memory=10_000)
    slow, fast = Consumer(), Consumer(frames.JSON)
    slow_reader, fast_reader = reader_of(log, slow), reader_of(log, fast)
    slow.paused = True
    texts = [f"{n:04d}" + "x" * 996 for n in range(200)]  # 200 KB, 20 times the budget
    for text in texts:
        log.append(stream(text))
        slow_reader.pump()
        fast_reader.pump()
        assert log.memory <= 10_000 + 2 * 1200, "a message and its frame over at most"
    assert log.disk > 150_000, "the rest went to disk"
    assert fast.texts() == texts
    slow.paused = False
    slow_reader.pump()
    assert slow.texts() == texts
    assert (log.memory, log.disk) == (0, 0)


def test_a_message_is_framed_once_per_wire_format_for_all_readers(tmp_path: Path) -> None:
    log = backlog(tmp_path)
    consumers = [Consumer(), Consumer(), Consumer(frames.JSON)]
    readers = [reader_of(log, c) for c in consumers]
    log.append(stream("shared"))
    for reader in readers:
        reader.pump()
    first, second, legacy = (c.frames[0] for c in consumers)
    assert first is second, "one v1 frame for both v1 readers"
    assert legacy is not first and json.loads(_payload(legacy))["content"]["text"] == "shared"


def test_past_the_limit_a_reader_is_told_what_it_missed_then_goes_on(tmp_path: Path) -> None:
    log = backlog(tmp_path, memory=1 << 20, limit=1 << 20)  # segments of 128 KiB
    consumer = Consumer()
    reader = reader_of(log, consumer)
    consumer.paused = True
    texts = [f"{n:05d}" + "y" * 10_000 for n in range(300)]  # 3 MB through a 1 MiB limit
    sizes = []
    for text in texts:
        parts = stream(text, parent="the-cell")
        sizes.append(frames.size(parts))
        log.append(parts)
    assert log.memory + log.disk <= 1 << 20
    consumer.paused = False
    reader.pump()
    notice, *rest = consumer.messages()
    missed = json.loads(notice.metadata)["kgw_missed"]
    assert json.loads(notice.parent_header) == {"msg_id": "the-cell"}
    kept = [json.loads(p.content)["text"] for p in rest]
    assert missed["messages"] == 300 - len(kept) > 0
    assert missed["bytes"] == sum(sizes[: missed["messages"]])
    assert kept == texts[missed["messages"] :], "no gap, no duplicate after the notice"
    assert f"{missed['messages']} output messages" in json.loads(notice.content)["text"]


def test_a_reply_comes_after_the_output_kept_before_it(tmp_path: Path) -> None:
    log = backlog(tmp_path)
    consumer = Consumer()
    reader = reader_of(log, consumer)
    consumer.paused = True
    log.append(stream("before"))
    reader.deliver(stream("the reply"))
    log.append(stream("after"))
    consumer.paused = False
    reader.pump()
    assert consumer.texts() == ["before", "the reply", "after"]


def test_a_new_reader_starts_at_the_end(tmp_path: Path) -> None:
    log = backlog(tmp_path)
    first = Consumer()
    first.paused = True
    reader_of(log, first)
    log.append(stream("old"))
    late = Consumer()
    late_reader = reader_of(log, late)
    log.append(stream("new"))
    late_reader.pump()
    assert late.texts() == ["new"]


def test_a_removed_reader_holds_nothing(tmp_path: Path) -> None:
    log = backlog(tmp_path, memory=1000)
    consumer = Consumer()
    consumer.paused = True
    reader = reader_of(log, consumer)
    for n in range(50):
        log.append(stream(f"{n}" * 100))
    assert log.memory and log.disk
    log.remove(reader)
    assert (log.memory, log.disk) == (0, 0)


def test_segments_are_unnamed_files(tmp_path: Path) -> None:
    segment = FileSegment(str(tmp_path))
    segment.append(b"one")
    segment.append(b"two")
    assert list(tmp_path.iterdir()) == [], "no name: nothing to leave behind"
    first, after = segment.read(0)
    assert (first, segment.read(after)[0]) == (b"one", b"two")
    segment.close()


def test_a_directory_that_cannot_be_written_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        check_directory(str(tmp_path / "missing"))
