"""`redline record` and `redline publish` as real processes: crash safety, clean
exit on signals, and the issue's done-when round trip over ipc, tcp and UDP."""

import json
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zmq

from redline.feeds import event_schema as es
from redline.feeds import events as ev
from redline.feeds.live.recorder import read_journal, read_recording, segments
from redline.feeds.wire import frames as wire

T0 = 1_700_000_000_000_000_000
STAMPS = ("ts_recv", "ts_recv_source")


def _records(rtype, n, seed, source_id, ts_recv):
    rng = np.random.default_rng(seed)
    r = ev.empty(rtype, n)
    for name in r.dtype.names:
        col = r[name]
        if col.dtype.kind == "f":
            r[name] = rng.standard_normal(col.shape).astype(col.dtype)
        else:
            r[name] = rng.integers(0, 2**31, col.shape)
    r["seq"] = np.arange(n)
    r["source_id"] = source_id
    r["flags"] = 0
    r["ts_recv"] = ts_recv
    r["ts_event"] = ts_recv - 2_000
    return r


def _same_but_stamps(a, b):
    keep = [n for n in a.dtype.names if n not in STAMPS]
    assert len(a) == len(b)
    np.testing.assert_array_equal(a[keep], b[keep])


def _start_recorder(*args):
    proc = subprocess.Popen(
        [sys.executable, "-m", "redline.pipeline.cli.main", "record", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.said = []
    while "listening on" not in (line := proc.stdout.readline()):  # "" if it died
        proc.said.append(line)
        if not line:
            proc.kill()
            raise AssertionError(f"recorder did not start: {proc.communicate()}")
    return proc


def _rows_on_disk(out):
    while True:
        try:
            rows = sum(pq.read_metadata(p).num_rows for p in segments(out))
            for j in out.glob("*.journal"):
                rows += sum(len(b.records) for b in read_journal(j)[0])
            return rows
        except FileNotFoundError:  # the recorder rotated a segment while we counted: again
            continue


def _wait_rows(out, n, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while _rows_on_disk(out) < n:
        assert time.monotonic() < deadline, f"only {_rows_on_disk(out)} of {n} rows reached disk"
        time.sleep(0.02)


@pytest.fixture
def push(tmp_path):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    ep = f"ipc://{tmp_path}/feed.sock"
    sock.connect(ep)
    yield ep, sock
    ctx.destroy(0)


def test_kill_9_keeps_closed_segments_whole_and_the_open_one_up_to_its_last_flush(tmp_path, push):
    ep, sock = push
    out = tmp_path / "rec"
    args = [
        "--endpoint",
        ep,
        "--socket",
        "pull",
        "--bind",
        "--out",
        str(out),
        "--segment-rows",
        "200",
    ]
    proc = _start_recorder(*args)
    sent = _records(ev.RecordType.QUOTE, 450, 1, 1, T0 + np.arange(450))
    for i in range(0, 450, 10):
        sock.send(wire.encode(sent[i : i + 10]))
    _wait_rows(out, 450)  # flushed within the interval, so on disk before the kill
    proc.kill()
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    closed = segments(out)
    assert len(closed) == 2  # rotated at 200 rows twice; the rest is in the open journal
    journals = list(out.glob("*.journal"))
    assert len(journals) == 1
    tail, torn = read_journal(journals[0])
    got = np.concatenate([read_recording(out)[ev.RecordType.QUOTE], *[b.records for b in tail]])
    _same_but_stamps(got, sent)
    assert torn == 0

    # Second run: recovers the journal, then is killed while the stream is flowing.
    proc = _start_recorder(*args)
    assert proc.said == ["redline record: recovered 50 rows from a crashed run\n"]
    more = _records(ev.RecordType.QUOTE, 3000, 2, 3, T0 + np.arange(3000))
    stop = threading.Event()

    def stream():
        for i in range(0, 3000, 5):
            if stop.is_set():
                return
            sock.send(wire.encode(more[i : i + 5]))
            time.sleep(0.0005)

    t = threading.Thread(target=stream)
    t.start()
    _wait_rows(out, 450 + 500)
    proc.kill()
    stop.set()
    t.join(10)
    proc.wait(10)
    closed = segments(out)
    for p in closed:  # every closed segment reads back whole
        assert pq.read_metadata(p).num_rows == len(pq.read_table(p))
    journals = list(out.glob("*.journal"))
    tail = [b.records for j in journals for b in read_journal(j)[0]]
    by_source = {}
    quotes = np.concatenate([read_recording(out)[ev.RecordType.QUOTE], *tail])
    for src in (1, 3):
        by_source[src] = quotes[quotes["source_id"] == src]
    _same_but_stamps(by_source[1], sent)  # the first run, recovered
    n2 = len(by_source[3])
    assert n2 >= 500
    _same_but_stamps(by_source[3], more[:n2])  # a gap-free prefix of what was sent


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_close_the_open_segment_and_exit_0(tmp_path, push, sig):
    ep, sock = push
    out = tmp_path / "rec"
    proc = _start_recorder("--endpoint", ep, "--socket", "pull", "--bind", "--out", str(out))
    sent = _records(ev.RecordType.TRADE, 30, 3, 1, T0 + np.arange(30))
    for i in range(0, 30, 3):
        sock.send(wire.encode(sent[i : i + 3]))
    _wait_rows(out, 30)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert "30 events in 1 segments" in stdout and "(signal)" in stdout
    assert not list(out.glob("*.journal"))
    _same_but_stamps(read_recording(out)[ev.RecordType.TRADE], sent)


def _write(path, recs):
    pq.write_table(pa.Table.from_batches([es.to_arrow(recs)]), path, compression="zstd")


def _free_port(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("transport", ["ipc", "tcp", "udp"])
def test_publish_then_record_reads_back_identical_but_ts_recv(tmp_path, transport):
    # a two-file recording: quotes and trades interleaved in ts_recv over 20 ms
    ts = T0 + np.sort(np.random.default_rng(5).choice(20_000_000, 260, replace=False))
    is_quote = np.random.default_rng(6).random(260) < 0.75
    quotes = _records(ev.RecordType.QUOTE, int(is_quote.sum()), 7, 1, ts[is_quote])
    trades = _records(ev.RecordType.TRADE, int((~is_quote).sum()), 8, 2, ts[~is_quote])
    _write(tmp_path / "q.parquet", quotes)
    _write(tmp_path / "t.parquet", trades)
    if transport == "ipc":
        ep = f"ipc://{tmp_path}/pub"
    elif transport == "tcp":
        ep = f"tcp://127.0.0.1:{_free_port(socket.SOCK_STREAM)}"
    else:
        ep = f"udp://127.0.0.1:{_free_port(socket.SOCK_DGRAM)}"
    out = tmp_path / "rec"
    rec = _start_recorder("--endpoint", ep, "--out", str(out), "--json", str(tmp_path / "r.json"))
    pub = subprocess.run(
        [sys.executable, "-m", "redline.pipeline.cli.main", "publish", str(tmp_path / "q.parquet"),
         str(tmp_path / "t.parquet"), "--endpoint", ep, "--speed", "10",
         "--json", str(tmp_path / "p.json")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert pub.returncode == 0, pub.stderr
    stdout, stderr = rec.communicate(timeout=30)
    assert rec.returncode == 0, stderr
    assert "(end of stream)" in stdout
    back = read_recording(out)
    _same_but_stamps(back[ev.RecordType.QUOTE], quotes)
    _same_but_stamps(back[ev.RecordType.TRADE], trades)
    want_source = ev.TsSource.USER if transport != "udp" else ev.TsSource.KERNEL
    assert (back[ev.RecordType.QUOTE]["ts_recv"] > quotes["ts_recv"]).all()  # stamped anew
    assert (back[ev.RecordType.TRADE]["ts_recv_source"] <= want_source).all()
    pub_stats = json.loads((tmp_path / "p.json").read_text())
    assert pub_stats["events"] == 260
    assert set(pub_stats["pacing_error_ns"]) == {"p50", "p99", "p999", "max"}
    rec_stats = json.loads((tmp_path / "r.json").read_text())
    assert rec_stats["events"] == 260
    assert rec_stats["feed"]["sequence"]["gaps"] == 0
    assert rec_stats["feed"]["malformed"] == 0


def test_a_damaged_journal_is_recovered_kept_aside_and_said_on_stderr(tmp_path, push):
    ep, sock = push
    out = tmp_path / "rec"
    out.mkdir()
    q = _records(ev.RecordType.QUOTE, 30, 9, 1, T0 + np.arange(30))
    garbage = b"\xde\xad\xbe\xef" * 10  # 40 bytes, no magic
    blob = wire.encode(q[:10]) + garbage + wire.encode(q[10:20]) + wire.encode(q[20:])
    (out / "seg-000002.journal").write_bytes(blob)
    proc = _start_recorder(
        "--endpoint", ep, "--socket", "pull", "--bind", "--out", str(out),
        "--json", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert proc.said == ["redline record: recovered 30 rows from a crashed run\n"]
    t = _records(ev.RecordType.TRADE, 3, 10, 2, T0 + np.arange(3))
    sock.send(wire.encode(t))  # and the recording goes on, in the next segment
    _wait_rows(out, 33)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr  # the rows are kept: reported, not an error
    kept = out / "seg-000002.journal.damaged"
    assert kept.read_bytes() == blob and not list(out.glob("*.journal"))
    (line,) = [s for s in stderr.splitlines() if "damaged journal" in s]
    assert str(out / "seg-000002.journal") in line and "[656, 696)" in line
    assert "kept 30 rows" in line and str(kept) in line
    assert (
        f"recovered 30 rows from a crashed run (40 bytes skipped, damaged journal kept as {kept})"
        in stdout
    )
    assert "3 events in 1 segments" in stdout
    back = read_recording(out)
    _same_but_stamps(back[ev.RecordType.QUOTE], q)
    _same_but_stamps(back[ev.RecordType.TRADE], t)
    recovered = json.loads((tmp_path / "r.json").read_text())["recovered"]
    assert recovered["rows"] == 30 and recovered["skipped_bytes"] == 40
    (damaged,) = recovered["damaged"]
    assert damaged["kept_as"] == str(kept) and damaged["skipped"] == [[656, 696]]
