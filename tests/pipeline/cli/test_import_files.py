"""`redline import` driven through the CLI: inputs cut short or corrupt, OUT that holds an
earlier import, inputs that overlap, and files that need no import."""

import gzip
import importlib.util
import json
from pathlib import Path

import databento_dbn as dbn
import pyarrow.parquet as pq
import pytest

from redline.feeds import event_schema as es
from redline.feeds import events as ev
from redline.feeds.importers import output
from redline.pipeline.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
IMPORTER_TESTS = ROOT / "tests" / "feeds" / "importers"


def _load(name):
    """The importers' tests build real-format DBN and Binance inputs; reuse their builders."""
    spec = importlib.util.spec_from_file_location(f"_cli_{name}", IMPORTER_TESTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


dbn_t = _load("test_dbn")
binance_t = _load("test_binance")


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def run_import(*args) -> int:
    return main(["import", *map(str, args)])


def test_a_dbn_file_cut_short_is_one_line_with_what_was_read_and_nothing_written(tmp_path, capsys):
    f = dbn_t.write_dbn(tmp_path / "a.mbo.dbn.zst", dbn.Schema.MBO, dbn_t.many_mbo(8000))
    raw = f.read_bytes()
    f.write_bytes(raw[: len(raw) // 2])
    out = tmp_path / "out"
    assert run_import(f, out) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"redline import: error: {f}: read ")
    assert (
        f"complete records, then the zstd data ends inside a frame at byte {len(raw) // 2:,}"
        in line
    )
    assert line.endswith("; nothing imported")
    assert not out.exists()


def test_a_binance_gz_cut_short_is_one_line_not_an_eoferror(tmp_path, capsys):
    packed = gzip.compress(binance_t.random_capture(4, n_changes=3000), compresslevel=1)
    f = tmp_path / "cap.gz"
    f.write_bytes(packed[:-50])
    out = tmp_path / "out"
    assert run_import(f, out) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"redline import: error: {f}: read ")
    assert (
        f"complete lines, then the gzip data ends inside a member at byte {len(packed) - 50:,}"
        in line
    )
    assert not out.exists()


def test_a_binance_line_that_is_not_json_is_named_by_its_line(tmp_path, capsys):
    f = tmp_path / "cap.txt"
    f.write_text("\n".join([*binance_t.SMALL[:3], binance_t.SMALL[3][:-30]]))  # cut mid-line
    assert run_import(f, tmp_path / "out") == 2
    assert one_error_line(capsys).startswith(
        f"redline import: error: {f}: read 3 lines, then line 4: not a JSON object"
    )


def book_and_trades(tmp_path: Path) -> tuple[Path, Path]:
    mbo = dbn_t.write_dbn(tmp_path / "book.dbn.zst", dbn.Schema.MBO, dbn_t.MBO_RECS)
    _, trades = dbn_t.overlapping_inputs(tmp_path)
    return mbo, trades


def test_a_folder_holding_an_earlier_import_needs_overwrite_which_replaces_it(tmp_path, capsys):
    mbo, trades = book_and_trades(tmp_path)
    out = tmp_path / "out"
    assert run_import(mbo, out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["book.parquet", "instruments.parquet"]
    capsys.readouterr()

    assert run_import(trades, out) == 2
    assert one_error_line(capsys) == (
        f"redline import: error: {out}: folder is not empty (book.parquet, instruments.parquet); "
        f"pass --overwrite to replace the earlier import there, or give a new folder"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched

    assert run_import(trades, out, "--overwrite") == 0
    # the earlier import's book is gone, not left beside the new trades
    assert sorted(p.name for p in out.iterdir()) == ["instruments.parquet", "trades.parquet"]
    capsys.readouterr()
    assert (
        main(["inspect", *map(str, sorted(out.iterdir())), "--json", str(tmp_path / "i.json")]) == 0
    )
    inspected = json.loads((tmp_path / "i.json").read_text())
    assert inspected["events"]["by_record_type"] == {"TRADE": len(dbn_t.OVERLAP_TRADES)}


def test_overwrite_keeps_files_no_import_wrote(tmp_path, capsys):
    mbo, _ = book_and_trades(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert run_import(mbo, out, "--overwrite") == 2
    assert "holds notes.txt, which no import writes" in one_error_line(capsys)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_an_existing_single_file_out_needs_overwrite(tmp_path, capsys):
    _, trades = book_and_trades(tmp_path)
    out = tmp_path / "t.parquet"
    assert run_import(trades, out) == 0
    capsys.readouterr()
    assert run_import(trades, out) == 2
    assert one_error_line(capsys) == (
        f"redline import: error: {out}: already exists; pass --overwrite to replace it, "
        f"or give a new OUT"
    )
    assert run_import(trades, out, "--overwrite") == 0


def test_a_failure_while_writing_leaves_the_earlier_import_whole(tmp_path, monkeypatch, capsys):
    mbo, trades = book_and_trades(tmp_path)
    out = tmp_path / "out"
    assert run_import(mbo, out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def disk_full(path, records, sequence=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output, "write_records", disk_full)
    with pytest.raises(OSError, match="No space left"):
        run_import(trades, out, "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temporaries either


def test_mbp1_with_the_trades_file_of_its_window_writes_every_trade_once(tmp_path, capsys):
    mbp, trades = dbn_t.overlapping_inputs(tmp_path)
    out = tmp_path / "out"
    assert run_import(mbp, trades, out, "--json", tmp_path / "r.json") == 0
    t = es.from_arrow(pq.read_table(out / "trades.parquet"), ev.RecordType.TRADE)
    keys = list(zip(t["seq"].tolist(), t["px"].tolist(), t["sz"].tolist(), strict=True))
    assert keys == [(2, 100, 2), (2, 99, 1), (4, 101, 2), (5, 101, 7)]
    assert len(set(keys)) == len(keys)
    assert f"  {mbp.name}: dropped 3 trades another input already holds" in capsys.readouterr().out
    figures = json.loads((tmp_path / "r.json").read_text())
    assert figures["repeats_dropped"] == 3 and figures["trades"] == 4


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("market_quotes.parquet", "already a redline recording (QUOTE records); `redline inspect`"),
        ("market_instruments.parquet", "already a redline instrument table"),
    ],
)
def test_a_redline_parquet_file_is_named_as_ours_not_a_format_to_pass(tmp_path, capsys, name, what):
    f = ROOT / "replay_data" / name
    assert run_import(f, tmp_path / "out") == 2
    line = one_error_line(capsys)
    assert f"{f}: {what}" in line and "--format" not in line
    assert not (tmp_path / "out").exists()


def _coin_m_capture(path: Path) -> Path:
    ticker = {"e": "bookTicker", "u": 1, "s": "BTCUSD_PERP", "b": "61800.0", "B": "3",
              "a": "61801.0", "A": "4", "T": 5, "E": 6}  # fmt: skip
    path.write_text(f"1000 {json.dumps(ticker)}\n")
    return path


def test_an_exchange_info_beside_the_capture_sets_tick_and_face_value(tmp_path, capsys):
    cap = _coin_m_capture(tmp_path / "cap.txt")
    info = tmp_path / "exchangeInfo.json"
    filters = [{"filterType": "PRICE_FILTER", "tickSize": "0.1"},
               {"filterType": "LOT_SIZE", "stepSize": "1"}]  # fmt: skip
    info.write_text(json.dumps({"timezone": "UTC", "symbols": [
        {"symbol": "BTCUSD_PERP", "contractSize": 100, "filters": filters}]}))  # fmt: skip
    assert run_import(cap, info, tmp_path / "out") == 0
    text = capsys.readouterr().out
    assert "BTCUSD_PERP: tick 0.1, lot 1, multiplier 100 (exchangeInfo.json)" in text
    table = pq.read_table(tmp_path / "out" / "instruments.parquet").to_pylist()
    assert [(r["tick_size"], r["multiplier"], r["source"]) for r in table] == [
        ("0.1", "100", "exchangeInfo.json")
    ]
    meta = pq.read_schema(tmp_path / "out" / "quotes.parquet").metadata
    assert meta[b"redline.sequence"] == b'{"3": "per event"}'
    # without it: the capture's own prices (61800.0, 61801.0) say 1.0; Binance's face value
    assert run_import(cap, tmp_path / "out2") == 0
    assert (
        "tick 1, lot 1, multiplier 100 (gcd of 2 prices; face value USD 100"
        in capsys.readouterr().out
    )


def test_an_exchange_info_without_a_capture_is_one_line(tmp_path, capsys):
    info = tmp_path / "exchangeInfo.json"
    info.write_text(json.dumps({"timezone": "UTC", "symbols": []}))
    assert run_import(info, tmp_path / "out") == 2
    assert "no Binance capture is in this import" in one_error_line(capsys)


def test_a_file_of_no_supported_format_names_the_formats(tmp_path, capsys):
    f = tmp_path / "prices.csv"
    f.write_text("date,close\n2024-01-01,1.5\n")
    assert run_import(f, tmp_path / "out") == 2
    line = one_error_line(capsys)
    assert "prices.csv: cannot tell the format" in line and "Tardis.dev CSV" in line
