from collections import Counter
from pathlib import Path

import databento_dbn as dbn
import numpy as np
import pytest
import zstandard

from redline.feeds.books.l3 import L3Book
from redline.feeds.books.reference import DictL3Book
from redline.feeds.events import UNDEF_PX, BookAction, Flag, Side
from redline.feeds.importers import dbn as di
from redline.feeds.realdata import realdata_dir

REALDATA = realdata_dir()
needs_realdata = pytest.mark.skipif(REALDATA is None, reason="no ../shared/realdata")
TICK = 250_000_000  # 0.25 in DBN's 1e-9 fixed point
S, B, L = dbn.F_SNAPSHOT, dbn.F_BAD_TS_RECV, dbn.F_LAST


def write_dbn(path: Path, schema, recs: list, compress: bool = True) -> Path:
    meta = dbn.Metadata(
        dataset="GLBX.MDP3", schema=schema, start=0, stype_in=dbn.SType.RAW_SYMBOL,
        stype_out=dbn.SType.INSTRUMENT_ID, symbols=["ESZ5"], partial=[], not_found=[], mappings=[],
    )  # fmt: skip
    data = meta.encode() + b"".join(bytes(r) for r in recs)
    path.write_bytes(zstandard.ZstdCompressor().compress(data) if compress else data)
    return path


def definition(iid=5, inc=TICK):
    return dbn.InstrumentDefMsg(
        publisher_id=1, instrument_id=iid, ts_event=1, ts_recv=1, min_price_increment=inc,
        display_factor=1, raw_symbol="ESZ5", unit_of_measure_qty=50 * 10**9, asset="ES",
        security_type="FUT", instrument_class=dbn.InstrumentClass.FUTURE,
        security_update_action=dbn.SecurityUpdateAction.ADD,
    )  # fmt: skip


def mbo(ts, action, side, px_ticks, size, oid, flags=L, seq=0):
    price = di.UNDEF_PRICE if px_ticks is None else px_ticks * TICK
    return dbn.MBOMsg(
        publisher_id=1, instrument_id=5, ts_event=ts - 5, order_id=oid, price=price, size=size,
        action=dbn.Action(action), side=dbn.Side(side), ts_recv=ts, flags=flags, sequence=seq,
    )  # fmt: skip


def mbp1(ts, action, side, px, size, bid, ask, flags=L, seq=0):
    return dbn.MBP1Msg(
        publisher_id=1, instrument_id=5, ts_event=ts - 7, price=px * TICK, size=size,
        action=dbn.Action(action), side=dbn.Side(side), depth=0, ts_recv=ts, flags=flags,
        sequence=seq, levels=dbn.BidAskPair(
            bid_px=bid[0] * TICK if bid else di.UNDEF_PRICE, ask_px=ask[0] * TICK,
            bid_sz=bid[1] if bid else 0, ask_sz=ask[1], bid_ct=1, ask_ct=1),
    )  # fmt: skip


MBO_RECS = [
    mbo(100, "R", "N", None, 0, 0, S | B),
    mbo(100, "A", "B", 20000, 5, 1, S | B),
    mbo(100, "A", "A", 20002, 4, 2, S | B | L),
    mbo(200, "A", "B", 20001, 3, 3, L, seq=7),
    mbo(300, "T", "A", 20001, 2, 0, 0, seq=8),  # aggressor sells 2 into order 3
    mbo(300, "F", "B", 20001, 2, 3, 0, seq=9),  # the resting side
    mbo(300, "C", "B", 20001, 2, 3, L, seq=10),  # ...and the book change
    mbo(400, "M", "A", 20003, 6, 2, L, seq=11),
    mbo(500, "C", "B", 20001, 1, 3, L, seq=12),
]


