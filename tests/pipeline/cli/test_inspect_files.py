import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from redline.feeds import event_schema as es
from redline.feeds import events as ev
from redline.feeds.importers import output
from redline.feeds.importers import semantics as sem
from redline.feeds.realdata import realdata_dir
from redline.pipeline.cli import inspect_files as inspect_mod
from redline.pipeline.cli import main as cli
from redline.pipeline.cli.inspect_files import inspect_paths
from redline.replay_data import DIR

Q, T, S = ev.RecordType.QUOTE, ev.RecordType.TRADE, ev.RecordType.SENSOR
BAD, SNAP = int(ev.Flag.BAD_TS_RECV), int(ev.Flag.SNAPSHOT)
REALDATA = realdata_dir()
needs_realdata = pytest.mark.skipif(REALDATA is None, reason="no ../shared/realdata")


def write(path, recs):
    pq.write_table(pa.Table.from_batches([es.to_arrow(recs)]), path)


@pytest.fixture
def recording(tmp_path):
    """Three files whose figures are known by construction."""
    # source 1 (quotes, instrument 7), receive order: 2 -> 5 opens hole 3-4, 3 comes
    # late (hole left: 4), 6 twice (a duplicate), 6 -> 9 opens hole 7-8.
    q = ev.empty(Q, 8)
    q["ts_recv"] = np.arange(8) * 100 + 1_000
    q["seq"] = [0, 1, 2, 5, 3, 6, 6, 9]
    q["ts_event"] = q["ts_recv"] - 10  # latency 10 ns ...
    q["ts_event"][4] = q["ts_recv"][4] - 250  # ... except the late one: event time goes back
    q["source_id"], q["instrument_id"] = 1, 7
    q["flags"][6] = BAD  # the duplicate: its receive stamp is not trusted
    q["ts_event"][6] = 0  # absurd latency, must not reach the percentiles
    # source 2 (trades, instruments 7 and 8): in order, one ts_event going back
    t = ev.empty(T, 5)
    t["ts_recv"] = [1_050, 1_150, 1_250, 1_350, 1_450]
    t["seq"] = np.arange(100, 105)
    t["ts_event"] = [1_040, 1_140, 1_100, 1_340, 1_500]  # 1_100 < 1_140: back once
    # (and the last one is stamped 50 ns after its receipt: a negative latency)
    t["source_id"], t["instrument_id"] = 2, [7, 8, 8, 8, 7]
    t["flags"][0] = SNAP
    # source 3 (sensor): latencies 1..1000 ns in shuffled order, for the percentiles
    s = ev.empty(S, 1000)
    s["ts_recv"] = 10_000 + np.arange(1000) * 1_000
    lat = np.random.default_rng(3).permutation(np.arange(1, 1001))
    s["ts_event"] = s["ts_recv"] - lat
    s["seq"] = np.arange(1000)
    s["source_id"], s["instrument_id"] = 3, 9
    write(tmp_path / "quotes.parquet", q)
    write(tmp_path / "trades.parquet", t)
    write(tmp_path / "sensor.parquet", s)
    pq.write_table(pa.table({"symbol": ["X"]}), tmp_path / "instruments.parquet")
    return tmp_path


def test_counts_span_and_skipped_files(recording):
    r = inspect_paths([recording])
    assert r["events"] == {
        "total": 1013,
        "by_record_type": {"QUOTE": 8, "TRADE": 5, "SENSOR": 1000},
        "by_instrument": {"7": 10, "8": 3, "9": 1000},
    }
    assert r["span"]["ts_recv_first"] == 1_000
    assert r["span"]["ts_recv_last"] == 10_000 + 999 * 1_000
    assert r["span"]["ts_event_min"] == 990  # the flagged quote's ts_event 0 is no time
    assert r["span"]["seconds"] == pytest.approx((1_009_000 - 1_000) / 1e9)
    assert r["skipped"] == [str(recording / "instruments.parquet")]
    assert {f["record_type"] for f in r["files"]} == {"QUOTE", "TRADE", "SENSOR"}
    quotes = next(f for f in r["files"] if f["record_type"] == "QUOTE")
    assert quotes["rows"] == 8 and quotes["columns"]["seq"] == "uint64"
    assert r["flags"] == {"SNAPSHOT": 1, "BAD_TS_RECV": 1, "LAST": 0, "GAP_BEFORE": 0}


