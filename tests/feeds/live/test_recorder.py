import struct

import numpy as np
import pyarrow.parquet as pq
import pytest

from redline.feeds import events as ev
from redline.feeds.clock import ReplayClock
from redline.feeds.events import Batch
from redline.feeds.live.recorder import (
    Recorder,
    read_journal,
    read_recording,
    recover,
    scan_journal,
    segments,
)
from redline.feeds.wire.frames import encode

MS = 1_000_000


def _batches(records, n_frames, per_frame=10):
    q = records(ev.RecordType.QUOTE, n_frames * per_frame)
    t = records(ev.RecordType.TRADE, n_frames, source_id=2)
    out = []
    for i in range(n_frames):
        out.append(Batch(ev.RecordType.QUOTE, q[i * per_frame : (i + 1) * per_frame]))
        out.append(Batch(ev.RecordType.TRADE, t[i : i + 1]))
    return q, t, out


def test_segments_rotate_by_rows_and_read_back_whole(tmp_path, records):
    q, t, batches = _batches(records, 12)
    clock = ReplayClock()
    with Recorder(tmp_path, segment_rows=50, clock=clock) as rec:
        for b in batches:
            rec.write(b)
            rec.tick()
    names = [p.name for p in segments(tmp_path)]
    # 132 rows in segments of 50: 50 + 50 + 32
    assert names == [
        "seg-000001.quote.parquet", "seg-000001.trade.parquet",
        "seg-000002.quote.parquet", "seg-000002.trade.parquet",
        "seg-000003.quote.parquet", "seg-000003.trade.parquet",
    ]  # fmt: skip
    assert not list(tmp_path.glob("*.journal")) and not list(tmp_path.glob("*.tmp"))
    back = read_recording(tmp_path)
    np.testing.assert_array_equal(back[ev.RecordType.QUOTE], q)
    np.testing.assert_array_equal(back[ev.RecordType.TRADE], t)
    assert rec.segments_closed == 3 and rec.rows == 132


def test_a_batch_larger_than_a_segment_is_split_where_each_segment_fills(tmp_path, records):
    q = records(ev.RecordType.QUOTE, 450)
    rec = Recorder(tmp_path, segment_rows=200, clock=ReplayClock())
    rec.write(Batch(ev.RecordType.QUOTE, q))  # one receive can hand over hundreds of frames
    rec.flush()
    closed = segments(tmp_path)
    assert [len(pq_rows) for pq_rows in map(_rows, closed)] == [200, 200]
    (journal,) = tmp_path.glob("*.journal")
    tail, torn = read_journal(journal)
    assert torn == 0 and sum(len(b.records) for b in tail) == 50
    rec.close()
    np.testing.assert_array_equal(read_recording(tmp_path)[ev.RecordType.QUOTE], q)


def _rows(path):
    return pq.read_table(path).column(0)


def test_segments_rotate_by_time(tmp_path, records):
    _, _, batches = _batches(records, 4)
    clock = ReplayClock()
    rec = Recorder(tmp_path, segment_seconds=1.0, clock=clock)
    for b in batches:
        rec.write(b)
        clock.advance(300 * MS)
        rec.tick()
    rec.close()
    # segment opened at the first write; 4 ticks 300 ms apart: rotated at 1.2 s
    assert [p.name.split(".")[0] for p in segments(tmp_path)] == ["seg-000001"] * 2 + [
        "seg-000002"
    ] * 2


def test_journal_holds_exactly_what_was_flushed(tmp_path, records):
    _, _, batches = _batches(records, 3)
    clock = ReplayClock()
    rec = Recorder(tmp_path, flush_interval_s=0.1, clock=clock)
    journal = tmp_path / "seg-000001.journal"
    rec.write(batches[0])
    rec.write(batches[1])
    clock.advance(99 * MS)
    rec.tick()
    assert journal.stat().st_size == 0  # inside the flush interval: only in memory
    clock.advance(1 * MS)
    rec.tick()
    got, torn = read_journal(journal)
    assert [len(b.records) for b in got] == [10, 1] and torn == 0
    rec.write(batches[2])  # written, not yet flushed: lost if the process dies now
    assert [len(b.records) for b in read_journal(journal)[0]] == [10, 1]


def test_recover_turns_a_torn_journal_into_a_segment(tmp_path, records):
    q = records(ev.RecordType.QUOTE, 30)
    t = records(ev.RecordType.TRADE, 2)
    blob = encode(q[:10]) + encode(t) + encode(q[10:20]) + encode(q[20:])[:-7]
    (tmp_path / "seg-000004.journal").write_bytes(blob)
    assert recover(tmp_path) == 22
    back = read_recording(tmp_path)
    np.testing.assert_array_equal(back[ev.RecordType.QUOTE], q[:20])
    np.testing.assert_array_equal(back[ev.RecordType.TRADE], t)
    # a new recorder continues the numbering after the recovered segment
    with Recorder(tmp_path) as rec:
        rec.write(Batch(ev.RecordType.QUOTE, q[:1]))
    assert segments(tmp_path)[-1].name == "seg-000005.quote.parquet"