def test_mbo_becomes_l3_deltas_in_our_units(tmp_path):
    f = write_dbn(tmp_path / "a.mbo.dbn.zst", dbn.Schema.MBO, MBO_RECS)
    d = write_dbn(tmp_path / "def.dbn", dbn.Schema.DEFINITION, [definition()], compress=False)
    imp = di.import_dbn([f, d])
    (inst,) = list(imp.instruments)
    assert (inst.symbol, str(inst.tick_size), str(inst.multiplier)) == ("ESZ5", "0.25", "50")
    assert inst.source == "definition"
    b = imp.book
    A = BookAction
    assert b["action"].tolist() == [
        A.CLEAR, A.ADD, A.ADD, A.ADD, A.TRADE, A.FILL, A.DELETE, A.UPDATE, A.DELETE,
    ]  # fmt: skip
    assert b["px"].tolist() == [0, 20000, 20002, 20001, 20001, 20001, 20001, 20003, 20001]
    assert b["side"].tolist() == [
        0, Side.BID, Side.ASK, Side.BID, Side.ASK, Side.BID, Side.BID, Side.ASK, Side.BID,
    ]  # fmt: skip
    assert b["order_id"].tolist() == [0, 1, 2, 3, 0, 3, 3, 2, 3]
    assert b["seq"].tolist()[3:] == [7, 8, 9, 10, 11, 12]
    assert (b["ts_recv"] - b["ts_event"]).tolist() == [5] * 9
    snap = Flag.SNAPSHOT | Flag.BAD_TS_RECV
    assert b["flags"].tolist()[:4] == [snap, snap, snap | Flag.LAST, Flag.LAST]
    # per event end (LAST): the snapshot's last record is kept out of the figures
    assert imp.stats["latency_ns"]["book"]["excluded"] == 1
    assert imp.stats["latency_ns"]["book"]["count"] == 4
    assert imp.stats["dbn"]["a.mbo.dbn.zst"]["actions"]["mbo"] == {
        "A": 3,
        "C": 2,
        "F": 1,
        "M": 1,
        "R": 1,
        "T": 1,
    }

    book = L3Book()
    top = book.apply(b)
    assert top[6][["bid_px", "bid_sz"]].tolist() == (20001, 1)  # fill + cancel took 2, once
    assert book.best() == (20000, 5, 20003, 6)
    assert book.stats["crossed"] == 0


def test_mbp1_gives_a_quote_per_record_and_trades_for_t(tmp_path):
    recs = [
        mbp1(10, "A", "B", 100, 5, (100, 5), (101, 2), seq=1),
        mbp1(20, "T", "A", 100, 2, (100, 3), (101, 2), flags=0, seq=2),
        mbp1(30, "C", "B", 100, 3, None, (101, 2), seq=3),  # bid side emptied
    ]
    f = write_dbn(tmp_path / "q.dbn.zst", dbn.Schema.MBP_1, recs)
    imp = di.import_dbn([f])
    q = imp.quotes
    assert q[["bid_px", "bid_sz", "ask_px", "ask_sz"]].tolist() == [
        (100, 5, 101, 2),
        (100, 3, 101, 2),
        (UNDEF_PX, 0, 101, 2),
    ]
    assert q["seq"].tolist() == [1, 2, 3] and q["ts_recv"].tolist() == [10, 20, 30]
    (t,) = imp.trades
    assert (t["px"], t["sz"], t["aggressor"], t["ts_event"]) == (100, 2, Side.ASK, 13)
    # no definition: the tick is the largest step dividing every price
    (inst,) = list(imp.instruments)
    assert str(inst.tick_size) == "0.25" and inst.symbol == "5"
    assert inst.source == "gcd of 8 prices"  # 3 prices, 3 asks, 2 bids (the third undefined)


def test_raw_layout_equals_the_packages_decoder(tmp_path):
    f = write_dbn(tmp_path / "a.dbn.zst", dbn.Schema.MBO, MBO_RECS)
    assert_layout_matches_decoder(f)


def assert_layout_matches_decoder(path: Path) -> int:
    _, raws, _, _ = di.records(path)
    dec = dbn.DBNDecoder()
    dec.write(di.read_dbn(path)[1])
    objs = [r for r in dec.decode()[1:] if not isinstance(r, dbn.InstrumentDefMsg)]
    by_type = {}
    for o in objs:
        by_type.setdefault(int(o.rtype), []).append(o)
    checked = 0
    for rtype, raw in raws.items():
        mine = by_type[rtype]
        assert len(mine) == len(raw)
        for name in raw.dtype.names:
            if name in ("length", "depth") and rtype != di.RTYPE_MBP1:
                continue
            attr = {"bid_px": "bid_px_00", "ask_px": "ask_px_00", "bid_sz": "bid_sz_00",
                    "ask_sz": "ask_sz_00", "bid_ct": "bid_ct_00", "ask_ct": "ask_ct_00",
                    "length": None, "rtype": None}.get(name, name)  # fmt: skip
            if attr is None:
                continue
            want = [getattr(o, attr) for o in mine]
            got = raw[name].tolist()
            if name in ("action", "side"):
                got = [g.decode() for g in got]
                want = [str(w) for w in want]
            assert got == [int(w) if not isinstance(w, str) else w for w in want], name
            checked += 1
    return checked