def test_gaps_and_out_of_order_per_source(recording):
    r = inspect_paths([recording])
    assert r["sources"]["1"] == {
        "sequence": "contiguous",  # no semantics in the file: redline's own numbering
        "events": 8,
        "seq_first": 0,
        "seq_last": 9,
        "gaps": 2,  # [4] and [7, 8]
        "missing": 3,
        "late": 2,  # 3 and the second 6
        "duplicates": 1,
        "ts_event_back": 1,  # the late one (the flagged one's ts_event 0 is no time)
    }
    assert r["sources"]["2"]["gaps"] == 0 and r["sources"]["2"]["late"] == 0
    assert r["sources"]["2"]["ts_event_back"] == 1
    assert r["sources"]["3"]["gaps"] == 0
    assert r["gaps"] == {"total": 2, "missing": 3}
    # the sensor latencies are shuffled, so its ts_event goes back often; count it apart
    back3 = r["sources"]["3"]["ts_event_back"]
    assert r["out_of_order"] == {"seq": 2, "ts_event": 2 + back3}


def test_latency_percentiles_exclude_flagged_records(recording):
    lat = inspect_paths([recording])["latency_ns"]
    # 1000 sensor latencies 1..1000, 7 quotes at 10 (one at 250), 3 trades 10, 150, 10
    assert lat["count"] == 1000 + 7 + 3
    assert lat["excluded"] == 2  # BAD_TS_RECV quote, SNAPSHOT trade
    assert lat["negative"] == 1  # counted, kept out of the percentiles
    assert lat["min"] == -50
    assert lat["max"] == 1000  # not the flagged quote's ~1e3 ns-since-epoch latency
    values = np.sort(np.r_[np.arange(1, 1001), [10] * 6, 250, [10, 150, 10]])
    for key, p in (("p50", 50), ("p99", 99), ("p999", 99.9)):
        assert lat[key] == values[int(p / 100 * len(values) + 0.5) - 1], key


def test_figures_do_not_depend_on_batch_size(recording, monkeypatch):
    whole = inspect_paths([recording])
    for batch_rows in (1, 3, 64):
        assert inspect_paths([recording], batch_rows=batch_rows) == whole
    # header buffer smaller than the batches: runs straight through, and flushed often
    monkeypatch.setattr(inspect_mod, "_CHUNK", 5)
    for batch_rows in (3, 64):
        assert inspect_paths([recording], batch_rows=batch_rows) == whole


