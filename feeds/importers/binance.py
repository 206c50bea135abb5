"""Binance capture (USD-M, COIN-M futures or spot) -> redline quotes, trades and L2 deltas.

Input: lines of `<local receive ns> <raw JSON>` from combined streams
(`<sym>@bookTicker`, `<sym>@trade`, `<sym>@depth@...`) plus REST depth
snapshot lines (`{"lastUpdateId": ...}`), gzip or plain.

- bookTicker -> QUOTE, trade -> TRADE, depthUpdate -> BOOK_DELTA (one per level;
  qty 0 is a DELETE), snapshot -> CLEAR + ADD per level, flagged SNAPSHOT.
- `ts_event` = the exchange's transaction time `T` (ms -> ns), or its event time `E` where
  there is no `T` (spot diff-depth); a spot bookTicker carries neither: its `ts_event` is
  0 (unknown, never invented) and latency figures leave it out. `ts_recv` = the local
  stamp; `seq` = update id `u` (depth, bookTicker, snapshot) or trade id.
- Prices and sizes become exact integers of the symbol's tick and lot: from an
  exchangeInfo answer given with the capture, else the greatest common divisor of the
  capture's prices (`binance_terms.py`); COIN-M contracts carry their face value.
- Diff-depth sync follows Binance's rules per market (`binance_sync.py`): events before
  the first snapshot are held; after it, futures need U <= L <= u then each `pu` equal to
  the previous `u`, spot U <= L + 1 <= u then each U equal to the previous u + 1. A
  break is a gap: the first delta after it is
  flagged GAP_BEFORE (the book is invalid until the next snapshot) and counted.
  Held events applied after a snapshot arrived earlier than it; they are
  emitted at the snapshot's `ts_recv` (when they could first be applied) and
  flagged BAD_TS_RECV, so files stay sorted and latency stats skip them.
- Lines of other messages (JSON objects of another kind) are skipped and
  counted; a line that is not a JSON object, a message missing a key its kind needs, or
  a gzip stream cut short stops the import with the line (or byte), the key, and how
  much was read before it.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from redline.feeds import events as ev
from redline.feeds.importers import binance_lines as bl
from redline.feeds.importers import binance_scan as sc
from redline.feeds.importers import binance_terms as bt
from redline.feeds.importers import compressed
from redline.feeds.importers import semantics as sem
from redline.feeds.importers.binance_lines import picked
from redline.feeds.importers.binance_sync import COUNTERS, sync
from redline.feeds.importers.exchange_info import Terms
from redline.feeds.importers.grid import Grid
from redline.feeds.importers.output import Imported, latency_by_type
from redline.feeds.instruments import InstrumentTable

# source_id per stream: each has its own sequence space (`seq`), so a reader
# that checks sequences per source (redline inspect) compares like with like.
# Trade ids are contiguous (a jump is a missed trade); update ids `u` are not.
SOURCE_DEPTH, SOURCE_TICKER, SOURCE_TRADE = 2, 3, 4
_MS = 1_000_000
SUPPORTED = (
    "Binance USD-M/COIN-M futures and spot websocket captures (depthUpdate, bookTicker, "
    "trade, REST depth snapshot), Databento DBN, Tardis.dev CSV"
)
instrument_id = bt.instrument_id


def read_bytes(path: str | Path) -> bytes:
    """File contents, gunzipped when it starts with the gzip magic; a gzip stream cut short
    or corrupt is a ValueError saying how many lines were read and where it breaks."""
    try:
        return compressed.decompressed(path)
    except compressed.CutShort as exc:
        raise _cut_short(path, exc) from None


def _cut_short(path: str | Path, exc: compressed.CutShort) -> ValueError:
    lines = exc.partial.count(b"\n")
    return ValueError(f"{path}: read {lines:,} complete lines, then {exc}; nothing imported")


def import_binance(path: str | Path, info: dict[str, Terms] | None = None) -> Imported:
    """Import one capture file (see the module doc); `info`: exchangeInfo terms by symbol.
    Its lines are scanned while the rest of it unpacks (`binance_lines.py`)."""
    try:
        text, parts = bl.scan_pieces(compressed.unpacked(path))
    except compressed.CutShort as exc:
        raise _cut_short(path, exc) from None
    return _imported(text, parts, str(path), info)


def import_bytes(
    data: bytes, where: str = "<bytes>", info: dict[str, Terms] | None = None
) -> Imported:
    return _imported(*bl.scan_text(data), where, info)


def _imported(text: bl.Text, parts: list[bl.Part], where: str, info) -> Imported:
    for rows, _, _, err, err_line in parts:
        if err:
            raise ValueError(_error_text(text, rows, err, err_line, where))
    rows, (lv_px, lv_pd, lv_sz, lv_sd, lv_side), nlv = bl.joined(parts)
    n = len(rows)
    syms = _symbols(text, rows, where)
    if not syms:
        raise ValueError(
            f"{where}: nothing to import: none of its {n:,} lines is a bookTicker, trade, "
            f"depthUpdate or depth snapshot message (supported: {SUPPORTED})"
        )
    out = Imported(instruments=InstrumentTable())
    arrays = []
    stats: dict[str, int | str] = {
        "lines": n,
        "skipped_lines": int((rows[:, sc.C_KIND] == sc.OTHER).sum()),
    }
    with ThreadPoolExecutor(1) as pool:  # a symbol's book sync (compiled, no GIL) beside its quotes
        for h, symbol in syms.items():
            mine = rows if len(syms) == 1 else picked(rows, rows[:, sc.C_SYM] == h)
            idx = _symbol_levels(mine, len(syms) == 1)
            market = bt.market_of(symbol, mine, where)
            terms = bt.terms(symbol, market, mine, (lv_px[idx], lv_pd[idx]), (lv_sz[idx], lv_sd[idx]),
                             (info or {}).get(symbol), where)  # fmt: skip
            out.instruments.add(terms.instrument)
            iid = terms.instrument.instrument_id
            px_ticks = _steps(lv_px, lv_pd, idx, terms.price)
            sz_lots = _steps(lv_sz, lv_sd, idx, terms.size)
            book = pool.submit(_book, mine, iid, px_ticks, sz_lots, lv_side, market == bt.SPOT)
            q = _quotes(mine, iid, terms.price, terms.size)
            t = _trades(mine, iid, terms.price, terms.size)
            b, counters = book.result()
            arrays.append((q, t, b))
            stats[f"market {symbol}"] = market
            stats["ts_event_unknown"] = stats.get("ts_event_unknown", 0) + int(
                (q["ts_event"] == 0).sum()
            )
            for k, v in zip(COUNTERS, counters, strict=True):
                stats[k] = stats.get(k, 0) + int(v)
    if arrays:
        out.quotes = _merged([a[0] for a in arrays])
        out.trades = _merged([a[1] for a in arrays])
        out.book = _merged([a[2] for a in arrays])
    # update ids jump and are shared by an event's deltas; trade ids count up per symbol
    out.sequence = {SOURCE_DEPTH: sem.PER_EVENT, SOURCE_TICKER: sem.PER_EVENT,
                    SOURCE_TRADE: sem.PER_INSTRUMENT}  # fmt: skip
    stats["bytes"] = len(text)
    stats["price_levels"] = int(nlv)
    out.stats = {
        "binance": stats,
        "latency_ns": latency_by_type(out.quotes, out.trades, out.book),
    }
    return out


def _merged(arrays: list[np.ndarray]) -> np.ndarray:
    if len(arrays) == 1:
        return arrays[0]
    a = np.concatenate(arrays)
    return a[np.argsort(a["ts_recv"], kind="stable")]


def _error_text(data: bl.Text, rows, err: int, line_idx: int, where: str) -> str:
    # Report the physical line number, counting blank lines too.
    start = int(rows[line_idx, sc.C_POS])
    lineno = data.line_number(start)
    text = data.line(start)[:120].decode("utf-8", "replace")
    what = sc.ERRORS.get(err, f"error {err}")
    if err == 2:  # name the keys and the message kind that needs them
        kind, seen = int(rows[line_idx, sc.C_KIND]), int(rows[line_idx, sc.C_SEEN])
        need = sc.NEED[kind]
        keys = [name for bit, name in sc.KEY_NAMES.items() if need & bit and not seen & bit]
        what = f"a {_KIND_NAMES[kind]} message without key {', '.join(repr(k) for k in keys)}"
        return (
            f"{where}: read {lineno - 1} lines, then line {lineno}: {what}: {text!r}; nothing "
            f"imported (supported: {SUPPORTED})"
        )
    return (
        f"{where}: read {lineno - 1} lines, then line {lineno}: {what}: {text!r}; nothing imported"
    )


_KIND_NAMES = {sc.DEPTH: "depthUpdate", sc.TICKER: "bookTicker", sc.TRADE: "trade",
               sc.SNAPSHOT: "depth snapshot"}  # fmt: skip


_SYM_RE = re.compile(rb'"s"\s*:\s*"([^"]*)"')


def _symbols(text: bl.Text, rows: np.ndarray, where: str) -> dict[int, str]:
    """Symbol hash -> symbol; snapshot lines (no symbol) go to the only symbol."""
    kinds = rows[:, sc.C_KIND]
    hashes = rows[:, sc.C_SYM]
    used = (kinds != sc.OTHER) & (kinds != sc.SNAPSHOT)
    uniq, first = np.unique(hashes[used], return_index=True)
    syms = {}
    for h, i in zip(uniq.tolist(), first.tolist(), strict=True):
        pos = int(rows[np.flatnonzero(used)[i], sc.C_POS])
        m = _SYM_RE.search(text.line(pos))
        syms[h] = m.group(1).decode()
    snap = kinds == sc.SNAPSHOT
    if snap.any():
        if len(syms) != 1:
            line = int(np.flatnonzero(snap)[0])
            raise ValueError(
                f"{where}: depth snapshot (record {line + 1}) names no symbol and the capture "
                f"holds {len(syms)} symbols {sorted(syms.values())}; capture one symbol per file"
            )
        rows[snap, sc.C_SYM] = next(iter(syms))
    return syms


def _symbol_levels(rows: np.ndarray, all_levels: bool) -> np.ndarray | slice:
    """Indices of one symbol's book levels (`all_levels`: every level is this symbol's)."""
    if all_levels:
        return slice(None)
    k = rows[:, sc.C_KIND]
    return _level_index(picked(rows, (k == sc.DEPTH) | (k == sc.SNAPSHOT)))


def _level_index(books: np.ndarray) -> np.ndarray:
    starts, ends = books[:, sc.C_PX], books[:, sc.C_SZ]
    lens = ends - starts
    return np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(lens.sum())


def _steps(mant: np.ndarray, dec: np.ndarray, idx, grid: Grid) -> np.ndarray:
    """All levels as steps of `grid`: this symbol's (`idx`) exact, the others' left 0
    (their rows never point at them)."""
    if isinstance(idx, slice):
        return grid.steps(mant, dec)
    out = np.zeros(len(mant), np.int64)
    out[idx] = grid.steps(mant[idx], dec[idx])
    return out


def _header(recs: np.ndarray, rows: np.ndarray, iid: int, seq: np.ndarray, source: int) -> None:
    recs["ts_event"] = rows[:, sc.C_T] * _MS
    recs["ts_recv"] = rows[:, sc.C_TS]
    recs["seq"] = seq
    recs["instrument_id"] = iid
    recs["source_id"] = source


def _quotes(rows: np.ndarray, iid: int, px: Grid, sz: Grid) -> np.ndarray:
    r = picked(rows, rows[:, sc.C_KIND] == sc.TICKER)
    q = ev.empty(ev.RecordType.QUOTE, len(r))
    _header(q, r, iid, r[:, sc.C_ID2], SOURCE_TICKER)
    q["bid_px"] = px.steps(r[:, sc.C_PX], r[:, sc.C_PX_DEC])
    q["bid_sz"] = sz.steps(r[:, sc.C_SZ], r[:, sc.C_SZ_DEC])
    q["ask_px"] = px.steps(r[:, sc.C_PX2], r[:, sc.C_PX2_DEC])
    q["ask_sz"] = sz.steps(r[:, sc.C_SZ2], r[:, sc.C_SZ2_DEC])
    return q


def _trades(rows: np.ndarray, iid: int, px: Grid, sz: Grid) -> np.ndarray:
    r = picked(rows, rows[:, sc.C_KIND] == sc.TRADE)
    t = ev.empty(ev.RecordType.TRADE, len(r))
    _header(t, r, iid, r[:, sc.C_ID1], SOURCE_TRADE)
    t["px"] = px.steps(r[:, sc.C_PX], r[:, sc.C_PX_DEC])
    t["sz"] = sz.steps(r[:, sc.C_SZ], r[:, sc.C_SZ_DEC])
    t["trade_id"] = r[:, sc.C_ID1]
    # buyer is maker -> the seller hit the bid
    t["aggressor"] = np.where(r[:, sc.C_ID3] == 1, ev.Side.ASK, ev.Side.BID)
    return t


def _book(rows, iid, px_ticks, sz_lots, lv_side, spot: bool) -> tuple[np.ndarray, np.ndarray]:
    k = rows[:, sc.C_KIND]
    r = picked(rows, (k == sc.DEPTH) | (k == sc.SNAPSHOT))
    n_levels = int((r[:, sc.C_SZ] - r[:, sc.C_PX]).sum())
    # Every level once plus a CLEAR per snapshot; events re-applied after a
    # gap need more, and the loop then asks for a bigger buffer (n = -1).
    cap = n_levels + len(r) + 1
    n = -1
    while n < 0:
        out, counters, n = _book_into(r, iid, px_ticks, sz_lots, lv_side, cap, spot)
        cap *= 2
    return out[:n], counters


def _book_into(r, iid, px_ticks, sz_lots, lv_side, cap, spot: bool):
    out = np.zeros(cap, ev.BOOK_DELTA_DTYPE)  # zeroed: padding bytes stay deterministic
    counters = np.zeros(len(COUNTERS), np.int64)
    # spot has no `pu`: its rule "U == previous u + 1" is the futures one with pu = U - 1
    pu = r[:, sc.C_ID1] - 1 if spot else r[:, sc.C_ID3]
    n = sync(
        r[:, sc.C_KIND] == sc.SNAPSHOT, r[:, sc.C_TS], r[:, sc.C_T] * _MS,
        r[:, sc.C_ID1], r[:, sc.C_ID2], pu, r[:, sc.C_PX], r[:, sc.C_SZ],
        px_ticks, sz_lots, lv_side,
        out["ts_recv"], out["ts_event"], out["seq"], out["side"], out["action"], out["px"],
        out["sz"], out["flags"], (out["instrument_id"], out["source_id"], iid, SOURCE_DEPTH),
        counters, 1 if spot else 0,
    )  # fmt: skip
    return out, counters, n