def test_bad_files_are_named(tmp_path):
    off_grid = write_dbn(
        tmp_path / "off.dbn", dbn.Schema.MBO, [mbo(10, "A", "B", 1, 1, 1)], compress=False
    )
    raw = off_grid.read_bytes()
    bad = raw[:-56] + bytes(
        dbn.MBOMsg(publisher_id=1, instrument_id=5, ts_event=1, order_id=1, price=TICK + 1,
                   size=1, action=dbn.Action.ADD, side=dbn.Side.BID, ts_recv=1)
    )  # fmt: skip
    off_grid.write_bytes(bad)
    d = write_dbn(tmp_path / "def.dbn", dbn.Schema.DEFINITION, [definition()])
    with pytest.raises(
        ValueError, match=r"off\.dbn: record 0 price 0\.250000001 is off the tick grid 0\.25"
    ):
        di.import_dbn([off_grid, d])
    trunc = tmp_path / "trunc.dbn"
    trunc.write_bytes(raw[:-10])
    with pytest.raises(
        ValueError,
        match=rf"trunc\.dbn: read 0 complete records, then a record cut short or corrupt at byte "
        rf"{len(raw) - 56} of the DBN stream; nothing imported",
    ):
        di.import_dbn([trunc])
    junk = tmp_path / "junk.dbn"
    junk.write_bytes(b"PAR1 not dbn")
    with pytest.raises(ValueError, match=r"junk\.dbn: not a DBN stream"):
        di.import_dbn([junk])


def many_mbo(n: int) -> list:
    """`n` adds at varied prices and sizes: enough bytes for several zstd blocks."""
    return [mbo(1000 + i, "A", "B", 20000 - i % 97, 1 + i % 13, i + 1, seq=i) for i in range(n)]


def test_a_plain_file_cut_inside_a_record_says_how_many_records_came_before(tmp_path):
    f = write_dbn(tmp_path / "a.dbn", dbn.Schema.MBO, many_mbo(100), compress=False)
    raw = f.read_bytes()
    meta_end = len(raw) - 100 * 56
    f.write_bytes(raw[: meta_end + 41 * 56 + 20])  # 41 whole records, then 20 bytes of one
    with pytest.raises(
        ValueError,
        match=rf"a\.dbn: read 41 complete records, then a record cut short or corrupt at byte "
        rf"{meta_end + 41 * 56:,} of the DBN stream; nothing imported",
    ):
        di.import_dbn([f])


def test_a_zstd_file_cut_short_is_refused_not_imported_in_part(tmp_path):
    f = write_dbn(tmp_path / "a.dbn.zst", dbn.Schema.MBO, many_mbo(8000))
    raw = f.read_bytes()
    cut = len(raw) * 2 // 3
    f.write_bytes(raw[:cut])
    with pytest.raises(ValueError) as err:
        di.import_dbn([f])
    msg = str(err.value)
    read = int(msg.split("read ")[1].split(" complete")[0].replace(",", ""))
    assert 0 < read < 8000  # what decoded before the cut is said, and not imported
    assert msg.endswith(
        f"complete records, then the zstd data ends inside a frame at byte {cut:,} "
        f"(the file is cut short); nothing imported"
    )


def test_a_dbn_file_cut_inside_its_metadata_is_named(tmp_path):
    f = write_dbn(tmp_path / "a.dbn", dbn.Schema.MBO, MBO_RECS, compress=False)
    f.write_bytes(f.read_bytes()[:40])
    with pytest.raises(ValueError, match=r"a\.dbn: the DBN metadata needs \d+ bytes and the "
                       r"stream ends at byte 40 \(the file is cut short\)"):  # fmt: skip
        di.import_dbn([f])


def trade_msg(ts, px, size, side, seq):
    return dbn.TradeMsg(
        publisher_id=1, instrument_id=5, ts_event=ts - 7, price=px * TICK, size=size,
        action=dbn.Action.TRADE, side=dbn.Side(side), depth=0, ts_recv=ts, flags=L, sequence=seq,
    )  # fmt: skip


