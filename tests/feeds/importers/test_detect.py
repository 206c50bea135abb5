import gzip
import json
from pathlib import Path

import databento_dbn as dbn
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from redline.feeds import event_schema as es
from redline.feeds import events as ev
from redline.feeds.importers.detect import detect_format, import_files
from redline.feeds.instruments import InstrumentTable
from redline.pipeline.cli import main as cli

HERE = Path(__file__).resolve().parent


def _load(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


binance_t = _load("test_binance")
dbn_t = _load("test_dbn")


@pytest.fixture
def inputs(tmp_path):
    cap = tmp_path / "cap.gz"
    trade = binance_t.line(10**6, binance_t.trade(1, "100.00", "0.5", True)).encode()
    cap.write_bytes(gzip.compress(binance_t.random_capture(4, n_changes=400) + b"\n" + trade))
    mbo = dbn_t.write_dbn(tmp_path / "book.dbn.zst", dbn.Schema.MBO, dbn_t.MBO_RECS)
    defs = dbn_t.write_dbn(
        tmp_path / "def.dbn", dbn.Schema.DEFINITION, [dbn_t.definition()], compress=False
    )
    return cap, mbo, defs


def test_formats_are_detected_from_the_first_bytes(inputs, tmp_path):
    cap, mbo, defs = inputs
    plain = tmp_path / "cap.txt"
    plain.write_bytes(gzip.decompress(cap.read_bytes()))
    assert [detect_format(p) for p in (cap, plain, mbo, defs)] == ["binance"] * 2 + ["dbn"] * 2
    junk = tmp_path / "x.csv"
    junk.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match=r"x\.csv: cannot tell the format .* --format"):
        detect_format(junk)


def test_import_command_writes_one_sorted_file_per_record_type(inputs, tmp_path, capsys):
    cap, mbo, defs = inputs
    out = tmp_path / "out"
    rc = cli.main(
        ["import", str(cap), str(mbo), str(defs), str(out), "--json", str(tmp_path / "r.json")]
    )
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "book.parquet", "instruments.parquet", "quotes.parquet", "trades.parquet",
    ]  # fmt: skip
    direct = import_files([cap, mbo, defs])
    for name, rtype, want in (
        ("quotes", ev.RecordType.QUOTE, direct.quotes),
        ("trades", ev.RecordType.TRADE, direct.trades),
        ("book", ev.RecordType.BOOK_DELTA, direct.book),
    ):
        table = pq.read_table(out / f"{name}.parquet")
        assert es.record_type_from_schema(table.schema) == rtype
        got = es.from_arrow(table, rtype, where=name)
        np.testing.assert_array_equal(got, want)
        assert np.all(np.diff(got["ts_recv"]) >= 0)
    book = direct.book
    # both sources' deltas are in one file; each source keeps its own order
    assert set(np.unique(book["source_id"]).tolist()) == {1, 2}
    inst = InstrumentTable.read(out / "instruments.parquet")
    assert sorted(i.symbol for i in inst) == ["ESZ5", "ETHUSDT"]
    figures = json.loads((tmp_path / "r.json").read_text())
    assert figures["events"] == len(direct.quotes) + len(direct.trades) + len(direct.book)
    assert figures["binance:cap.gz"]["gaps"] == 0
    assert figures["latency_ns"]["book"]["excluded"] == 1
    assert "redline import: 3 file(s)" in capsys.readouterr().out


def test_single_parquet_out_only_for_a_single_record_type(inputs, tmp_path, capsys):
    cap, mbo, defs = inputs
    rc = cli.main(["import", str(cap), str(tmp_path / "x.parquet")])
    assert rc == 2
    assert (
        "holds book.parquet, quotes.parquet, trades.parquet; give a directory"
        in capsys.readouterr().err
    )
    rc = cli.main(["import", "--format", "dbn", str(mbo), str(defs), str(tmp_path / "b.parquet")])
    assert rc == 0
    table = pq.read_table(tmp_path / "b.parquet")
    assert es.record_type_from_schema(table.schema) == ev.RecordType.BOOK_DELTA
    assert len(InstrumentTable.read(tmp_path / "b.instruments.parquet")) == 1


