import gzip
import json

import numpy as np
import pytest

from redline.feeds.books.check import match_top_to_quotes
from redline.feeds.books.l2 import L2Book
from redline.feeds.events import BookAction, Flag, Side
from redline.feeds.importers import binance as bi
from redline.feeds.importers import binance_lines as bl
from redline.feeds.importers import compressed
from redline.feeds.importers import line_breaks as lb
from redline.feeds.realdata import realdata_dir

REALDATA = realdata_dir()


def line(ts: int, obj: dict, compact: bool = True) -> str:
    sep = (",", ":") if compact else (", ", " : ")
    return f"{ts} {json.dumps(obj, separators=sep)}"


def depth(U, u, pu, bids, asks, E=1_700_000_000_000, sym="ETHUSDT"):
    data = {"e": "depthUpdate", "E": E, "T": E - 1, "s": sym, "U": U, "u": u, "pu": pu}
    data |= {"b": bids, "a": asks}
    return {"stream": f"{sym.lower()}@depth@0ms", "data": data}


def ticker(u, b, B, a, A, E=1_700_000_000_000, sym="ETHUSDT"):
    data = {"e": "bookTicker", "u": u, "s": sym, "b": b, "B": B, "a": a, "A": A}
    return {"stream": f"{sym.lower()}@bookTicker", "data": data | {"T": E, "E": E + 1}}


def trade(t, p, q, m, E=1_700_000_000_000, sym="ETHUSDT"):
    data = {"e": "trade", "E": E, "T": E - 2, "s": sym, "t": t, "p": p, "q": q, "m": m}
    return {"stream": f"{sym.lower()}@trade", "data": data | {"X": "MARKET"}}


def snapshot(last, bids, asks, E=1_700_000_000_000):
    return {"lastUpdateId": last, "E": E, "T": E, "bids": bids, "asks": asks}


SMALL = [
    line(1000, depth(1, 5, 0, [["99.00", "1.000"]], [])),  # stale: u < lastUpdateId
    line(1100, depth(6, 12, 5, [["99.50", "2.500"]], [])),  # held, applied after snapshot
    line(1200, snapshot(10, [["100.00", "1.000"], ["99.50", "2.000"]], [["100.50", "1.5"]])),
    line(
        1300, depth(13, 15, 12, [["100.00", "0.000"]], [["100.25", "0.500"]], E=1_700_000_000_050)
    ),
    line(1400, ticker(15, "99.50", "2.500", "100.25", "0.500", E=1_700_000_000_051)),
    line(1500, trade(77, "100.25", "0.100", True, E=1_700_000_000_060)),
    line(1600, trade(78, "100.25", "0.2", False, E=1_700_000_000_061)),
    line(1700, depth(20, 22, 18, [], [["100.75", "3.000"]])),  # gap: pu 18 != 15
]


