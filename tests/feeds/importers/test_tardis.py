"""Fixtures written from the columns Tardis.dev documents (docs.tardis.dev, "Downloadable
CSV files"); no Tardis data is used."""

import gzip

import pytest

from redline.feeds.events import UNDEF_PX, BookAction, Flag, Side
from redline.feeds.importers import tardis as td
from redline.feeds.importers.detect import detect_format, import_files

HEAD = "exchange,symbol,timestamp,local_timestamp"
A, U, D, C = BookAction.ADD, BookAction.UPDATE, BookAction.DELETE, BookAction.CLEAR

INCREMENTAL = f"""{HEAD},is_snapshot,side,price,amount
binance-futures,BTCUSDT,1000,1010,true,bid,61800.20,1.5
binance-futures,BTCUSDT,1000,1010,true,ask,61800.30,2
binance-futures,BTCUSDT,2000,2050,false,bid,61800.20,0
binance-futures,BTCUSDT,2000,2050,false,bid,61799.90,0.5
binance-futures,BTCUSDT,3000,3070,false,ask,61800.30,1
"""
QUOTES = f"""{HEAD},ask_amount,ask_price,bid_price,bid_amount
binance-futures,BTCUSDT,1500,1520,2,61800.30,61800.20,1.5
binance-futures,BTCUSDT,2500,2520,,,61799.90,0.5
"""
TRADES = f"""{HEAD},id,side,price,amount
binance-futures,BTCUSDT,1700,1730,4308068523,sell,61800.20,0.5
binance-futures,BTCUSDT,1800,1830,abc-1,unknown,61800.30,1
"""
SNAPSHOT_2 = f"""{HEAD},asks[0].price,asks[0].amount,bids[0].price,bids[0].amount,asks[1].price,asks[1].amount,bids[1].price,bids[1].amount
binance-futures,BTCUSDT,4000,4040,61800.30,1,61800.20,1.5,61800.40,2,,
"""


def files(tmp_path, **texts):
    out = []
    for name, text in texts.items():
        p = tmp_path / f"{name}.csv.gz"
        p.write_bytes(gzip.compress(text.encode()))
        out.append(p)
    return out


def test_the_four_datasets_import_on_one_grid(tmp_path):
    paths = files(tmp_path, inc=INCREMENTAL, quotes=QUOTES, trades=TRADES, snap=SNAPSHOT_2)
    assert {detect_format(p) for p in paths} == {"tardis"}
    imp = import_files(paths)
    (inst,) = imp.instruments
    # printed with 2 decimals, every price is a multiple of 0.10; sizes of 0.5
    assert (str(inst.tick_size), str(inst.lot_size), inst.price_precision) == ("0.1", "0.5", 2)
    assert (
        inst.source == "gcd of 13 prices"
    )  # 5 book + 3 quote + 2 trade + 3 snapshot, empties left out
    b = imp.book
    rows = [(int(r["ts_recv"]), int(r["action"]), int(r["side"]), int(r["px"]), int(r["sz"]), int(r["flags"]))
            for r in b]  # fmt: skip
    S, L = Flag.SNAPSHOT, Flag.LAST
    assert rows == [
        (1_010_000, C, 0, 0, 0, S),
        (1_010_000, A, Side.BID, 618002, 3, S),
        (1_010_000, A, Side.ASK, 618003, 4, S | L),
        (2_050_000, D, Side.BID, 618002, 0, 0),
        (2_050_000, U, Side.BID, 617999, 1, L),
        (3_070_000, U, Side.ASK, 618003, 2, L),
        (4_040_000, C, 0, 0, 0, S),  # a top-2 snapshot row: its one empty level left out
        (4_040_000, A, Side.ASK, 618003, 2, S),  # asks, then bids
        (4_040_000, A, Side.ASK, 618004, 4, S),
        (4_040_000, A, Side.BID, 618002, 3, S | L),
    ]
    assert b["ts_event"][:3].tolist() == [1_000_000] * 3  # µs -> ns
    q = imp.quotes
    assert q[["bid_px", "bid_sz", "ask_px", "ask_sz"]].tolist() == [
        (618002, 3, 618003, 4), (617999, 1, UNDEF_PX, 0)]  # fmt: skip
    t = imp.trades
    assert t[["px", "sz", "aggressor", "trade_id"]].tolist() == [
        (618002, 1, Side.ASK, 4308068523), (618003, 2, Side.NONE, 0)]  # fmt: skip
    assert imp.stats["tardis"]["trades.csv.gz"]["trade_ids_not_numeric"] == 1
    assert set(imp.sequence.values()) == {"none"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{HEAD},is_snapshot,side,price\nx,y,1,2,true,bid,1\n",
         "line 1: a Tardis incremental_book_L2 header without column 'amount'; supported: Tardis"),
        ("exchange,symbol,timestamp\n", "line 1: no column 'local_timestamp'"),
        (f"{HEAD},funding_rate\nx,y,1,2,0.1\n", "are none of the datasets supported"),
        (f"{HEAD},id,side,price,amount\nx,y,1,2,7,buy,1e-05,1\n", "line 2: price '1e-05' is not a plain decimal"),
    ],
)  # fmt: skip
def test_unsupported_or_incomplete_files_name_file_line_and_column(tmp_path, text, message):
    p = tmp_path / "f.csv"
    p.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        td.import_tardis([p])
    assert str(p) in str(err.value)
