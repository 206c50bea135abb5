"""Binance USD-M futures capture -> redline quotes, trades and L2 book deltas.

Input: lines of `<local receive ns> <raw JSON>` from combined streams
(`<sym>@bookTicker`, `<sym>@trade`, `<sym>@depth@...`) plus REST depth
snapshot lines (`{"lastUpdateId": ...}`), gzip or plain.

- bookTicker -> QUOTE, trade -> TRADE, depthUpdate -> BOOK_DELTA (one per level;
  qty 0 is a DELETE), snapshot -> CLEAR + ADD per level, flagged SNAPSHOT.
- `ts_event` = the exchange's transaction time `T` (ms -> ns); `ts_recv` = the
  local stamp; `seq` = update id `u` (depth, bookTicker, snapshot) or trade id.
- Prices and sizes become exact integers: the tick is 10^-d for the most
  decimals seen in the capture's prices for that symbol (lots likewise).
- Diff-depth sync follows Binance's futures rules: events before the first
  snapshot are held; after a snapshot with `lastUpdateId` L, events with
  u < L are dropped, the first applied must have U <= L <= u, then each `pu`
  must equal the previous `u`. A break is a gap: the first delta after it is
  flagged GAP_BEFORE (the book is invalid until the next snapshot) and counted.
  Held events applied after a snapshot arrived earlier than it; they are
  emitted at the snapshot's `ts_recv` (when they could first be applied) and
  flagged BAD_TS_RECV, so files stay sorted and latency stats skip them.
- Lines of other messages (JSON objects of another kind) are skipped and
  counted; a line that is not a JSON object, or a gzip stream cut short,
  stops the import with the line (or byte) and how much was read before it.
"""

from __future__ import annotations

import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import numpy as np

from redline.feeds import events as ev
from redline.feeds.importers import binance_scan as sc
from redline.feeds.importers import compressed
from redline.feeds.importers.binance_sync import COUNTERS, sync
from redline.feeds.importers.output import Imported, latency_by_type
from redline.feeds.instruments import Instrument, InstrumentTable

# source_id per stream: each has its own sequence space (`seq`), so a reader
# that checks sequences per source (redline inspect) compares like with like.
# Trade ids are contiguous (a jump is a missed trade); update ids `u` are not.
SOURCE_DEPTH, SOURCE_TICKER, SOURCE_TRADE = 2, 3, 4
VENUE = "BINANCE-FUTURES"
_MS = 1_000_000


def instrument_id(symbol: str) -> int:
    """Stable id of a Binance symbol (CRC32 of venue:symbol, 31 bits)."""
    return zlib.crc32(f"{VENUE}:{symbol}".encode()) & 0x7FFFFFFF


def read_bytes(path: str | Path) -> bytes:
    """File contents, gunzipped when it starts with the gzip magic; a gzip stream cut short
    or corrupt is a ValueError saying how many lines were read and where it breaks."""
    try:
        return compressed.decompressed(path)
    except compressed.CutShort as exc:
        lines = exc.partial.count(b"\n")
        raise ValueError(
            f"{path}: read {lines:,} complete lines, then {exc}; nothing imported"
        ) from None


def import_binance(path: str | Path) -> Imported:
    """Import one capture file (see the module doc)."""
    return import_bytes(read_bytes(path), where=str(path))


def import_bytes(data: bytes, where: str = "<bytes>") -> Imported:
    buf = np.frombuffer(data, np.uint8)
    rows, (lv_px, lv_pd, lv_sz, lv_sd, lv_side), nlv = _scan_all(data, buf, where)
    n = len(rows)
    lv_side = lv_side[:nlv]
    syms = _symbols(data, rows, where)
    if not syms:
        raise ValueError(
            f"{where}: nothing to import: none of its {n:,} lines is a bookTicker, trade, "
            f"depthUpdate or depth snapshot message"
        )
    out = Imported(instruments=InstrumentTable())
    parts = []
    stats: dict[str, int] = {
        "lines": n,
        "skipped_lines": int((rows[:, sc.C_KIND] == sc.OTHER).sum()),
    }
    for h, symbol in syms.items():
        mine = rows if len(syms) == 1 else rows[rows[:, sc.C_SYM] == h]
        px_dec, sz_dec = _decimals(mine, lv_pd, lv_sd, len(syms) == 1)
        iid = instrument_id(symbol)
        out.instruments.add(
            Instrument(
                instrument_id=iid,
                symbol=symbol,
                tick_size=Decimal(1).scaleb(-px_dec),
                price_precision=px_dec,
                lot_size=Decimal(1).scaleb(-sz_dec),
            )
        )
        px_ticks = _scale(lv_px, lv_pd, px_dec)
        sz_lots = _scale(lv_sz, lv_sd, sz_dec)
        q = _quotes(mine, iid, px_dec, sz_dec)
        t = _trades(mine, iid, px_dec, sz_dec)
        b, counters = _book(mine, iid, px_ticks, sz_lots, lv_side)
        parts.append((q, t, b))
        for k, v in zip(COUNTERS, counters, strict=True):
            stats[k] = stats.get(k, 0) + int(v)
    if parts:
        out.quotes = _merged([p[0] for p in parts])
        out.trades = _merged([p[1] for p in parts])
        out.book = _merged([p[2] for p in parts])
    stats["bytes"] = len(data)
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