# one packet (seq 2) with two trades at two prices, then one trade alone (seq 4)
OVERLAP_MBP1 = [
    mbp1(10, "A", "B", 100, 5, (100, 5), (101, 2), seq=1),
    mbp1(20, "T", "A", 100, 2, (100, 3), (101, 2), seq=2),
    mbp1(20, "T", "A", 99, 1, (100, 3), (101, 2), seq=2),
    mbp1(30, "A", "A", 102, 4, (100, 3), (101, 2), seq=3),
    mbp1(40, "T", "B", 101, 2, (100, 3), (102, 4), seq=4),
]
# the trades file covers a longer window: one more trade (seq 5) the MBP-1 file does not have
OVERLAP_TRADES = [
    trade_msg(20, 100, 2, "A", 2),
    trade_msg(20, 99, 1, "A", 2),
    trade_msg(40, 101, 2, "B", 4),
    trade_msg(50, 101, 7, "A", 5),
]


def overlapping_inputs(tmp_path: Path) -> tuple[Path, Path]:
    mbp = write_dbn(tmp_path / "q.mbp-1.dbn.zst", dbn.Schema.MBP_1, OVERLAP_MBP1)
    trades = write_dbn(tmp_path / "t.trades.dbn.zst", dbn.Schema.TRADES, OVERLAP_TRADES)
    return mbp, trades


@pytest.mark.parametrize("trades_first", [False, True])
def test_mbp1_and_trades_files_of_one_window_give_every_trade_once(tmp_path, trades_first):
    mbp, trades = overlapping_inputs(tmp_path)
    imp = di.import_dbn([trades, mbp] if trades_first else [mbp, trades])
    t = imp.trades
    assert list(zip(t["seq"].tolist(), t["px"].tolist(), t["sz"].tolist(), strict=True)) == [
        (2, 100, 2), (2, 99, 1), (4, 101, 2), (5, 101, 7),
    ]  # fmt: skip
    assert len(imp.quotes) == len(OVERLAP_MBP1)  # the quotes are the MBP-1 file's alone
    # the MBP-1 file's copies are the ones dropped, and counted
    assert imp.stats["dbn"][mbp.name]["repeats_dropped"] == {"trades": 3}
    assert imp.stats["dbn"][trades.name]["repeats_dropped"] == {}
    assert imp.stats["repeats_dropped"] == 3


def test_mbp1_trades_alone_are_all_kept(tmp_path):
    mbp, _ = overlapping_inputs(tmp_path)
    imp = di.import_dbn([mbp])
    assert imp.trades["seq"].tolist() == [2, 2, 4] and imp.stats["repeats_dropped"] == 0


def test_tbbo_and_mbp1_quotes_are_not_mixed_in_one_import(tmp_path):
    mbp, _ = overlapping_inputs(tmp_path)
    tbbo = write_dbn(tmp_path / "b.tbbo.dbn.zst", dbn.Schema.TBBO, OVERLAP_MBP1[1:3])
    with pytest.raises(ValueError, match=r"b\.tbbo\.dbn\.zst \(tbbo\) and q\.mbp-1\.dbn\.zst "
                       r"\(mbp-1\): .* import them separately"):  # fmt: skip
        di.import_dbn([mbp, tbbo])


# --- real recordings (skipped without ../shared/realdata) ---