def test_small_capture_columns_and_sync_rules():
    imp = bi.import_bytes("\n".join(SMALL).encode() + b"\n")
    (inst,) = list(imp.instruments)
    # every price a multiple of 0.25 and every size of 0.1, whatever the decimals printed
    assert (inst.symbol, str(inst.tick_size), str(inst.lot_size)) == ("ETHUSDT", "0.25", "0.1")
    assert (inst.price_precision, inst.source) == (2, "gcd of 12 prices")
    assert inst.instrument_id == bi.instrument_id("ETHUSDT")

    q = imp.quotes
    assert len(q) == 1
    # 99.50 / 0.25, 2.500 / 0.1, 100.25 / 0.25, 0.500 / 0.1
    assert (q["bid_px"][0], q["bid_sz"][0], q["ask_px"][0], q["ask_sz"][0]) == (398, 25, 401, 5)
    assert (q["seq"][0], q["ts_recv"][0], q["ts_event"][0]) == (15, 1400, 1_700_000_000_051_000_000)

    t = imp.trades
    assert t["px"].tolist() == [401, 401] and t["sz"].tolist() == [1, 2]
    assert t["trade_id"].tolist() == [77, 78] and t["seq"].tolist() == [77, 78]
    # one source per stream: each keeps its own sequence space
    assert (q["source_id"][0], t["source_id"][0]) == (bi.SOURCE_TICKER, bi.SOURCE_TRADE)
    # m=true: buyer is the maker, so the seller was the aggressor
    assert t["aggressor"].tolist() == [Side.ASK, Side.BID]

    b = imp.book
    rows = [(int(r["action"]), int(r["side"]), int(r["px"]), int(r["sz"])) for r in b]
    assert rows == [
        (BookAction.CLEAR, 0, 0, 0),
        (BookAction.ADD, Side.BID, 400, 10),
        (BookAction.ADD, Side.BID, 398, 20),
        (BookAction.ADD, Side.ASK, 402, 15),
        (BookAction.UPDATE, Side.BID, 398, 25),  # the held event, after the snapshot
        (BookAction.DELETE, Side.BID, 400, 0),  # qty 0 deletes
        (BookAction.UPDATE, Side.ASK, 401, 5),
        (BookAction.UPDATE, Side.ASK, 403, 30),
    ]
    snap = (b["flags"] & Flag.SNAPSHOT) != 0
    assert snap.tolist() == [True] * 4 + [False] * 4
    assert b["ts_recv"].tolist() == [1200] * 5 + [1300, 1300, 1700]
    assert b["flags"][4] & Flag.BAD_TS_RECV  # applied later than it arrived
    assert b["flags"][7] & Flag.GAP_BEFORE
    assert ((b["flags"] & Flag.LAST) != 0).tolist() == [0, 0, 0, 1, 1, 0, 1, 1]
    assert b["seq"].tolist() == [10] * 4 + [12, 15, 15, 22]
    assert set(b["source_id"].tolist()) == {bi.SOURCE_DEPTH}
    s = imp.stats["binance"]
    assert (s["snapshots"], s["dropped_stale"], s["replayed"], s["gaps"]) == (1, 1, 1, 1)
    assert s["unsynced"] == 1  # the event after the gap waits for a snapshot that never came

    book = L2Book()
    top = book.apply(b)
    assert top["valid"].tolist() == [1] * 7 + [0]
    assert book.best()[:2] == (398, 25)


def test_key_order_spacing_gzip_and_blank_lines_do_not_matter(tmp_path):
    def shuffled(obj):
        if isinstance(obj, dict):
            return {k: shuffled(obj[k]) for k in reversed(list(obj))}
        return obj

    lines = []
    for s in SMALL:
        ts, js = s.split(" ", 1)
        lines.append(line(int(ts), shuffled(json.loads(js)), compact=False))
    path = tmp_path / "cap.gz"
    path.write_bytes(gzip.compress(("\n\n".join(lines) + "\r\n").encode()))
    a = bi.import_bytes("\n".join(SMALL).encode())
    b = bi.import_binance(path)
    for name in ("quotes", "trades"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))

    # Reversed keys put an event's asks before its bids: same deltas per event.
    def per_event(book):
        order = np.lexsort((book["px"], book["side"], book["action"], book["seq"], book["ts_recv"]))
        return book[order][["ts_recv", "seq", "action", "side", "px", "sz"]]

    np.testing.assert_array_equal(per_event(a.book), per_event(b.book))
    assert len(a.book) == len(b.book) == 8


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"stream":"x"}', "line 2: no '<receive ns> ' prefix"),
        (
            '5 {"e":"bookTicker","u":1,"s":"X","b":"1.0","B":"1","a":"2.0","T":1,"E":1}',
            "line 2: a bookTicker message without key 'A': .* \\(supported: Binance USD-M/COIN-M "
            "futures and spot",
        ),
        (
            '5 {"e":"depthUpdate","s":"X","E":1,"T":1,"U":1,"u":2,"pu":0,"b":[["1.0"]],"a":[]}',
            "line 2: malformed price level",
        ),
        (
            '5 {"e":"trade","s":"X","E":1,"T":1,"t":1,"p":"1.2.3","q":"1","m":true}',
            "line 2: malformed value",
        ),
    ],
)
def test_malformed_lines_are_named(bad, message):
    data = (SMALL[4] + "\n" + bad + "\n").encode()
    with pytest.raises(ValueError, match=message):
        bi.import_bytes(data, where="cap.txt")