_PARALLEL_BYTES = 4 << 20  # below this one thread scans faster than two start


def _scan_all(data: bytes, buf: np.ndarray, where: str):
    """Scan every line: (rows, level columns, level count). Large captures
    are split at a line break and the halves scanned on two threads (the
    compiled scan releases the GIL); positions and level indices of the
    second half are shifted to be absolute."""
    if len(buf) < _PARALLEL_BYTES:
        parts = [_scan_part(buf, 0)]
    else:
        mid = data.find(b"\n", len(data) // 2) + 1 or len(data)
        with ThreadPoolExecutor(2) as pool:
            parts = list(pool.map(_scan_part, (buf[:mid], buf[mid:]), (0, mid)))
    for rows, _, _, err, err_line in parts:
        if err:
            raise ValueError(_error_text(data, buf, rows, err, err_line, where))
    if len(parts) == 1:
        rows, lv, nlv, _, _ = parts[0]
        return rows, tuple(a[:nlv] for a in lv), nlv
    (r1, lv1, n1, _, _), (r2, lv2, n2, _, _) = parts
    books = (r2[:, sc.C_KIND] == sc.DEPTH) | (r2[:, sc.C_KIND] == sc.SNAPSHOT)
    r2[books, sc.C_PX] += n1
    r2[books, sc.C_SZ] += n1
    lv = tuple(np.concatenate([a[:n1], b[:n2]]) for a, b in zip(lv1, lv2, strict=True))
    return np.concatenate([r1, r2]), lv, n1 + n2


def _scan_part(buf: np.ndarray, offset: int):
    rows = np.zeros((sc.count_lines(buf), sc.N_COLS), np.int64)
    cap = len(buf) // 12 + 16  # a level `["1","0"],` takes >= 10 bytes
    lv = (*(np.empty(cap, np.int64) for _ in range(4)), np.empty(cap, np.int8))
    n, nlv, err, err_line = sc.scan(buf, rows, *lv)
    rows = rows[: n + 1 if err else n]
    rows[:, sc.C_POS] += offset
    return rows, lv, nlv, err, err_line


def _error_text(data: bytes, buf, rows, err: int, line_idx: int, where: str) -> str:
    # Report the physical line number, counting blank lines too.
    start = int(rows[line_idx, sc.C_POS])
    lineno = int(np.count_nonzero(buf[:start] == 10)) + 1
    end = data.find(b"\n", start)
    text = data[start : end if end >= 0 else len(data)][:120].decode("utf-8", "replace")
    what = sc.ERRORS.get(err, f"error {err}")
    return (
        f"{where}: read {lineno - 1} lines, then line {lineno}: {what}: {text!r}; nothing imported"
    )


_SYM_RE = re.compile(rb'"s"\s*:\s*"([^"]*)"')


def _symbols(data: bytes, rows: np.ndarray, where: str) -> dict[int, str]:
    """Symbol hash -> symbol; snapshot lines (no symbol) go to the only symbol."""
    kinds = rows[:, sc.C_KIND]
    hashes = rows[:, sc.C_SYM]
    used = (kinds != sc.OTHER) & (kinds != sc.SNAPSHOT)
    uniq, first = np.unique(hashes[used], return_index=True)
    syms = {}
    for h, i in zip(uniq.tolist(), first.tolist(), strict=True):
        pos = int(rows[np.flatnonzero(used)[i], sc.C_POS])
        m = _SYM_RE.search(data, pos)
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


def _decimals(
    rows: np.ndarray, lv_pd: np.ndarray, lv_sd: np.ndarray, all_levels: bool
) -> tuple[int, int]:
    """Most price and size decimals seen for one symbol's rows (`all_levels`:
    every level belongs to this symbol, no need to pick them out)."""
    px, sz = [0], [0]
    k = rows[:, sc.C_KIND]
    tick = rows[k == sc.TICKER]
    trade = rows[k == sc.TRADE]
    if len(tick):
        px += [tick[:, sc.C_PX_DEC].max(), tick[:, sc.C_PX2_DEC].max()]
        sz += [tick[:, sc.C_SZ_DEC].max(), tick[:, sc.C_SZ2_DEC].max()]
    if len(trade):
        px.append(trade[:, sc.C_PX_DEC].max())
        sz.append(trade[:, sc.C_SZ_DEC].max())
    books = rows[(k == sc.DEPTH) | (k == sc.SNAPSHOT)]
    if len(books):
        idx = slice(None) if all_levels else _level_index(books)
        px.append(lv_pd[idx].max(initial=0))
        sz.append(lv_sd[idx].max(initial=0))
    d_px, d_sz = int(max(px)), int(max(sz))
    if d_px > 12 or d_sz > 12:
        raise ValueError(f"prices/sizes with {d_px}/{d_sz} decimals do not fit int64 ticks")
    return d_px, d_sz


def _level_index(books: np.ndarray) -> np.ndarray:
    starts, ends = books[:, sc.C_PX], books[:, sc.C_SZ]
    lens = ends - starts
    return np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(lens.sum())


_POW10 = 10 ** np.arange(19, dtype=np.int64)


def _scale(mant: np.ndarray, dec: np.ndarray, to: int) -> np.ndarray:
    """Mantissas with `dec` decimals as integers of 10^-to (exact)."""
    return mant * _POW10[to - dec]


def _header(recs: np.ndarray, rows: np.ndarray, iid: int, seq: np.ndarray, source: int) -> None:
    recs["ts_event"] = rows[:, sc.C_T] * _MS
    recs["ts_recv"] = rows[:, sc.C_TS]
    recs["seq"] = seq
    recs["instrument_id"] = iid
    recs["source_id"] = source


def _quotes(rows: np.ndarray, iid: int, px_dec: int, sz_dec: int) -> np.ndarray:
    r = rows[rows[:, sc.C_KIND] == sc.TICKER]
    q = ev.empty(ev.RecordType.QUOTE, len(r))
    _header(q, r, iid, r[:, sc.C_ID2], SOURCE_TICKER)
    q["bid_px"] = _scale(r[:, sc.C_PX], r[:, sc.C_PX_DEC], px_dec)
    q["bid_sz"] = _scale(r[:, sc.C_SZ], r[:, sc.C_SZ_DEC], sz_dec)
    q["ask_px"] = _scale(r[:, sc.C_PX2], r[:, sc.C_PX2_DEC], px_dec)
    q["ask_sz"] = _scale(r[:, sc.C_SZ2], r[:, sc.C_SZ2_DEC], sz_dec)
    return q


def _trades(rows: np.ndarray, iid: int, px_dec: int, sz_dec: int) -> np.ndarray:
    r = rows[rows[:, sc.C_KIND] == sc.TRADE]
    t = ev.empty(ev.RecordType.TRADE, len(r))
    _header(t, r, iid, r[:, sc.C_ID1], SOURCE_TRADE)
    t["px"] = _scale(r[:, sc.C_PX], r[:, sc.C_PX_DEC], px_dec)
    t["sz"] = _scale(r[:, sc.C_SZ], r[:, sc.C_SZ_DEC], sz_dec)
    t["trade_id"] = r[:, sc.C_ID1]
    # buyer is maker -> the seller hit the bid
    t["aggressor"] = np.where(r[:, sc.C_ID3] == 1, ev.Side.ASK, ev.Side.BID)
    return t


def _book(rows, iid, px_ticks, sz_lots, lv_side) -> tuple[np.ndarray, np.ndarray]:
    k = rows[:, sc.C_KIND]
    r = rows[(k == sc.DEPTH) | (k == sc.SNAPSHOT)]
    n_levels = int((r[:, sc.C_SZ] - r[:, sc.C_PX]).sum())
    # Every level once plus a CLEAR per snapshot; events re-applied after a
    # gap need more, and the loop then asks for a bigger buffer (n = -1).
    cap = n_levels + len(r) + 1
    n = -1
    while n < 0:
        out, counters, n = _book_into(r, px_ticks, sz_lots, lv_side, cap)
        cap *= 2
    out = out[:n]
    out["instrument_id"] = iid
    out["source_id"] = SOURCE_DEPTH
    return out, counters


def _book_into(r, px_ticks, sz_lots, lv_side, cap):
    out = np.zeros(cap, ev.BOOK_DELTA_DTYPE)  # zeroed: padding bytes stay deterministic
    counters = np.zeros(len(COUNTERS), np.int64)
    n = sync(
        r[:, sc.C_KIND] == sc.SNAPSHOT, r[:, sc.C_TS], r[:, sc.C_T] * _MS,
        r[:, sc.C_ID1], r[:, sc.C_ID2], r[:, sc.C_ID3], r[:, sc.C_PX], r[:, sc.C_SZ],
        px_ticks, sz_lots, lv_side,
        out["ts_recv"], out["ts_event"], out["seq"], out["side"], out["action"], out["px"],
        out["sz"], out["flags"], counters,
    )  # fmt: skip
    return out, counters, n