def test_bad_recorder_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match="segment_rows must be >= 1"):
        Recorder(tmp_path, segment_rows=0)


def _frames(records, n=4):
    """`n` real quote frames of 10 records each (656 bytes: 16 header + 10 x 64)."""
    q = records(ev.RecordType.QUOTE, 10 * n)
    return q, [encode(q[i * 10 : (i + 1) * 10]) for i in range(n)]


def test_garbage_in_the_middle_of_a_journal_keeps_the_frames_on_both_sides(tmp_path, records):
    q, f = _frames(records)
    garbage = b"\x00\xffnot a frame" * 3  # 39 bytes, no magic
    journal = tmp_path / "seg-000001.journal"
    journal.write_bytes(f[0] + f[1] + garbage + f[2] + f[3])
    got, torn = read_journal(journal)
    np.testing.assert_array_equal(np.concatenate([b.records for b in got]), q)
    read = scan_journal(journal)
    start = 2 * len(f[0])
    assert torn == 0 and read.skipped == [(start, start + 39)] and read.skipped_bytes == 39
    assert read.damaged and read.skipped_by_reason["magic"] == 1


def _corrupt(frame, field, value):
    """`frame` with one header field replaced: (offset, struct format) per field."""
    at, fmt = {"magic": (0, "4s"), "version": (4, "B"), "count": (8, "I"), "size": (12, "I")}[field]
    out = bytearray(frame)
    struct.pack_into("<" + fmt, out, at, value)
    return bytes(out)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("magic", b"RDLX", "magic"),
        ("version", 9, "version"),
        ("count", 11, "count"),  # claims a record more: would swallow the next header
        ("count", 4000, "count"),  # claims past the end of the file
        ("size", 48, "record_size"),
    ],
)
def test_a_corrupt_header_mid_journal_skips_that_frame_only(
    tmp_path, records, field, value, reason
):
    q, f = _frames(records)
    journal = tmp_path / "seg-000001.journal"
    journal.write_bytes(f[0] + _corrupt(f[1], field, value) + f[2] + f[3])
    read = scan_journal(journal)
    keep = np.r_[0:10, 20:40]  # frames 0, 2 and 3
    np.testing.assert_array_equal(np.concatenate([b.records for b in read.batches]), q[keep])
    assert read.skipped == [(656, 1312)] and read.torn == 0
    assert read.skipped_by_reason[reason] == 1 and sum(read.skipped_by_reason.values()) == 1


def test_recovery_keeps_the_damaged_journal_aside_and_every_readable_row(tmp_path, records):
    q, f = _frames(records)
    t = records(ev.RecordType.TRADE, 2, source_id=2)
    blob = f[0] + b"junk" * 5 + encode(t) + _corrupt(f[1], "magic", b"XXXX") + f[2] + f[3][:-7]
    (tmp_path / "seg-000003.journal").write_bytes(blob)
    rec = Recorder(tmp_path)
    back = read_recording(tmp_path)
    np.testing.assert_array_equal(back[ev.RecordType.QUOTE], q[np.r_[0:10, 20:30]])
    np.testing.assert_array_equal(back[ev.RecordType.TRADE], t)
    kept = tmp_path / "seg-000003.journal.damaged"
    assert kept.read_bytes() == blob and not list(tmp_path.glob("*.journal"))
    stats = rec.recovery_stats()
    trade_end = 656 + 20 + len(encode(t))
    assert stats["rows"] == 22 and stats["journals"] == 1
    assert stats["skipped_bytes"] == 20 + 656 and stats["torn_bytes"] == 649
    (damaged,) = stats["damaged"]
    assert damaged["kept_as"] == str(kept) and damaged["rows"] == 22
    assert damaged["skipped"] == [[656, 676], [trade_end, trade_end + 656]]
    assert damaged["skipped_frames"] == 2 and damaged["skipped_by_reason"]["magic"] == 2
    with rec:  # the recorder goes on after the recovered segment, the kept journal aside
        rec.write(Batch(ev.RecordType.QUOTE, q[:1]))
    assert segments(tmp_path)[-1].name == "seg-000004.quote.parquet" and kept.exists()


@pytest.mark.parametrize("cut", [7, 656 - 3])  # into the last record; into the header
def test_a_torn_tail_alone_is_cut_and_the_journal_removed(tmp_path, records, cut):
    q, f = _frames(records)
    (tmp_path / "seg-000001.journal").write_bytes(f[0] + f[1] + f[2][:-cut])
    rec = Recorder(tmp_path)
    np.testing.assert_array_equal(read_recording(tmp_path)[ev.RecordType.QUOTE], q[:20])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg-000001.quote.parquet"]
    assert rec.recovery_stats() == {
        "rows": 20,
        "journals": 1,
        "torn_bytes": 656 - cut,
        "skipped_bytes": 0,
        "damaged": [],
    }
