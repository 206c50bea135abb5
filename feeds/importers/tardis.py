"""Tardis.dev CSV datasets -> redline quotes, trades and L2 book deltas.

Columns as Tardis documents them (docs.tardis.dev, "Downloadable CSV files"); every file
starts `exchange,symbol,timestamp,local_timestamp`, times in µs since the epoch (UTC):

- `incremental_book_L2`: `is_snapshot,side,price,amount`: one L2 change per row (amount 0
  deletes); rows of one venue message share `local_timestamp`, the last carries LAST. A run
  of `is_snapshot` rows is a snapshot: a CLEAR, then its levels, flagged SNAPSHOT.
- `book_snapshot_25` / `book_snapshot_5` (any N): `asks[i].price,asks[i].amount,
  bids[i].price,bids[i].amount`: each row a top-N book: a CLEAR plus its levels, SNAPSHOT.
- `quotes`: `ask_amount,ask_price,bid_price,bid_amount` -> QUOTE (an empty side: no price).
- `trades`: `id,side,price,amount` -> TRADE (side buy/sell/unknown: the aggressor).

`ts_event` = `timestamp`, `ts_recv` = `local_timestamp` (µs -> ns). Tardis carries no
venue sequence numbers: `seq` is the row's message number in its file, and the sequence
semantics the importer records is "none" (nothing for inspect to check). Tick and lot are
the greatest common divisor of every price and size of the symbol across all the files of
one import (`grid.py`). The CSV is parsed by pyarrow, the decimals by numpy: no Python
step per row. A header that is none of these, or lacks a column, is an error naming the
file, the column and the formats supported; a value that is not a decimal names its line.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from redline.feeds import events as ev
from redline.feeds.importers import compressed
from redline.feeds.importers import grid as gr
from redline.feeds.importers.output import Imported, latency_by_type, sort_by_recv
from redline.feeds.instruments import Instrument, InstrumentTable

SOURCE_BOOK, SOURCE_QUOTES, SOURCE_TRADES = 10, 11, 12
_COMMON = ("exchange", "symbol", "timestamp", "local_timestamp")
COLUMNS = {
    "incremental_book_L2": ("is_snapshot", "side", "price", "amount"),
    "book_snapshot": ("asks[0].price", "asks[0].amount", "bids[0].price", "bids[0].amount"),
    "quotes": ("ask_amount", "ask_price", "bid_price", "bid_amount"),
    "trades": ("id", "side", "price", "amount"),
}
SUPPORTED = (
    "Tardis.dev CSV incremental_book_L2, book_snapshot_25/_5, quotes, trades (header "
    "exchange,symbol,timestamp,local_timestamp,...); Binance captures; Databento DBN"
)
_US = 1000


def looks_like(head: bytes) -> bool:
    """Does the file start with a Tardis CSV header?"""
    return head.startswith(b"exchange,symbol,timestamp,local_timestamp")


def kind_of(header: list[str], where: str) -> str:
    """Which dataset a header is; a ValueError naming the missing column otherwise."""
    cols = set(header)
    missing = [c for c in _COMMON if c not in cols]
    if missing:
        raise ValueError(f"{where}: line 1: no column {missing[0]!r}; supported: {SUPPORTED}")
    for kind, need in COLUMNS.items():
        if need[0] in cols or (kind == "book_snapshot" and "asks[0].price" in cols):
            gone = [c for c in need if c not in cols]
            if gone:
                raise ValueError(
                    f"{where}: line 1: a Tardis {kind} header without column {gone[0]!r}; "
                    f"supported: {SUPPORTED}"
                )
            return kind
    raise ValueError(
        f"{where}: line 1: columns {', '.join(header[4:8])}... are none of the datasets "
        f"supported: {SUPPORTED}"
    )


@dataclass
class _File:
    where: str
    kind: str
    table: pa.Table


def _read(path: Path) -> _File:
    where = str(path)
    try:
        data = compressed.decompressed(path)
    except compressed.CutShort as exc:
        raise ValueError(f"{where}: {exc}; nothing imported") from None
    header = data.split(b"\n", 1)[0].decode("utf-8", "replace").strip().split(",")
    kind = kind_of(header, where)
    text = {c: pa.string() for c in header if c not in ("timestamp", "local_timestamp")}
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            convert_options=pacsv.ConvertOptions(
                column_types={**text, "timestamp": pa.int64(), "local_timestamp": pa.int64()},
                strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise ValueError(f"{where}: not a well-formed Tardis CSV ({exc})") from None
    return _File(where, kind, table)


def _decimals(col: pa.ChunkedArray, where: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Decimal strings -> (mantissa, decimals); empty cells -> (0, 0), marked by the caller."""
    s = np.asarray(col.fill_null("").to_numpy(zero_copy_only=False), dtype=str)
    parts = np.char.partition(s, ".")  # [n, 3]: before, ".", after
    whole, frac = parts[:, 0], parts[:, 2]
    digits = np.char.add(whole, frac)
    ok = np.char.isdigit(digits) | (s == "")
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise ValueError(
            f"{where}: line {i + 2}: {name} {str(s[i])!r} is not a plain decimal; nothing imported"
        )
    mant = np.where(s == "", "0", digits).astype(np.int64)
    return mant, np.char.str_len(frac).astype(np.int64)