def test_snapshot_needs_a_single_symbol_capture():
    lines = [
        SMALL[2],
        line(1, ticker(1, "1.0", "1", "2.0", "1")),
        line(2, ticker(2, "1.0", "1", "2.0", "1", sym="BTCUSDT")),
    ]
    with pytest.raises(ValueError, match=r"snapshot .* 2 symbols \['BTCUSDT', 'ETHUSDT'\]"):
        bi.import_bytes("\n".join(lines).encode())


def random_capture(seed: int, n_changes: int = 3000, drop_event: int | None = None) -> bytes:
    """A book that changes one level at a time: every change gets an update
    id and, when it moves the best level, a bookTicker; changes are batched
    into depth events like the real stream, and the ticker is written first."""
    rng = np.random.default_rng(seed)
    bids = {10_000 - i: int(rng.integers(1, 50)) for i in range(1, 30)}
    asks = {10_000 + i: int(rng.integers(1, 50)) for i in range(0, 30)}
    fmt = lambda px: f"{px / 100:.2f}"  # noqa: E731
    qty = lambda sz: f"{sz / 1000:.3f}"  # noqa: E731
    b0, a0 = max(bids), min(asks)
    out = [
        # the event that ends at the snapshot's id arrives first and is held
        line(9, depth(90, 100, 89, [[fmt(b0), qty(bids[b0])]], [[fmt(a0), qty(asks[a0])]])),
        line(10, snapshot(100, [[fmt(p), qty(s)] for p, s in bids.items()],
                          [[fmt(p), qty(s)] for p, s in asks.items()])),
    ]  # fmt: skip
    uid, ts, prev_u, batch, first_u = 100, 20, 100, ([], []), 101

    def best():
        b, a = max(bids), min(asks)
        return (b, bids[b], a, asks[a])

    last_best = best()
    events = 0
    for _ in range(n_changes):
        uid += 1
        ask = rng.random() < 0.5
        side = asks if ask else bids
        ref = min(asks) if ask else max(bids)
        px = ref + (1 if ask else -1) * int(rng.integers(-2, 6))
        if (ask and px <= max(bids)) or (not ask and px >= min(asks)):
            px = ref  # keep the book uncrossed
        sz = (
            0 if (rng.random() < 0.3 and px in side and len(side) > 3) else int(rng.integers(1, 50))
        )
        if sz:
            side[px] = sz
        else:
            side.pop(px, None)
        (batch[1] if ask else batch[0]).append([fmt(px), qty(sz)])
        if best() != last_best:
            last_best = best()
            b, bs, a, as_ = last_best
            ts += 1
            out.append(line(ts, ticker(uid, fmt(b), qty(bs), fmt(a), qty(as_))))
        if rng.random() < 0.2:
            ts += 1
            if events != drop_event:
                out.append(line(ts, depth(first_u, uid, prev_u, batch[0], batch[1])))
            events += 1
            prev_u, first_u, batch = uid, uid + 1, ([], [])
    return "\n".join(out).encode()


@pytest.mark.parametrize("seed", [4, 5])
def test_rebuilt_book_matches_every_ticker_by_update_id(seed):
    imp = bi.import_bytes(random_capture(seed))
    book = L2Book()
    top = book.apply(imp.book)
    m = match_top_to_quotes(imp.book, top, imp.quotes)
    assert m["events_checked"] > 300
    assert (m["price_match"], m["size_match"], m["crossed"]) == (1.0, 1.0, 0)
    assert imp.stats["binance"]["gaps"] == 0