def test_missing_file_and_wrong_format_are_reported(tmp_path, capsys):
    assert cli.main(["import", str(tmp_path / "nope.dbn"), str(tmp_path / "o")]) == 2
    assert "nope.dbn: no such file" in capsys.readouterr().err
    f = tmp_path / "a.txt"
    f.write_text("1 {}\n")
    assert cli.main(["import", "--format", "dbn", str(f), str(tmp_path / "o")]) == 2
    assert "a.txt: not a DBN stream" in capsys.readouterr().err


def test_replay_reads_the_imported_files_back_in_order(inputs, tmp_path):
    from redline.feeds.replay.reader import replay

    out = tmp_path / "out"
    imp = import_files(list(inputs))
    imp.write(out)
    for name, want in (("quotes", imp.quotes), ("trades", imp.trades), ("book", imp.book)):
        got = np.concatenate([b.records for b in replay([out / f"{name}.parquet"])])
        np.testing.assert_array_equal(got, want)
    merged = list(replay(sorted(out.glob("[bqt]*.parquet"))))
    ts = np.concatenate([b.records["ts_recv"] for b in merged])
    assert len(ts) == imp.events and np.all(np.diff(ts) >= 0)


@pytest.mark.realdata
@pytest.mark.skipif(dbn_t.REALDATA is None, reason="no ../shared/realdata")
def test_replayed_real_mbo_rebuilds_the_same_book(tmp_path):
    from redline.feeds.books.l3 import L3Book
    from redline.feeds.events import Side
    from redline.feeds.replay.reader import replay

    cme = dbn_t.REALDATA / "cme"
    imp = import_files([cme / "orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.dbn.zst",
                        cme / "orderbooks_definition.dbn.zst"])  # fmt: skip
    imp.write(tmp_path)
    # replay breaks ts_recv ties by (source_id, seq): the snapshot's 13,600 records share
    # one synthetic ts_recv, so their order may change; the resulting book must not.
    replayed = np.concatenate([b.records for b in replay([tmp_path / "book.parquet"])])
    direct, again = L3Book(), L3Book()
    direct.apply(imp.book)
    again.apply(replayed)
    assert again.stats["crossed"] == 0 and again.stats["orders"] == direct.stats["orders"]
    for side in (Side.BID, Side.ASK):
        for a, b in zip(direct.levels(side, 50), again.levels(side, 50), strict=True):
            np.testing.assert_array_equal(a, b)


def test_merge_refuses_one_instrument_id_with_two_definitions():
    from decimal import Decimal

    from redline.feeds.importers.output import Imported
    from redline.feeds.instruments import Instrument

    def with_tick(tick):
        inst = Instrument(
            instrument_id=5,
            symbol="ES",
            tick_size=Decimal(tick),
            price_precision=2,
            lot_size=Decimal(1),
        )
        return Imported(instruments=InstrumentTable([inst]))

    assert len(with_tick("0.25").merge(with_tick("0.25")).instruments) == 1
    with pytest.raises(ValueError, match="instrument 5 defined twice with different terms"):
        with_tick("0.25").merge(with_tick("0.5"))


def test_parquet_files_are_refused_whatever_the_format_says(tmp_path):
    from redline.feeds.importers.detect import parquet_refusal

    ours = Path(__file__).resolve().parents[3] / "replay_data" / "market_trades.parquet"
    for fmt in (None, "dbn", "binance"):
        with pytest.raises(ValueError, match=r"already a redline recording \(TRADE records\); "
                           r"`redline inspect` and `redline publish` read it directly"):  # fmt: skip
            import_files([ours], fmt)
    foreign = tmp_path / "prices.parquet"
    pq.write_table(pa.table({"day": [1], "close": [2.5]}), foreign)
    assert parquet_refusal(foreign) == (
        f"{foreign}: a Parquet file, but not a redline recording (columns day, close); "
        f"import reads Databento DBN and Binance captures"
    )


def test_a_file_given_twice_is_refused(inputs, tmp_path):
    cap, _, _ = inputs
    with pytest.raises(
        ValueError, match=r"cap\.gz: given twice \(as .*cap\.gz\); name each file once"
    ):
        (tmp_path / "sub").mkdir()
        import_files([cap, tmp_path / "sub" / ".." / "cap.gz"])