def _price_size_columns(f: _File) -> tuple[list[str], list[str]]:
    names = f.table.column_names
    if f.kind == "book_snapshot":
        return [c for c in names if c.endswith(".price")], [
            c for c in names if c.endswith(".amount")
        ]
    if f.kind == "quotes":
        return ["ask_price", "bid_price"], ["ask_amount", "bid_amount"]
    return ["price"], ["amount"]


def instrument_id(exchange: str, symbol: str) -> int:
    """Stable id of a Tardis symbol (CRC32 of exchange:symbol, 31 bits)."""
    return zlib.crc32(f"TARDIS:{exchange}:{symbol}".encode()) & 0x7FFFFFFF


def import_tardis(paths: list[str | Path]) -> Imported:
    """Import Tardis CSV files (any mix of datasets and symbols) into one result."""
    files = [_read(Path(p)) for p in paths]
    parsed = []  # per file: symbol keys, {column: (mantissa, decimals)}
    by_symbol: dict[str, tuple[list, list]] = {}  # "exchange<TAB>symbol" -> values
    for f in files:
        keys = _keys(f.table)
        px_cols, sz_cols = _price_size_columns(f)
        vals = {c: _decimals(f.table.column(c), f.where, c) for c in px_cols + sz_cols}
        parsed.append((keys, vals))
        for key in np.unique(keys).tolist():
            rows = keys == key
            px, sz = by_symbol.setdefault(key, ([], []))
            px += [(m[rows], d[rows]) for c, (m, d) in vals.items() if c in px_cols]
            sz += [(m[rows], d[rows]) for c, (m, d) in vals.items() if c in sz_cols]
    grids = {}
    table = InstrumentTable()
    for key, (px, sz) in sorted(by_symbol.items()):
        exchange, symbol = key.split(_SEP)
        pm, pd_ = np.concatenate([m for m, _ in px]), np.concatenate([d for _, d in px])
        sm, sd = np.concatenate([m for m, _ in sz]), np.concatenate([d for _, d in sz])
        price, size = gr.inferred(pm[pm != 0], pd_[pm != 0]), gr.inferred(sm, sd)
        iid = instrument_id(exchange, symbol)
        grids[key] = (iid, price, size)
        n = int((pm != 0).sum())
        table.add(Instrument(iid, symbol, price.size, price.decimals, size.size,
                             source=f"gcd of {n:,} prices"))  # fmt: skip
    out = Imported(instruments=table)
    parts: dict[str, list[np.ndarray]] = {"quotes": [], "trades": [], "book": []}
    stats: dict[str, dict] = {}
    for f, (keys, vals) in zip(files, parsed, strict=True):
        iid, px, sz = _per_row(keys, grids)
        build = {"incremental_book_L2": _incremental, "book_snapshot": _snapshots,
                 "quotes": _quotes, "trades": _trades}[f.kind]  # fmt: skip
        dest, recs, st = build(f, vals, iid, px, sz)
        parts[dest].append(recs)
        stats[Path(f.where).name] = {"dataset": f.kind, "rows": f.table.num_rows, **st}
    for dest, arrays in parts.items():
        if arrays:
            setattr(out, dest, sort_by_recv(np.concatenate(arrays)))
    out.sequence = {SOURCE_BOOK: "none", SOURCE_QUOTES: "none", SOURCE_TRADES: "none"}
    out.stats = {"tardis": stats, "latency_ns": latency_by_type(out.quotes, out.trades, out.book)}
    return out


