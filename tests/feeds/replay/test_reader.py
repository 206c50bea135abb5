import threading
import tracemalloc
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from redline.feeds import event_schema as es
from redline.feeds import events as ev
from redline.feeds.events import Batch
from redline.feeds.instruments import Instrument, InstrumentTable
from redline.feeds.replay.files import ReplayError
from redline.feeds.replay.reader import Replay, replay

Q, T, S = ev.RecordType.QUOTE, ev.RecordType.TRADE, ev.RecordType.SENSOR


def records(rtype, n, *, seed, ts_max=None, sources=(1,), seqs=None):
    """`n` records sorted by ts_recv; small ranges make ties on every key likely."""
    rng = np.random.default_rng(seed)
    r = ev.empty(rtype, n)
    r["ts_recv"] = np.sort(rng.integers(1_000, 1_000 + (ts_max or 4 * n), n))
    r["ts_event"] = r["ts_recv"] - rng.integers(0, 500, n)
    r["source_id"] = rng.choice(sources, n)
    r["seq"] = rng.integers(0, seqs, n) if seqs else np.arange(n)
    r["instrument_id"] = rng.integers(1, 4, n)
    payload = r.dtype.names[len(ev.HEADER_FIELDS)]  # a payload column tags each row
    r[payload] = seed * 1_000_000 + np.arange(n)
    return r


def write(path, recs, row_group_size=None, **kw):
    pq.write_table(
        pa.Table.from_batches([es.to_arrow(recs)]), path, row_group_size=row_group_size, **kw
    )
    return path


def expected_order(*recs_list):
    """The contract: stable sort of all files' records, in path order, by the three keys."""
    ts = np.concatenate([r["ts_recv"] for r in recs_list])
    src = np.concatenate([r["source_id"] for r in recs_list])
    seq = np.concatenate([r["seq"] for r in recs_list])
    order = np.lexsort((seq, src, ts))
    which = np.concatenate([np.full(len(r), k) for k, r in enumerate(recs_list)])
    row = np.concatenate([np.arange(len(r)) for r in recs_list])
    return [(int(which[i]), int(row[i])) for i in order]


def concat(batches):
    return np.concatenate([b.records for b in batches])


@pytest.mark.parametrize("batch_rows", [5, 64, 5000])
@pytest.mark.parametrize("readahead", [1, 4])
def test_merge_is_the_stable_sort_of_all_files(tmp_path, batch_rows, readahead):
    files = [
        records(Q, 900, seed=1, ts_max=600, sources=(1, 2, 3), seqs=4),
        records(Q, 700, seed=2, ts_max=600, sources=(1, 2), seqs=4),
        records(Q, 400, seed=3, ts_max=2000, sources=(2,), seqs=None),
    ]
    paths = [write(tmp_path / f"f{k}.parquet", r, row_group_size=97) for k, r in enumerate(files)]
    batches = list(replay(paths, batch_rows=batch_rows, readahead=readahead))
    assert all(isinstance(b, Batch) and b.rtype == Q for b in batches)
    assert all(0 < len(b.records) <= batch_rows for b in batches)
    want = np.array([files[f][r] for f, r in expected_order(*files)], dtype=ev.QUOTE_DTYPE)
    np.testing.assert_array_equal(concat(batches), want)


def test_ties_go_by_source_id_then_seq_then_path_order(tmp_path):
    a = ev.empty(Q, 4)
    a["ts_recv"] = [10, 20, 20, 20]
    a["source_id"] = [1, 2, 1, 1]  # within one file too: (2, _) after (1, _) at ts 20
    a["seq"] = [0, 0, 7, 5]
    a["bid_px"] = [100, 101, 102, 103]
    b = ev.empty(Q, 3)
    b["ts_recv"] = [10, 20, 20]
    b["source_id"] = [1, 1, 2]
    b["seq"] = [0, 6, 0]  # (1, 0) at ts 10 fully ties a[0]: a comes first (path order)
    b["bid_px"] = [200, 201, 202]
    got = concat(replay([write(tmp_path / "a.parquet", a), write(tmp_path / "b.parquet", b)]))
    assert got["bid_px"].tolist() == [100, 200, 103, 201, 102, 101, 202]
    # reversed paths: only the full tie changes places
    got = concat(replay([tmp_path / "b.parquet", tmp_path / "a.parquet"]))
    assert got["bid_px"].tolist() == [200, 100, 103, 201, 102, 202, 101]


