"""`redline book-check`: an import's books rebuilt and checked against its own quotes."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from redline.feeds import event_schema as es
from redline.feeds import events as ev
from redline.feeds.events import BookAction, Flag, Side
from redline.feeds.realdata import realdata_dir
from redline.pipeline.cli.main import main


def write(path, recs):
    pq.write_table(pa.Table.from_batches([es.to_arrow(recs)]), path)


def an_import(tmp_path, wrong_quote=False, gap=False):
    """Two instruments' L2 deltas (seq = update id) and the quotes the venue sent for them."""
    rows = [  # instrument, seq, side, action, px, sz
        (1, 1, Side.BID, BookAction.ADD, 100, 5), (2, 1, Side.BID, BookAction.ADD, 50, 1),
        (1, 2, Side.ASK, BookAction.ADD, 101, 3), (2, 2, Side.ASK, BookAction.ADD, 52, 2),
        (1, 3, Side.BID, BookAction.UPDATE, 100, 7), (2, 3, Side.BID, BookAction.ADD, 51, 4),
    ]  # fmt: skip
    d = ev.empty(ev.RecordType.BOOK_DELTA, len(rows))
    for i, (iid, seq, side, action, px, sz) in enumerate(rows):
        d[i]["instrument_id"], d[i]["seq"], d[i]["side"] = iid, seq, side
        d[i]["action"], d[i]["px"], d[i]["sz"], d[i]["flags"] = action, px, sz, Flag.LAST
        d[i]["ts_recv"] = d[i]["ts_event"] = 10 * i
    if gap:
        d[4]["flags"] |= Flag.GAP_BEFORE
    tops = [
        (1, 2, 100, 5, 101, 3),
        (2, 2, 50, 1, 52, 2),
        (1, 3, 100, 7, 101, 3),
        (2, 3, 51, 4, 52, 2),
    ]
    q = ev.empty(ev.RecordType.QUOTE, len(tops))
    for i, (iid, seq, bpx, bsz, apx, asz) in enumerate(tops):
        q[i]["instrument_id"], q[i]["seq"] = iid, seq
        q[i]["bid_px"], q[i]["bid_sz"], q[i]["ask_px"], q[i]["ask_sz"] = bpx, bsz, apx, asz
        q[i]["ts_recv"] = q[i]["ts_event"] = 10 * i + 25
    if wrong_quote:
        q[2]["bid_sz"] = 6  # the venue says 6 where the deltas made 7
    write(tmp_path / "book.parquet", d)
    write(tmp_path / "quotes.parquet", q)
    return tmp_path


def test_a_consistent_import_matches_everywhere_and_exits_0(tmp_path, capsys):
    out = tmp_path / "check.json"
    assert main(["book-check", str(an_import(tmp_path)), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    t = report["total"]
    assert (t["events"], t["events_checked"]) == (6, 4)  # seq 1 came before any quote
    assert (t["price_match"], t["size_match"], t["crossed"], t["gaps"]) == (1.0, 1.0, 0, 0)
    assert set(report["instruments"]) == {"1", "2"}
    assert report["instruments"]["1"]["events_without_prior_quote"] == 1
    assert "price match 100.00%, size match 100.00%" in capsys.readouterr().out


def test_a_mismatch_and_a_gap_are_counted_and_exit_1(tmp_path):
    out = tmp_path / "check.json"
    d = an_import(tmp_path, wrong_quote=True, gap=True)
    assert main(["book-check", str(d), "--json", str(out)]) == 1
    one = json.loads(out.read_text())["instruments"]["1"]
    assert one["price_match"] == 1.0 and one["size_match"] == 0.5  # 1 of its 2 checked
    assert one["gaps"] == 1


def test_no_quotes_is_one_line_naming_what_is_missing(tmp_path, capsys):
    d = an_import(tmp_path)
    (d / "quotes.parquet").unlink()
    assert main(["book-check", str(d)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no quotes to check the book against" in err[0]


@pytest.mark.skipif(realdata_dir() is None, reason="no ../shared/realdata")
def test_the_real_binance_capture_rebuilds_to_the_venues_own_top_of_book(tmp_path):
    cap = realdata_dir() / "binance" / "ethusdt_20240808.gz"
    assert main(["import", str(cap), str(tmp_path / "imp")]) == 0
    out = tmp_path / "check.json"
    assert main(["book-check", str(tmp_path / "imp"), "--json", str(out)]) == 0
    t = json.loads(out.read_text())["total"]
    assert t["events_checked"] > 6000 and (t["price_match"], t["size_match"]) == (1.0, 1.0)
    assert t["crossed"] == t["gaps"] == 0
    assert np.isfinite(t["price_match"])