@pytest.mark.realdata
@needs_realdata
def test_real_mbp1_quotes_equal_the_files_top_of_book_record_for_record():
    cme = REALDATA / "cme"
    mbp = cme / "futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.dbn.zst"
    imp = di.import_dbn([mbp, cme / "futures_definition.dbn.zst"])
    dec = dbn.DBNDecoder()
    dec.write(di.read_dbn(mbp)[1])
    recs = dec.decode()[1:]
    assert len(recs) == len(imp.quotes) == 2_288
    tick = TICK  # ESU4's min_price_increment, from the definition
    q = imp.quotes
    for name, attr in (("bid_px", "bid_px_00"), ("ask_px", "ask_px_00")):
        assert q[name].tolist() == [getattr(r, attr) // tick for r in recs]
        assert all(getattr(r, attr) % tick == 0 for r in recs)
    for name, attr in (("bid_sz", "bid_sz_00"), ("ask_sz", "ask_sz_00")):
        assert q[name].tolist() == [getattr(r, attr) for r in recs]
    assert q["seq"].tolist() == [r.sequence for r in recs]
    actions = Counter(str(r.action) for r in recs)
    assert imp.stats["dbn"][mbp.name]["actions"]["mbp-1"] == dict(sorted(actions.items()))
    assert len(imp.trades) == actions["T"] == 120
    # the separate trades file holds the same 120 trades
    tr = di.import_dbn([cme / "futures_trades_2024-07-01T23-58_2024-07-02T00-02.dbn.zst",
                        cme / "futures_definition.dbn.zst"]).trades  # fmt: skip
    for name in ("px", "sz", "ts_event", "ts_recv", "aggressor", "seq"):
        assert tr[name].tolist() == imp.trades[name].tolist()
    # ...so both files in one import write each of them once
    both = di.import_dbn([mbp, cme / "futures_trades_2024-07-01T23-58_2024-07-02T00-02.dbn.zst",
                          cme / "futures_definition.dbn.zst"])  # fmt: skip
    np.testing.assert_array_equal(both.trades, tr)
    assert both.stats["dbn"][mbp.name]["repeats_dropped"] == {"trades": 120}
    assert imp.stats["latency_ns"]["quotes"]["excluded"] == sum(
        1 for r in recs if r.flags & (S | B)
    )


@pytest.mark.realdata
@needs_realdata
def test_real_mbo_book_is_uncrossed_and_on_the_tick_grid():
    cme = REALDATA / "cme"
    imp = di.import_dbn([cme / "orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.dbn.zst",
                         cme / "orderbooks_definition.dbn.zst"])  # fmt: skip
    b = imp.book
    snap = (b["flags"] & Flag.SNAPSHOT) != 0
    assert (snap.sum(), (~snap).sum()) == (13_601, 195)
    live_ends = ((b["flags"] & Flag.LAST) != 0) & ~snap
    assert imp.stats["latency_ns"]["book"] == {
        **imp.stats["latency_ns"]["book"],
        "excluded": 1,
        "count": int(live_ends.sum()),
    }
    (inst,) = list(imp.instruments)
    assert (inst.symbol, str(inst.tick_size)) == ("ESM4", "0.25")
    book, ref = L3Book(instrument_id=inst.instrument_id), DictL3Book()
    top = book.apply(b)
    last = (b["flags"] & Flag.LAST) != 0
    assert book.stats["crossed"] == 0 and not top["crossed"][last].any()
    for i, r in enumerate(b):
        ref.apply(int(r["side"]), int(r["action"]), int(r["px"]), int(r["sz"]), int(r["order_id"]))
        if last[i]:
            assert tuple(top[i][["bid_px", "bid_sz", "ask_px", "ask_sz"]].tolist()) == ref.best()
    assert book.stats["missing_cancels"] == 0 and book.stats["orders"] == len(ref.orders)
    # levels are whole ticks of 0.25 and strictly ordered; the spread is >= 1 tick
    bid_px, _, bid_ct = book.levels(Side.BID, 10)
    ask_px, _, _ = book.levels(Side.ASK, 10)
    assert np.all(np.diff(bid_px) < 0) and np.all(np.diff(ask_px) > 0) and bid_ct.min() >= 1
    assert ask_px[0] - bid_px[0] >= 1
    assert float(inst.to_price(int(bid_px[0]))) == pytest.approx(5214.0)


@pytest.mark.realdata
@needs_realdata
@pytest.mark.parametrize("schema", ["mbo", "mbp-1", "tbbo", "trades"])
def test_real_fixtures_layout_equals_the_packages_decoder(schema):
    path = REALDATA / "dbn_fixtures" / f"test_data.{schema}.v3.dbn.zst"
    assert assert_layout_matches_decoder(path) >= 10


def test_unsupported_schemas_are_counted_and_an_empty_import_refused(tmp_path):
    bbo = dbn.BBOMsg(
        rtype=dbn.RType.BBO_1S, publisher_id=1, instrument_id=5, ts_event=1, price=TICK,
        size=1, side=dbn.Side.BID, flags=0, ts_recv=2, sequence=1,
        levels=dbn.BidAskPair(bid_px=TICK, ask_px=2 * TICK, bid_sz=1, ask_sz=1, bid_ct=1, ask_ct=1),
    )  # fmt: skip
    only_bbo = write_dbn(tmp_path / "bbo.dbn", dbn.Schema.BBO_1S, [bbo])
    with pytest.raises(
        ValueError, match=r"nothing to import from schema\(s\) bbo-1s; supported: mbp-1"
    ):
        di.import_dbn([only_bbo])
    mixed = di.import_dbn([only_bbo, write_dbn(tmp_path / "m.dbn", dbn.Schema.MBO, MBO_RECS)])
    assert mixed.stats["dbn"]["bbo.dbn"]["skipped_records"] == 1
    assert len(mixed.book) == len(MBO_RECS)
