import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pyarrow as pa
import pytest

from redline.feeds.clock import ReplayClock
from redline.feeds.event_schema import SchemaError
from redline.feeds.events import DECISION_DTYPE, RecordType, empty
from redline.pipeline.observe.journal import Journal, move_aside, read_journal
from redline.pipeline.observe.worker_log import WorkerEvent, append_worker_events, read_worker_log

MS = 1_000_000


def test_rows_reach_disk_on_the_interval_not_before(tmp_path, make_decisions):
    clock = ReplayClock(0)
    path = tmp_path / "j.arrow"
    d = make_decisions(50)
    j = Journal(path, clock=clock, flush_interval_ns=100 * MS)
    j.append(d[:20])
    clock.advance(99 * MS)
    j.append(d[20:30])
    assert j.maybe_flush() == 0
    assert read_journal(path).size == 0  # nothing flushed yet
    clock.advance(1 * MS)
    assert j.maybe_flush() == 30
    np.testing.assert_array_equal(read_journal(path), d[:30])
    j.append(d[30:])  # 0 ms since the flush: stays buffered
    assert j.pending == 20
    j.close()
    j.close()  # idempotent
    np.testing.assert_array_equal(read_journal(path), d)


def test_append_flushes_itself_when_due(tmp_path, make_decisions):
    clock = ReplayClock(0)
    d = make_decisions(10)
    j = Journal(tmp_path / "j.arrow", clock=clock, flush_interval_ns=5 * MS)
    j.append(d[:4])
    clock.advance(5 * MS)
    j.append(d[4:6])  # due: this append writes all six
    assert j.pending == 0 and j.rows_written == 6
    j.close()


def test_hot_path_mode_leaves_interval_flushes_to_maybe_flush(tmp_path, make_decisions):
    clock = ReplayClock(0)
    d = make_decisions(10)
    j = Journal(
        tmp_path / "j.arrow",
        clock=clock,
        flush_interval_ns=5 * MS,
        capacity=8,
        flush_in_append=False,
    )
    j.append(d[:4])
    clock.advance(50 * MS)
    j.append(d[4:6])  # due, but appends never flush on time in this mode
    assert j.pending == 6 and j.rows_written == 0
    j.append(d[6:10])  # full buffer still flushes: nothing is ever dropped
    assert j.rows_written == 6 and j.pending == 4
    clock.advance(5 * MS)
    assert j.maybe_flush() == 4
    j.close()


def test_full_buffer_and_oversize_batches_keep_order(tmp_path, make_decisions):
    d = make_decisions(100, seed=2)
    seen: list[np.ndarray] = []
    path = tmp_path / "j.arrow"
    with Journal(path, clock=ReplayClock(), capacity=16, on_flush=[seen.append]) as j:
        j.append(d[:10:2])  # strided views are copied right too
        j.append(d[1:10:2])
        j.flush()
        j.append(d[:10])
        j.append(d[10:20])  # would overflow: flushes the first 10 before buffering
        assert j.rows_written == 20
        j.append(d[20:70])  # larger than the buffer: written as its own batch
        j.append(d[70:])
    out = read_journal(path)
    np.testing.assert_array_equal(out[:5], d[:10:2])
    np.testing.assert_array_equal(out[5:10], d[1:10:2])
    np.testing.assert_array_equal(out[10:], d)
    np.testing.assert_array_equal(np.concatenate(seen), out)  # listeners saw every row once


def test_torn_tail_reads_back_complete_batches(tmp_path, make_decisions):
    d = make_decisions(90, seed=4)
    path = tmp_path / "j.arrow"
    with Journal(path, clock=ReplayClock()) as j:
        for chunk in np.array_split(d, 3):
            j.append(chunk)
            j.flush()
    size = path.stat().st_size
    torn = tmp_path / "torn.arrow"
    torn.write_bytes(path.read_bytes()[: size - 500])  # cut inside the last batch
    np.testing.assert_array_equal(read_journal(torn), d[:60])


def test_bad_inputs_say_what_is_wrong(tmp_path):
    path = tmp_path / "j.arrow"
    j = Journal(path, clock=ReplayClock())
    with pytest.raises(TypeError, match="DECISION_DTYPE"):
        j.append(empty(RecordType.QUOTE, 1))
    with pytest.raises(ValueError, match="1-D"):
        j.append(empty(RecordType.DECISION, 4).reshape(2, 2))
    j.close()
    with pytest.raises(ValueError, match="after close"):
        j.append(empty(RecordType.DECISION, 1))
    with pytest.raises(FileExistsError, match=r"j\.arrow"):
        Journal(path, clock=ReplayClock())
    with pytest.raises(FileNotFoundError):
        read_journal(tmp_path / "missing.arrow")
    junk = tmp_path / "junk.arrow"
    junk.write_bytes(b"this is not arrow" * 10)
    with pytest.raises(ValueError, match="not a redline journal"):
        read_journal(junk)

    other = tmp_path / "quotes.arrow"
    with (
        pa.OSFile(str(other), "wb") as f,
        pa.ipc.new_stream(f, pa.schema([("x", pa.int64())])) as w,
    ):
        w.write_batch(pa.record_batch([pa.array([1])], names=["x"]))
    with pytest.raises(SchemaError, match="not a decision journal"):
        read_journal(other)


_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from redline.feeds.events import RecordType, empty
    from redline.feeds.clock import LiveClock
    from redline.pipeline.observe.journal import Journal

    j = Journal(sys.argv[1], clock=LiveClock(), flush_interval_ns=2_000_000)
    seq = 0
    while True:  # until killed
        d = empty(RecordType.DECISION, 50)
        d["seq"] = np.arange(seq, seq + 50)
        d["ts_decision"] = d["seq"] * 7
        d["model_version"] = 3
        j.append(d)
        seq += 50
        time.sleep(0.0005)
    """
)


@pytest.mark.timeout(60)
def test_journal_survives_kill_9(tmp_path):
    path = tmp_path / "killed.arrow"
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)])
    try:
        deadline = time.monotonic() + 30
        rows = 0
        while rows < 2000 and time.monotonic() < deadline:
            time.sleep(0.05)
            if path.exists():
                rows = read_journal(path).size
            assert child.poll() is None, "writer exited on its own"
        assert rows >= 2000, "writer never flushed 2000 rows"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    out = read_journal(path)
    assert out.dtype == DECISION_DTYPE
    assert out.size >= rows
    # A contiguous prefix of what was appended, every field intact.
    np.testing.assert_array_equal(out["seq"], np.arange(out.size))
    np.testing.assert_array_equal(out["ts_decision"], out["seq"].astype(np.int64) * 7)
    assert (out["model_version"] == 3).all()


def test_a_journal_moved_aside_takes_its_worker_log_with_it(tmp_path, make_decisions):
    path = tmp_path / "run.arrow"
    with Journal(path, clock=ReplayClock(0)) as j:
        j.append(make_decisions(3))
    crash = WorkerEvent(5, "a", "out", "crash")
    append_worker_events(path, [crash])
    aside = move_aside(path)
    assert aside == tmp_path / "run.1.arrow" and read_journal(aside).size == 3
    assert read_worker_log(aside) == [crash]
    assert read_worker_log(path) is None  # the next run starts without the old faults