_SEP = "\t"  # never in a CSV cell of these files


def _keys(t: pa.Table) -> np.ndarray:
    """Per row, "exchange<TAB>symbol"."""
    ex, sym = (_strings(t, c) for c in ("exchange", "symbol"))
    return np.char.add(np.char.add(ex, _SEP), sym)


class _Steps:
    """Per-row grids of one file: each row's values in its own symbol's steps."""

    def __init__(self, decimals: np.ndarray, step: np.ndarray) -> None:
        self.decimals, self.step = decimals, step

    def __call__(self, mant_dec: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        mant, dec = mant_dec
        return mant * gr.POW10[self.decimals - dec] // self.step


def _per_row(keys: np.ndarray, grids: dict) -> tuple[np.ndarray, _Steps, _Steps]:
    uniq, inv = np.unique(keys, return_inverse=True)
    g = [grids[u] for u in uniq.tolist()]
    iid = np.array([x[0] for x in g], np.uint32)[inv]
    px = _Steps(np.array([x[1].decimals for x in g])[inv], np.array([x[1].step for x in g])[inv])
    sz = _Steps(np.array([x[2].decimals for x in g])[inv], np.array([x[2].step for x in g])[inv])
    return iid, px, sz


def _times(t: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    return (t.column("timestamp").to_numpy() * _US, t.column("local_timestamp").to_numpy() * _US)


def _strings(t: pa.Table, name: str) -> np.ndarray:
    return np.asarray(t.column(name).fill_null("").to_numpy(zero_copy_only=False), dtype=str)


def _incremental(f: _File, vals, iid, px, sz):
    t = f.table
    ts_event, ts_recv = _times(t)
    snap = np.char.lower(_strings(t, "is_snapshot")) == "true"
    side = _strings(t, "side")
    n = len(side)
    # a CLEAR before every run of snapshot rows
    starts = snap & ~np.concatenate([[False], snap[:-1]])
    pos = np.arange(n) + np.cumsum(starts)  # where each row lands after the CLEARs
    out = np.zeros(n + int(starts.sum()), ev.BOOK_DELTA_DTYPE)
    clear_at = pos[starts] - 1
    # one message: rows sharing local_timestamp and snapshot state
    new_msg = np.concatenate([[True], (ts_recv[1:] != ts_recv[:-1]) | (snap[1:] != snap[:-1])])
    msg = np.cumsum(new_msg) - 1
    last = np.concatenate([new_msg[1:], [True]])
    amount = sz(vals["amount"])
    r = out[pos]
    r["ts_event"], r["ts_recv"], r["seq"], r["instrument_id"] = ts_event, ts_recv, msg, iid
    r["px"], r["sz"] = px(vals["price"]), amount
    r["side"] = np.where(side == "bid", ev.Side.BID, ev.Side.ASK)
    bad = (side != "bid") & (side != "ask")
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{f.where}: line {i + 2}: side {side[i]!r}; Tardis writes bid or ask")
    r["action"] = np.where(snap, ev.BookAction.ADD,
                           np.where(amount == 0, ev.BookAction.DELETE, ev.BookAction.UPDATE))  # fmt: skip
    r["flags"] = np.where(snap, ev.Flag.SNAPSHOT, 0) | np.where(last, ev.Flag.LAST, 0)
    out[pos] = r
    c = out[clear_at]
    c["ts_event"], c["ts_recv"], c["seq"] = ts_event[starts], ts_recv[starts], msg[starts]
    c["instrument_id"], c["action"], c["flags"] = iid[starts], ev.BookAction.CLEAR, ev.Flag.SNAPSHOT
    out[clear_at] = c
    out["source_id"] = SOURCE_BOOK
    return "book", out, {"snapshots": int(starts.sum()), "messages": int(new_msg.sum())}


def _snapshots(f: _File, vals, iid, px, sz):
    t = f.table
    ts_event, ts_recv = _times(t)
    n = t.num_rows
    depth = sum(1 for c in t.column_names if c.startswith("asks[") and c.endswith(".price"))
    # [n, 2 * depth] levels, asks then bids; an empty cell is an absent level
    cols = [(s, i) for s in ("asks", "bids") for i in range(depth)]
    present = np.stack([_strings(t, f"{s}[{i}].price") != "" for s, i in cols], axis=1)
    lv_px = np.stack([px(vals[f"{s}[{i}].price"]) for s, i in cols], axis=1)
    lv_sz = np.stack([sz(vals[f"{s}[{i}].amount"]) for s, i in cols], axis=1)
    lv_side = np.array([ev.Side.ASK if s == "asks" else ev.Side.BID for s, _ in cols], np.int8)
    width = 1 + present.sum(axis=1)  # a CLEAR plus the levels, per row
    out = np.zeros(int(width.sum()), ev.BOOK_DELTA_DTYPE)
    first = np.cumsum(width) - width
    row_of = np.repeat(np.arange(n), width)
    out["ts_event"], out["ts_recv"], out["seq"] = ts_event[row_of], ts_recv[row_of], row_of
    out["instrument_id"] = iid[row_of]
    out["source_id"] = SOURCE_BOOK
    out["flags"] = ev.Flag.SNAPSHOT
    out["action"] = ev.BookAction.ADD
    out["action"][first] = ev.BookAction.CLEAR
    levels = np.ones(len(out), bool)
    levels[first] = False
    rr, cc = np.nonzero(present)  # row-major: each row's levels in column order
    out["px"][levels], out["sz"][levels], out["side"][levels] = (
        lv_px[rr, cc],
        lv_sz[rr, cc],
        lv_side[cc],
    )
    out["flags"][first + width - 1] |= np.uint8(ev.Flag.LAST)
    return "book", out, {"snapshots": n, "depth": depth}


def _quotes(f: _File, vals, iid, px, sz):
    t = f.table
    q = ev.empty(ev.RecordType.QUOTE, t.num_rows)
    q["ts_event"], q["ts_recv"] = _times(t)
    q["seq"], q["instrument_id"], q["source_id"] = np.arange(t.num_rows), iid, SOURCE_QUOTES
    for s in ("bid", "ask"):
        empty = _strings(t, f"{s}_price") == ""
        q[f"{s}_px"] = np.where(empty, ev.UNDEF_PX, px(vals[f"{s}_price"]))
        q[f"{s}_sz"] = np.where(empty, 0, sz(vals[f"{s}_amount"]))
    return "quotes", q, {}


def _trades(f: _File, vals, iid, px, sz):
    t = f.table
    r = ev.empty(ev.RecordType.TRADE, t.num_rows)
    r["ts_event"], r["ts_recv"] = _times(t)
    r["seq"], r["instrument_id"], r["source_id"] = np.arange(t.num_rows), iid, SOURCE_TRADES
    r["px"], r["sz"] = px(vals["price"]), sz(vals["amount"])
    side = _strings(t, "side")
    r["aggressor"] = np.select(
        [side == "buy", side == "sell"], [ev.Side.BID, ev.Side.ASK], ev.Side.NONE
    )
    ids = _strings(t, "id")
    numeric = np.char.isdigit(ids) & (np.char.str_len(ids) < 19)
    r["trade_id"][numeric] = ids[numeric].astype(np.uint64)
    return "trades", r, {"trade_ids_not_numeric": int((~numeric).sum())}