def test_ties_across_a_chunk_boundary_are_ordered(tmp_path):
    r = ev.empty(Q, 6)
    r["ts_recv"] = [1, 5, 5, 5, 5, 9]
    r["source_id"] = [0, 3, 2, 2, 1, 0]
    r["seq"] = [0, 0, 9, 8, 0, 0]
    r["bid_px"] = np.arange(6)
    path = write(tmp_path / "a.parquet", r)
    for batch_rows in (1, 2, 3, 6):
        got = concat(replay(path, batch_rows=batch_rows))
        assert got["bid_px"].tolist() == [0, 4, 3, 2, 1, 5], batch_rows


def test_single_sorted_file_comes_back_unchanged(tmp_path):
    r = records(S, 3000, seed=4, ts_max=10**9)
    r["values"] = np.random.default_rng(0).standard_normal((3000, ev.SENSOR_WIDTH))
    path = write(tmp_path / "s.parquet", r, row_group_size=1000)
    batches = list(replay(path, batch_rows=512))
    assert [len(b.records) for b in batches] == [512] * 5 + [440]
    np.testing.assert_array_equal(concat(batches), r)


def test_mixed_record_types_come_as_runs_in_merged_order(tmp_path):
    q = records(Q, 500, seed=5, ts_max=3000, sources=(1, 2))
    t = records(T, 200, seed=6, ts_max=3000, sources=(1, 2))
    s = records(S, 300, seed=7, ts_max=3000, sources=(3,))
    paths = [
        write(tmp_path / f"{k}.parquet", r, row_group_size=64) for k, r in enumerate((q, t, s))
    ]
    batches = list(replay(paths, batch_rows=50, readahead=2))
    for b in batches:
        assert b.records.dtype == ev.DTYPES[b.rtype]
    got = [(b.rtype, int(x)) for b in batches for x in b.records[ev.DTYPES[b.rtype].names[7]]]
    rtypes = (Q, T, S)
    want = [
        (rtypes[f], int((q, t, s)[f][r][ev.DTYPES[rtypes[f]].names[7]]))
        for f, r in expected_order(q, t, s)
    ]
    assert got == want
    assert {b.rtype for b in batches} == {Q, T, S}