def test_a_dropped_depth_event_is_a_gap_that_invalidates_the_book():
    imp = bi.import_bytes(random_capture(4, drop_event=40))
    assert imp.stats["binance"]["gaps"] == 1
    (gap,) = np.flatnonzero(imp.book["flags"] & Flag.GAP_BEFORE)
    book = L2Book()
    top = book.apply(imp.book)
    assert not top["valid"][gap:].any() and top["valid"][:gap].all()
    assert not book.valid and book.stats["gaps"] == 1


def test_a_book_that_ignores_zero_quantity_deletes_falls_far_short():
    imp = bi.import_bytes(random_capture(5))
    keep = imp.book["action"] != BookAction.DELETE
    sloppy = imp.book[keep]
    m = match_top_to_quotes(sloppy, L2Book().apply(sloppy), imp.quotes)
    assert m["both_match"] < 0.5


@pytest.mark.realdata
@pytest.mark.skipif(REALDATA is None, reason="no ../shared/realdata")
def test_real_ethusdt_book_matches_book_ticker_exactly():
    imp = bi.import_binance(REALDATA / "binance" / "ethusdt_20240808.gz")
    s = imp.stats["binance"]
    assert (len(imp.quotes), len(imp.trades)) == (53_992, 14_076)
    assert s["snapshots"] == 1 and s["gaps"] == 0 and s["unsynced"] == 0
    assert s["applied"] + s["dropped_stale"] == 6_586  # every depth line, once
    book = L2Book()
    top = book.apply(imp.book)
    m = match_top_to_quotes(imp.book, top, imp.quotes)
    assert m["events_checked"] == s["applied"]
    assert (m["price_match"], m["size_match"], m["crossed"], m["invalid"]) == (1.0, 1.0, 0, 0)
    assert book.stats["crossed"] == 0
    assert np.all(np.diff(imp.book["ts_recv"]) >= 0)