def test_cli_writes_json_with_the_contract_keys(recording, tmp_path, capsys):
    out = tmp_path / "o" / "inspect.json"
    assert cli.main(["inspect", str(recording / "quotes.parquet"), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["events"]["total"] == 8
    assert data["events"]["by_record_type"] == {"QUOTE": 8}
    assert set(data) >= {
        "files", "skipped", "events", "span", "sources", "gaps", "out_of_order", "flags",
        "latency_ns",
    }  # fmt: skip
    assert set(data["latency_ns"]) == {
        "count", "excluded", "no_ts_event", "negative", "min", "p50", "p99", "p999", "max",
        "clamped", "saturated", "median", "clock_skew",
    }  # fmt: skip
    text = capsys.readouterr().out
    assert "events: 8" in text and "2 gaps (3 missing)" in text


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    assert cli.main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.parquet: not a readable Parquet file" in err


def test_the_obvious_glob_reads_the_instrument_table_as_one(tmp_path, capsys):
    # `redline inspect replay_data/*.parquet` named the instrument table and was refused.
    paths = sorted(str(p) for p in DIR.glob("*.parquet"))
    assert any(p.endswith("market_instruments.parquet") for p in paths)
    out = tmp_path / "i.json"
    assert cli.main(["inspect", *paths, "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    (table,) = data["instruments"]
    assert table["path"].endswith("market_instruments.parquet")
    es_row = next(i for i in table["instruments"] if i["symbol"] == "ESZ6")
    assert es_row == {
        "instrument_id": 1, "symbol": "ESZ6", "tick_size": "0.25", "price_precision": 2,
        "lot_size": "1", "multiplier": "50", "source": "generator",  # the generator says so
    }  # fmt: skip
    assert data["skipped"] == [] and len(data["files"]) == len(paths) - 1
    assert data["events"]["total"] == sum(f["rows"] for f in data["files"])
    text = capsys.readouterr().out
    assert "market_instruments.parquet: instrument table, 4 instruments" in text
    assert "ESZ6" in text and "0.015625" in text


def test_an_unknown_parquet_file_is_still_one_line(tmp_path, capsys):
    other = tmp_path / "prices.parquet"
    pq.write_table(pa.table({"symbol": ["X"], "close": [1.5]}), other)
    assert cli.main(["inspect", str(other)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "prices.parquet" in err and "match no record type" in err


def _quotes(ts_recv, latency_ns, source=1):
    q = ev.empty(Q, len(ts_recv))
    q["ts_recv"] = ts_recv
    q["ts_event"] = q["ts_recv"] - latency_ns
    q["seq"] = np.arange(len(ts_recv))
    q["source_id"], q["instrument_id"] = source, 1
    return q


def test_a_percentile_at_the_histogram_ceiling_is_named_not_printed(tmp_path, capsys):
    # 5% of the events stamped two minutes before receipt: p99 and p99.9 sit at 60 s.
    lat = np.full(1000, 20_000)
    lat[::20] = 120_000_000_000
    write(tmp_path / "q.parquet", _quotes(2_000_000_000_000_000_000 + np.arange(1000), lat))
    out = tmp_path / "i.json"
    assert cli.main(["inspect", str(tmp_path / "q.parquet"), "--json", str(out)]) == 0
    lat_fig = json.loads(out.read_text())["latency_ns"]
    assert lat_fig["clamped"] == 50 and lat_fig["saturated"] == ["p99", "p999"]
    assert lat_fig["max"] == 120_000_000_000  # exact, beyond the ceiling
    text = capsys.readouterr().out
    line = next(x for x in text.splitlines() if x.startswith("ts_recv - ts_event"))
    assert "p50 20,0" in line  # within HDR's 0.1%
    assert "p99 >= 60 s (histogram ceiling)" in line and "p99.9 >= 60 s" in line
    assert "60,0" not in line.split("max")[0]  # no ceiling printed as if it were a figure
    assert "50 latencies above the histogram's 60 s ceiling" in text


def test_spans_are_utc_dates_per_recording(tmp_path, capsys):
    day1 = 1_795_076_100_000_000_000  # 2026-11-19 08:15:00 UTC
    day2 = day1 + 30 * 3_600_000_000_000  # 30 h later: the next day
    write(tmp_path / "a.parquet", _quotes(day1 + np.arange(3) * 60_000_000_000, 1000, source=1))
    write(tmp_path / "b.parquet", _quotes(day2 + np.arange(2) * 1_500_000, 1000, source=2))
    out = tmp_path / "i.json"
    assert cli.main(["inspect", str(tmp_path), "--json", str(out)]) == 0
    files = {f["path"][-9:]: f for f in json.loads(out.read_text())["files"]}
    assert files["a.parquet"]["ts_recv_first"] == day1
    assert files["b.parquet"]["ts_recv_last"] == day2 + 1_500_000
    text = capsys.readouterr().out
    assert "span (ts_recv, UTC): 2026-11-19 08:15:00.000000 .. 2026-11-20 14:15:00.001500 " \
        "(30 h 0 min 0.002 s)" in text  # fmt: skip
    assert "a.parquet: 2026-11-19 08:15:00.000000 .. 2026-11-19 08:17:00.000000 (2 min 0.000 s)" \
        in text  # fmt: skip
    assert "b.parquet: 2026-11-20 14:15:00.000000 .. 2026-11-20 14:15:00.001500 (1.500 ms)" in text
    assert "cover 2 days (2026-11-19, 2026-11-20)" in text
    assert "1795076100000000000" not in text  # no raw integers


def test_records_received_before_their_event_time_are_said_with_the_offset(tmp_path, capsys):
    # Every record stamped 3 ms after its receipt: the recorder's clock is behind.
    write(tmp_path / "q.parquet", _quotes(10**18 + np.arange(5), -3_000_000))
    out = tmp_path / "i.json"
    assert cli.main(["inspect", str(tmp_path / "q.parquet"), "--json", str(out)]) == 0
    lat = json.loads(out.read_text())["latency_ns"]
    assert lat["count"] == 0 and lat["negative"] == 5 and lat["min"] == -3_000_000
    text = capsys.readouterr().out
    assert "5 records received before their event time (down to -3,000,000 ns)" in text
    assert "the recorder's clock runs at least 3.000 ms behind the source's" in text


def test_all_negative_latency_still_prints_and_names_the_clock_skew(tmp_path, capsys):
    write(tmp_path / "q.parquet", _quotes(10**18 + np.arange(5), [-3_000_000] * 4 + [5_000]))
    out = tmp_path / "i.json"
    assert cli.main(["inspect", str(tmp_path / "q.parquet"), "--json", str(out)]) == 0
    lat = json.loads(out.read_text())["latency_ns"]
    # 4 of 5 at -3 ms: the median is -3 ms (within HDR's 0.1%), negative: a skew
    assert lat["median"] == pytest.approx(-3_000_000, rel=1e-3)
    assert lat["clock_skew"] == lat["median"]
    text = capsys.readouterr().out
    assert "ts_recv - ts_event (ns): p50 5,00" in text  # the one positive, still printed
    assert f"median {lat['median']:,} ns over 5 records, negative ones included" in text
    assert "clock skew: median ts_recv - ts_event is -3,00" in text
    assert "runs about 3.00" in text and "ms behind the source's" in text


def test_a_median_beyond_the_bound_is_a_skew_and_below_it_is_not(tmp_path, capsys):
    write(tmp_path / "q.parquet", _quotes(10**18 + np.arange(3), [2_500_000_000] * 3))
    lat = inspect_paths([tmp_path / "q.parquet"])["latency_ns"]
    assert lat["clock_skew"] == lat["median"] == pytest.approx(2_500_000_000, rel=1e-3)
    assert cli.main(["inspect", str(tmp_path / "q.parquet")]) == 0
    assert "beyond the 1 s a network delay could explain" in capsys.readouterr().out
    write(tmp_path / "q.parquet", _quotes(10**18 + np.arange(3), [800_000] * 3))
    lat = inspect_paths([tmp_path / "q.parquet"])["latency_ns"]
    assert lat["clock_skew"] is None and lat["median"] == pytest.approx(800_000, rel=1e-3)


def test_records_without_an_event_time_are_counted_apart(tmp_path, capsys):
    q = _quotes(10**18 + np.arange(4), [1_000] * 4)
    q["ts_event"][1:3] = 0  # a spot bookTicker carries no event time
    write(tmp_path / "q.parquet", q)
    assert cli.main(["inspect", str(tmp_path / "q.parquet")]) == 0
    text = capsys.readouterr().out
    assert "(n=2, 0 excluded, 0 negative)" in text
    assert "2 records carry no event time" in text


def _book(seq, flags=0, source=2, instrument=1):
    b = ev.empty(ev.RecordType.BOOK_DELTA, len(seq))
    b["ts_recv"] = np.arange(len(seq)) + 10**18
    b["ts_event"] = b["ts_recv"] - 100
    b["seq"], b["flags"], b["source_id"], b["instrument_id"] = seq, flags, source, instrument
    return b


def test_each_source_is_checked_by_what_its_numbers_mean(tmp_path, capsys):
    gap = int(ev.Flag.GAP_BEFORE)
    # per event: ids jump and repeat (one event's levels); one gap flagged at import; one back
    per_event = _book([100, 100, 100, 107, 107, 130, 129], [0, 0, 0, 0, 0, gap, 0], source=2)
    # shared (a CME channel): jumps are other instruments' messages; one number goes back
    shared = _book([5, 5, 9, 12, 11], source=3)
    # contiguous per instrument: two symbols' trade ids interleaved, each without a hole,
    # except instrument 2's 52 -> 54
    per_inst = _book([10, 50, 11, 51, 12, 52, 54], source=4, instrument=[1, 2, 1, 2, 1, 2, 2])
    none = _book([0, 7, 3], source=5)  # the importer's own numbers: nothing to check
    recs = np.concatenate([per_event, shared, per_inst, none])
    output.write_records(tmp_path / "book.parquet", recs, {
        2: sem.PER_EVENT, 3: sem.SHARED, 4: sem.PER_INSTRUMENT, 5: sem.NONE})  # fmt: skip
    r = inspect_paths([tmp_path / "book.parquet"])
    figures = {
        s: (v["sequence"], v["gaps"], v["missing"], v["late"]) for s, v in r["sources"].items()
    }
    assert figures == {
        "2": ("per event", 1, None, 1),
        "3": ("shared", 0, None, 1),
        "4": ("contiguous per instrument", 1, 1, 0),
        "5": ("none", 0, None, 0),
    }
    assert r["gaps"] == {"total": 2, "missing": 1}
    assert r["sources"]["4"]["seq_first"] == 10 and r["sources"]["4"]["events"] == 7
    assert cli.main(["inspect", str(tmp_path / "book.parquet")]) == 0
    text = capsys.readouterr().out
    assert "source 3 (shared): 5 events, seq 5..12, gaps not checkable" in text
    assert "source 5 (none): 3 events, seq 0..7, no venue sequence to check" in text


@needs_realdata
def test_real_captures_import_and_inspect_with_no_false_gaps(tmp_path):
    cme, binance = REALDATA / "cme", REALDATA / "binance" / "ethusdt_20240808.gz"
    imports = {
        "binance": [binance],
        "mbp-1": [*cme.glob("futures_*.dbn.zst")],
        "mbo": [*cme.glob("orderbooks_*.dbn.zst")],
    }
    for name, files in imports.items():
        assert cli.main(["import", *map(str, files), str(tmp_path / name)]) == 0
        r = inspect_paths([tmp_path / name])
        assert r["gaps"] == {"total": 0, "missing": 0}, name
        assert r["out_of_order"]["seq"] == 0, name
        assert all(s["duplicates"] == 0 for s in r["sources"].values()), name
    # the Binance recorder's clock ran about 1.27 s behind the venue's: named, not hidden
    skew = inspect_paths([tmp_path / "binance"])["latency_ns"]["clock_skew"]
    assert -1_300_000_000 < skew < -1_240_000_000