@pytest.mark.parametrize("n_files", [1, 3])
def test_memory_is_bounded_independently_of_file_length(tmp_path, n_files):
    batch_rows, readahead = 500, 2
    peaks, traced, arrow = {}, {}, {}
    warm = [write(tmp_path / f"w{k}.parquet", records(Q, 10, seed=k)) for k in range(2)]
    list(replay(warm))  # the merge kernel's first call (JIT / cache load) is not traced
    for n in (10_000, 100_000):
        paths = [
            write(tmp_path / f"{n}_{k}.parquet", records(Q, n, seed=k, ts_max=10**12), 4096)
            for k in range(n_files)
        ]
        rep = Replay(paths, batch_rows=batch_rows, readahead=readahead)
        tracemalloc.start()  # numpy buffers are traced; Arrow's own pool is counted apart
        total, arrow[n] = 0, 0
        for b in rep:
            total += len(b.records)
            arrow[n] = max(arrow[n], pa.total_allocated_bytes())
        traced[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert total == n * n_files
        peaks[n] = rep.peak_buffered_rows
    # rows held: under a bound that depends on batch_rows, readahead and files only
    bound = (2 * n_files + readahead + 1) * batch_rows
    assert peaks[10_000] <= bound and peaks[100_000] <= bound
    # numpy bytes: a few times the bound's records (64 B each, plus merge temporaries),
    # at either length; the 100k-row files hold 6.4 MB of records each
    for n in traced:
        assert traced[n] < 8 * 64 * bound, (n, traced[n])
    # Arrow's pool too (~1.3 MB for 3 files at either length, measured): pyarrow's
    # pre-buffering kept every row group read so far (9 MB here, 540 MB in the 50M
    # benchmark), so it is off
    assert arrow[100_000] < 2 * arrow[10_000]


# ---- bad input: the error names file, column and row; what came before survives ----


def test_missing_column_names_file_and_column(tmp_path):
    table = pa.Table.from_batches([es.to_arrow(records(Q, 10, seed=1))]).drop_columns(["seq"])
    pq.write_table(table, tmp_path / "q.parquet")
    with pytest.raises(es.SchemaError, match=r"q\.parquet: missing column 'seq'"):
        replay(tmp_path / "q.parquet")


def test_mistyped_column_names_file_column_and_types(tmp_path):
    table = pa.Table.from_batches([es.to_arrow(records(Q, 10, seed=1))])
    i = table.schema.get_field_index("bid_px")
    table = table.set_column(i, "bid_px", table["bid_px"].cast(pa.float64()))
    pq.write_table(table, tmp_path / "q.parquet")
    with pytest.raises(es.SchemaError, match=r"q\.parquet: column 'bid_px' has type double"):
        replay(tmp_path / "q.parquet")


@pytest.mark.parametrize("bad_row", [0, 1, 640, 999])
def test_unsorted_file_names_the_row_and_delivers_the_rows_before(tmp_path, bad_row):
    r = records(Q, 1000, seed=2, ts_max=10**9)
    r["ts_recv"][bad_row] = r["ts_recv"][bad_row - 1] - 1 if bad_row else 0
    if bad_row == 0:  # first row can't go back; make the second go back instead
        r["ts_recv"][0] = r["ts_recv"][1] + 1
        bad_row = 1
    path = write(tmp_path / "q.parquet", r, row_group_size=300)
    got = []
    with pytest.raises(ReplayError, match=rf"q\.parquet: not sorted by ts_recv at row {bad_row}:"):
        for b in replay(path, batch_rows=128):
            got.append(b.records.copy())
    delivered = np.concatenate(got) if got else r[:0]
    np.testing.assert_array_equal(delivered, r[:bad_row])


def test_unsorted_file_in_a_merge_stops_at_the_bad_point(tmp_path):
    good = records(Q, 2000, seed=3, ts_max=10**6, sources=(1,))
    bad = records(Q, 2000, seed=4, ts_max=10**6, sources=(2,))
    bad["ts_recv"][1500] = bad["ts_recv"][1499] - 1
    paths = [write(tmp_path / "good.parquet", good), write(tmp_path / "bad.parquet", bad)]
    got = []
    with pytest.raises(ReplayError, match=r"bad\.parquet: not sorted by ts_recv at row 1500"):
        for b in replay(paths, batch_rows=100):
            got.append(b.records.copy())
    delivered = np.concatenate(got)
    # a prefix of the true merge of what was readable, holding every bad row before 1500
    full = [(good, bad[:1500])[f][r] for f, r in expected_order(good, bad[:1500])]
    np.testing.assert_array_equal(delivered, np.array(full[: len(delivered)], ev.QUOTE_DTYPE))
    assert (delivered["source_id"] == 2).sum() == 1500
    # and nothing past the point where the bad file's data went missing
    assert delivered["ts_recv"].max() <= bad["ts_recv"][1499]


def test_truncated_file_is_named(tmp_path):
    path = write(tmp_path / "q.parquet", records(Q, 1000, seed=5))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReplayError, match=r"q\.parquet: not a readable Parquet file"):
        replay(path)