def test_two_thread_scan_of_a_split_capture_gives_the_same_import(monkeypatch):
    data = random_capture(6, n_changes=1500) + b"\n" + "\n".join(SMALL[4:7]).encode()
    one = bi.import_bytes(data)
    monkeypatch.setattr(bl, "PARALLEL_BYTES", 1000)  # split even this small capture
    two = bi.import_bytes(data)
    for name in ("quotes", "trades", "book"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
    assert one.stats == two.stats
    lines = data.split(b"\n")
    lines[-2] = b'77 {"e":"trade","s":"X"}'  # error in the second half: its physical line
    n = len(lines) - 1
    with pytest.raises(
        ValueError,
        match=rf"cap: read {n - 1} lines, then line {n}: a trade message without key 'T', 'E', 't'",
    ):
        bi.import_bytes(b"\n".join(lines), where="cap")


@pytest.mark.parametrize(
    "bad",
    [
        SMALL[5][:-9],  # the last line of a capture copied while it was written
        "1500 <html>502 Bad Gateway</html>",
        "1500 ",
    ],
)
def test_a_line_that_is_not_json_stops_the_import_naming_it(bad):
    data = "\n".join([*SMALL[:5], bad, SMALL[6]]).encode()
    with pytest.raises(
        ValueError,
        match=r"^cap\.txt: read 5 lines, then line 6: not a JSON object \(the line is cut short "
        r"or corrupt\): .*; nothing imported$",
    ):
        bi.import_bytes(data, where="cap.txt")


def test_other_json_messages_are_counted_and_a_capture_of_only_those_refused():
    reply = '1 {"result":null,"id":1}'
    imp = bi.import_bytes("\n".join([reply, *SMALL]).encode())
    assert imp.stats["binance"]["skipped_lines"] == 1
    with pytest.raises(ValueError, match=r"cap: nothing to import: none of its 2 lines is a "):
        bi.import_bytes(f"{reply}\n{reply}".encode(), where="cap")


def test_a_gzip_capture_cut_short_says_how_many_lines_were_read(tmp_path):
    text = random_capture(4, n_changes=3000)
    packed = gzip.compress(text, compresslevel=1)
    cut = tmp_path / "cap.gz"
    cut.write_bytes(packed[: len(packed) - 50])
    with pytest.raises(ValueError) as err:
        bi.import_binance(cut)
    msg = str(err.value)
    lines = int(msg.split("read ")[1].split(" complete")[0].replace(",", ""))
    assert 0 < lines <= text.count(b"\n")
    assert msg == (
        f"{cut}: read {lines:,} complete lines, then the gzip data ends inside a member at byte "
        f"{len(packed) - 50:,} (the file is cut short); nothing imported"
    )


def _same_import(a, b) -> None:
    for name in ("quotes", "trades", "book"):
        x, y = getattr(a, name), getattr(b, name)
        for field in x.dtype.names:  # field by field: padding bytes are not data
            np.testing.assert_array_equal(x[field], y[field])
    assert a.stats == b.stats and list(a.instruments) == list(b.instruments)


@pytest.mark.parametrize("parallel_bytes", [1 << 30, 5000])
def test_a_file_scanned_while_it_unpacks_imports_as_its_whole_text(
    tmp_path, monkeypatch, parallel_bytes
):
    # small pieces: most lines are cut in two by a piece's end, a few pieces hold no line
    # break at all (the long line), blank lines count; 5000: large pieces split in two too
    pad = np.random.default_rng(0).integers(97, 123, 20_000, dtype=np.uint8).tobytes().decode()
    long = line(9, trade(1, "100.25", "0.1", False) | {"pad": pad})  # hardly compresses
    text = (random_capture(7, n_changes=2000) + b"\n\n" + long.encode() + b"\n"
            + b"\n".join(x.encode() for x in SMALL[4:7]))  # fmt: skip
    monkeypatch.setattr(compressed, "_CHUNK", 700)
    monkeypatch.setattr(bl, "PARALLEL_BYTES", parallel_bytes)
    f = tmp_path / "cap.gz"
    f.write_bytes(gzip.compress(text))
    pieces = list(compressed.unpacked(f))
    assert len(pieces) > 20 and sum(b"\n" not in p for p in pieces) > 5
    _same_import(bi.import_binance(f), bi.import_bytes(text))
    lines = text.split(b"\n")
    lines[-2] = b'77 {"e":"trade","s":"X"}'  # an error in the last piece: its physical line
    f.write_bytes(gzip.compress(b"\n".join(lines)))
    n = len(lines) - 1
    with pytest.raises(ValueError, match=rf"cap.gz: read {n - 1} lines, then line {n}: a trade"):
        bi.import_binance(f)


def test_an_empty_file_is_nothing_to_import(tmp_path):
    f = tmp_path / "cap.gz"
    f.write_bytes(gzip.compress(b""))
    with pytest.raises(ValueError, match=r"nothing to import: none of its 0 lines"):
        bi.import_binance(f)


def test_line_ends_are_found_eight_bytes_at_a_time_wherever_a_line_starts():
    rng = np.random.default_rng(3)
    for _ in range(300):
        n = int(rng.integers(0, 60))
        raw = rng.choice(np.array([10, 34, 123, 255], np.uint8), n, p=[0.1, 0.3, 0.3, 0.3])
        for start in range(min(n, 9)):  # every alignment of the words to the line
            buf = raw[start:]
            words = buf[: len(buf) - len(buf) % 8].view(np.uint64)
            for pos in range(len(buf) + 1):
                nl = np.flatnonzero(buf[pos:] == 10)
                want = pos + int(nl[0]) if len(nl) else len(buf)
                assert lb.line_end(buf, words, pos, len(buf)) == want


def test_lines_are_counted_eight_bytes_at_a_time_exactly():
    rng = np.random.default_rng(4)
    # bytes one bit off a line break, and 0 and 255: a carry or a borrow would miscount them
    alphabet = np.array([10, 0, 11, 8, 138, 255, 42], np.uint8)
    for n in [*range(40), 1000, 4099]:
        buf = rng.choice(alphabet, n)
        assert lb.count_lines(buf) == np.count_nonzero(buf == 10) + 1