@pytest.mark.parametrize("batch_rows", [250, 600])  # 600: a batch spans row groups
def test_corrupted_row_group_fails_there_after_delivering_the_ones_before(tmp_path, batch_rows):
    r = records(Q, 4000, seed=6, ts_max=10**9)
    path = write(tmp_path / "q.parquet", r, row_group_size=1000, write_page_checksum=True)
    col = pq.ParquetFile(path).metadata.row_group(2).column(3)  # a column of rows 2000-2999
    data = bytearray(path.read_bytes())
    mid = col.data_page_offset + col.total_compressed_size // 2
    data[mid : mid + 8] = bytes(b ^ 0xFF for b in data[mid : mid + 8])
    path.write_bytes(bytes(data))
    got = []
    with pytest.raises(
        ReplayError, match=r"q\.parquet: corrupted data in row group 2 \(rows 2000-2999\)"
    ):
        for b in replay(path, batch_rows=batch_rows):
            got.append(b.records.copy())
    delivered = np.concatenate(got)
    assert len(delivered) == 2000 // batch_rows * batch_rows  # every batch read before it
    np.testing.assert_array_equal(delivered, r[: len(delivered)])


@pytest.mark.parametrize(("column", "row"), [("seq", 211), ("ts_recv", 150)])
def test_null_value_names_column_and_row(tmp_path, column, row):
    r = records(Q, 300, seed=7)
    table = pa.Table.from_batches([es.to_arrow(r)])
    values = table[column].to_pylist()
    values[row] = None
    i = table.schema.get_field_index(column)
    typ = table.schema.field(i).type
    table = table.set_column(i, pa.field(column, typ, nullable=True), pa.array(values, typ))
    pq.write_table(table, tmp_path / "q.parquet")
    got = []
    with pytest.raises(ReplayError, match=rf"q\.parquet: row {row}: column '{column}' is null"):
        for b in replay(tmp_path / "q.parquet", batch_rows=100):
            got.append(b.records.copy())
    np.testing.assert_array_equal(np.concatenate(got), r[:row])


def test_not_an_event_file_is_an_error_when_named_and_skipped_in_a_directory(tmp_path):
    inst = Instrument(1, "ESZ6", tick_size=Decimal("0.25"), price_precision=2, lot_size=Decimal(1))
    inst_path = tmp_path / "instruments.parquet"
    InstrumentTable([inst]).write(inst_path)
    with pytest.raises(es.SchemaError, match=r"instruments\.parquet: no redline\.record_type"):
        replay(inst_path)
    q = records(Q, 50, seed=8)
    write(tmp_path / "q.parquet", q)
    rep = Replay(tmp_path)
    assert rep.skipped == [inst_path]
    assert [f.path.name for f in rep.files] == ["q.parquet"]
    np.testing.assert_array_equal(concat(rep), q)


def test_unknown_record_type_tag_and_missing_path(tmp_path):
    table = pa.Table.from_batches([es.to_arrow(records(Q, 5, seed=9))])
    table = table.replace_schema_metadata({es.RECORD_TYPE_KEY: b"ORDERBOOK"})
    pq.write_table(table, tmp_path / "x.parquet")
    with pytest.raises(es.SchemaError, match=r"x\.parquet: unknown record type b'ORDERBOOK'"):
        replay(tmp_path / "x.parquet")
    with pytest.raises(FileNotFoundError, match=r"nope\.parquet"):
        replay(tmp_path / "nope.parquet")
    with pytest.raises(ValueError, match="batch_rows must be >= 1, got 0"):
        replay(tmp_path / "x.parquet", batch_rows=0)


def test_empty_inputs_and_early_close_leave_no_reader_thread(tmp_path):
    assert list(replay(write(tmp_path / "e.parquet", ev.empty(Q, 0)))) == []
    assert list(replay(tmp_path / "e.parquet", batch_rows=3)) == []
    (tmp_path / "empty").mkdir()
    assert list(replay(tmp_path / "empty")) == []
    path = write(tmp_path / "q.parquet", records(Q, 5000, seed=10), row_group_size=500)
    it = replay(path, batch_rows=100, readahead=2)
    first = next(it)
    assert len(first.records) == 100
    it.close()
    assert not [t for t in threading.enumerate() if t.name == "redline-replay-read"]
