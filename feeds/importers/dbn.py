"""Databento DBN -> redline quotes, trades, L3 book deltas and instruments.

- MBP-1 / TBBO -> one QUOTE per record (the book's top after the event), and
  a TRADE for each trade record (action T); trades (MBP-0) -> TRADE;
  MBO -> BOOK_DELTA with order ids (A add, C cancel, M modify, R clear,
  F fill, T trade); definitions -> the instrument table (tick size, precision,
  multiplier).
- Kept as they are: `ts_event`, `ts_recv`, `sequence` (as `seq`), the
  publisher (as `source_id`). DBN's SNAPSHOT, BAD_TS_RECV and LAST flags map
  onto ours; flagged records are kept, and left out of the latency figures.
- Prices are DBN's 1e-9 fixed point divided by the instrument's tick
  (`min_price_increment` from a definition given in the same import; without
  one, the largest step that divides every price seen). A price off that
  grid is an error, never rounded.

`databento-dbn` decodes the metadata and the definitions (variable, rare
records). The hot schemas are fixed-width C structs: they are viewed as numpy
records straight from the decompressed bytes, which the tests check field
by field against the package's own decoder.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

import databento_dbn as dbn
import numba as nb
import numpy as np
import zstandard

from redline.feeds import events as ev
from redline.feeds.importers.output import Imported, latency_by_type, sort_by_recv
from redline.feeds.instruments import Instrument, InstrumentTable

_HEADER = [
    ("length", "u1"),  # record length in 4-byte words
    ("rtype", "u1"),
    ("publisher_id", "<u2"),
    ("instrument_id", "<u4"),
    ("ts_event", "<u8"),
]
_MBP0 = [
    ("price", "<i8"),
    ("size", "<u4"),
    ("action", "S1"),
    ("side", "S1"),
    ("flags", "u1"),
    ("depth", "u1"),
    ("ts_recv", "<u8"),
    ("ts_in_delta", "<i4"),
    ("sequence", "<u4"),
]
_LEVEL = [
    ("bid_px", "<i8"),
    ("ask_px", "<i8"),
    ("bid_sz", "<u4"),
    ("ask_sz", "<u4"),
    ("bid_ct", "<u4"),
    ("ask_ct", "<u4"),
]
_MBO = [
    ("order_id", "<u8"),
    ("price", "<i8"),
    ("size", "<u4"),
    ("flags", "u1"),
    ("channel_id", "u1"),
    ("action", "S1"),
    ("side", "S1"),
    ("ts_recv", "<u8"),
    ("ts_in_delta", "<i4"),
    ("sequence", "<u4"),
]
RTYPE_MBP0, RTYPE_MBP1, RTYPE_DEF, RTYPE_MBO = 0x00, 0x01, 0x13, 0xA0
RAW_DTYPES: dict[int, np.dtype] = {
    RTYPE_MBP0: np.dtype(_HEADER + _MBP0),  # trades
    RTYPE_MBP1: np.dtype(_HEADER + _MBP0 + _LEVEL),  # mbp-1, tbbo
    RTYPE_MBO: np.dtype(_HEADER + _MBO),
}
SUPPORTED = "mbp-1, tbbo, trades, mbo, definition"
UNDEF_PRICE = np.iinfo(np.int64).max  # DBN's "no price", same value as ev.UNDEF_PX
_PX_SCALE = 10**9

_DBN_SNAPSHOT, _DBN_BAD_TS, _DBN_LAST = dbn.F_SNAPSHOT, dbn.F_BAD_TS_RECV, dbn.F_LAST
_SIDES = {b"B": ev.Side.BID, b"A": ev.Side.ASK, b"N": ev.Side.NONE}
_MBO_ACTIONS = {
    b"A": ev.BookAction.ADD,
    b"C": ev.BookAction.DELETE,
    b"M": ev.BookAction.UPDATE,
    b"R": ev.BookAction.CLEAR,
    b"F": ev.BookAction.FILL,
    b"T": ev.BookAction.TRADE,
}


def read_dbn(path: str | Path) -> tuple[dbn.Metadata, bytes, bytes]:
    """(metadata, the whole decoded stream, the record bytes) of a DBN file,
    zstd-compressed or not."""
    raw = Path(path).read_bytes()
    if raw[:4] == b"\x28\xb5\x2f\xfd":  # zstd frame
        data = zstandard.ZstdDecompressor().stream_reader(raw).read()
    else:
        data = raw
    if data[:3] != b"DBN":
        raise ValueError(f"{path}: not a DBN stream (starts {data[:4]!r})")
    if not 1 <= data[3] <= 3:
        raise ValueError(f"{path}: DBN version {data[3]} is not supported (1-3 are)")
    end = 8 + int.from_bytes(data[4:8], "little")
    meta = dbn.Metadata.decode(data[:end])
    return meta, data, data[end:]


@nb.njit(cache=True)
def _walk(body):
    """Offsets and rtypes of the records in `body`; the third value is the
    offset of a truncated or zero-length record, or -1."""
    n = body.shape[0]
    offs = np.empty(n // 16 + 1, np.int64)
    rtypes = np.empty(n // 16 + 1, np.uint8)
    k = 0
    pos = 0
    while pos < n:
        length = np.int64(body[pos]) * 4
        if length < 16 or pos + length > n:
            return offs[:k], rtypes[:k], pos
        offs[k] = pos
        rtypes[k] = body[pos + 1]
        k += 1
        pos += length
    return offs[:k], rtypes[:k], np.int64(-1)


def records(path: str | Path) -> tuple[dbn.Metadata, dict[int, np.ndarray], list, Counter]:
    """Raw numpy records by rtype, definition messages, and a count of every
    rtype seen (unsupported ones included) for one file."""
    meta, data, body_bytes = read_dbn(path)
    body = np.frombuffer(body_bytes, np.uint8)
    offs, rtypes, bad = _walk(body)
    if bad >= 0:
        raise ValueError(f"{path}: truncated or corrupt record at byte {bad} of the record stream")
    seen = Counter(
        {int(k): int(v) for k, v in zip(*np.unique(rtypes, return_counts=True), strict=True)}
    )
    ts_out = 8 if meta.ts_out else 0
    out: dict[int, np.ndarray] = {}
    for rtype, dtype in RAW_DTYPES.items():
        sel = offs[rtypes == rtype]
        if not len(sel):
            continue
        size = dtype.itemsize + ts_out
        lengths = body[sel].astype(np.int64) * 4
        if np.any(lengths != size):
            i = int(np.flatnonzero(lengths != size)[0])
            raise ValueError(
                f"{path}: rtype {rtype:#x} record at byte {sel[i]} is {lengths[i]} bytes, "
                f"expected {size} (unsupported DBN layout?)"
            )
        if sel[-1] - sel[0] == size * (len(sel) - 1):  # one contiguous run: a view, no copy
            raw = np.frombuffer(body_bytes, np.uint8, size * len(sel), int(sel[0]))
        else:
            raw = body[sel[:, None] + np.arange(size)].reshape(-1)
        out[rtype] = raw.reshape(len(sel), size)[:, : dtype.itemsize].copy().view(dtype).ravel()
    defs = []
    if RTYPE_DEF in seen:
        dec = dbn.DBNDecoder()
        dec.write(data)
        defs = [r for r in dec.decode() if isinstance(r, dbn.InstrumentDefMsg)]
    return meta, out, defs, seen


def _plain(d: Decimal) -> Decimal:
    """Shortest exact form, never exponent notation ('50', not '5E+1')."""
    d = d.normalize()
    return d.quantize(Decimal(1)) if d.as_tuple().exponent > 0 else d


def _instrument(d) -> Instrument:
    tick = _plain(Decimal(int(d.min_price_increment)) / _PX_SCALE)
    mult = Decimal(1)
    if d.unit_of_measure_qty not in (UNDEF_PRICE, 0):  # e.g. ES: 50 USD per index point
        mult = Decimal(int(d.unit_of_measure_qty)) / _PX_SCALE
    elif d.contract_multiplier not in (np.iinfo(np.int32).max, 0):
        mult = Decimal(int(d.contract_multiplier))
    return Instrument(
        instrument_id=int(d.instrument_id),
        symbol=str(d.raw_symbol),
        tick_size=tick,
        price_precision=max(0, -tick.as_tuple().exponent),
        lot_size=Decimal(1),
        multiplier=_plain(mult),
    )


def symbols_by_id(meta: dbn.Metadata) -> dict[int, str]:
    """instrument_id -> raw symbol from the metadata's symbol mappings."""
    out: dict[int, str] = {}
    for raw_symbol, intervals in (meta.mappings or {}).items():
        for iv in intervals:
            if str(iv.get("symbol", "")).isdigit():
                out[int(iv["symbol"])] = raw_symbol
    return out


def _flags(dbn_flags: np.ndarray) -> np.ndarray:
    f = np.zeros(len(dbn_flags), np.uint8)
    for theirs, ours in ((_DBN_SNAPSHOT, ev.Flag.SNAPSHOT), (_DBN_BAD_TS, ev.Flag.BAD_TS_RECV),
                         (_DBN_LAST, ev.Flag.LAST)):  # fmt: skip
        f[(dbn_flags & theirs) != 0] |= np.uint8(ours)
    return f


def _codes(chars: np.ndarray, table: dict[bytes, int], what: str, where: str) -> np.ndarray:
    out = np.zeros(len(chars), np.uint8)
    known = np.zeros(len(chars), bool)
    for ch, code in table.items():
        hit = chars == ch
        out[hit] = code
        known |= hit
    if not known.all():
        i = int(np.flatnonzero(~known)[0])
        raise ValueError(f"{where}: record {i} has unknown {what} {chars[i]!r}")
    return out


class _Ticks:
    """Price -> ticks per instrument, exact."""

    def __init__(self, table: InstrumentTable) -> None:
        self.table = table
        self.inc: dict[int, int] = {}
        for inst in table:
            self.inc[inst.instrument_id] = int(inst.tick_size * _PX_SCALE)

    def infer(self, iid: np.ndarray, prices: np.ndarray, names: dict[int, str]) -> None:
        """Instruments without a definition get the largest step dividing all
        their prices (exact, maybe coarser than the venue's tick)."""
        ok = prices != UNDEF_PRICE
        for i in np.unique(iid):
            if int(i) in self.inc:
                continue
            p = prices[(iid == i) & ok]
            step = int(np.gcd.reduce(p)) if len(p) else 1
            step = abs(step) or 1
            self.inc[int(i)] = step
            tick = _plain(Decimal(step) / _PX_SCALE)
            self.table.add(
                Instrument(
                    instrument_id=int(i),
                    symbol=names.get(int(i), str(int(i))),
                    tick_size=tick,
                    price_precision=max(0, -tick.as_tuple().exponent),
                    lot_size=Decimal(1),
                )
            )

    def convert(self, iid: np.ndarray, prices: np.ndarray, where: str, what: str) -> np.ndarray:
        uniq, inv = np.unique(iid, return_inverse=True)
        inc = np.array([self.inc[int(u)] for u in uniq], np.int64)[inv]
        undef = prices == UNDEF_PRICE
        safe = np.where(undef, 0, prices)
        q, r = np.divmod(safe, inc)
        if np.any(r):
            i = int(np.flatnonzero(r)[0])
            raise ValueError(
                f"{where}: record {i} {what} {prices[i] / _PX_SCALE} is off the tick grid "
                f"{inc[i] / _PX_SCALE} of instrument {iid[i]}"
            )
        return np.where(undef, ev.UNDEF_PX, q)


def _header(out: np.ndarray, raw: np.ndarray) -> None:
    out["ts_event"] = raw["ts_event"].astype(np.int64)
    out["ts_recv"] = raw["ts_recv"].astype(np.int64)
    out["seq"] = raw["sequence"]
    out["instrument_id"] = raw["instrument_id"]
    out["source_id"] = raw["publisher_id"]
    out["flags"] = _flags(raw["flags"])


def import_dbn(paths: list[str | Path]) -> Imported:
    """Import DBN files (definitions and data in any order) into one result."""
    loaded = [(str(p), *records(p)) for p in paths]
    table = InstrumentTable()
    for where, _meta, _raw, defs, _seen in loaded:
        for d in defs:
            inst = _instrument(d)
            if inst.instrument_id in table:
                if table[inst.instrument_id] != inst:
                    raise ValueError(f"{where}: instrument {inst.instrument_id} redefined: {inst}")
                continue
            table.add(inst)
    ticks = _Ticks(table)
    all_iid, all_px = [], []
    for _, _, raws, _, _ in loaded:
        for r in raws.values():
            for name in ("price", "bid_px", "ask_px"):
                if name in r.dtype.names:
                    all_iid.append(r["instrument_id"])
                    all_px.append(r[name])
    if all_iid:
        names = {k: v for _, meta, *_ in loaded for k, v in symbols_by_id(meta).items()}
        ticks.infer(np.concatenate(all_iid), np.concatenate(all_px), names)
    quotes, trades, book = [], [], []
    stats: dict[str, dict] = {}
    for where, meta, raws, defs, seen in loaded:
        actions: dict[str, dict[str, int]] = {}
        for rtype, raw in raws.items():
            acts = Counter(raw["action"].tobytes().decode("ascii"))
            actions[{0: "trades", 1: "mbp-1", 0xA0: "mbo"}[rtype]] = dict(sorted(acts.items()))
        if RTYPE_MBP1 in raws:
            q, t = _mbp1(raws[RTYPE_MBP1], ticks, where)
            quotes.append(q)
            trades.append(t)
        if RTYPE_MBP0 in raws:
            trades.append(_trades(raws[RTYPE_MBP0], ticks, where))
        if RTYPE_MBO in raws:
            book.append(_mbo(raws[RTYPE_MBO], ticks, where))
        skipped = {k: v for k, v in seen.items() if k not in RAW_DTYPES and k != RTYPE_DEF}
        stats[Path(where).name] = {
            "schema": str(meta.schema) if meta.schema is not None else "mixed",
            "records_by_rtype": {f"{k:#x}": v for k, v in sorted(seen.items())},
            "skipped_records": sum(skipped.values()),
            "definitions": len(defs),
            "actions": actions,
        }
    if not quotes and not trades and not book and not len(table):
        schemas = sorted({v["schema"] for v in stats.values()})
        raise ValueError(
            f"{', '.join(str(p) for p in paths)}: nothing to import from schema(s) "
            f"{', '.join(schemas)}; supported: {SUPPORTED}"
        )
    out = Imported(instruments=table)
    if quotes:
        out.quotes = sort_by_recv(np.concatenate(quotes))
    if trades:
        out.trades = sort_by_recv(np.concatenate(trades))
    if book:
        out.book = sort_by_recv(np.concatenate(book))
    out.stats = {
        "dbn": stats,
        "latency_ns": latency_by_type(out.quotes, out.trades, out.book),
    }
    return out


def _mbp1(raw: np.ndarray, ticks: _Ticks, where: str) -> tuple[np.ndarray, np.ndarray]:
    q = ev.empty(ev.RecordType.QUOTE, len(raw))
    _header(q, raw)
    iid = raw["instrument_id"]
    q["bid_px"] = ticks.convert(iid, raw["bid_px"], where, "bid_px_00")
    q["ask_px"] = ticks.convert(iid, raw["ask_px"], where, "ask_px_00")
    q["bid_sz"] = raw["bid_sz"]
    q["ask_sz"] = raw["ask_sz"]
    return q, _trades(raw[raw["action"] == b"T"], ticks, where)


def _trades(raw: np.ndarray, ticks: _Ticks, where: str) -> np.ndarray:
    t = ev.empty(ev.RecordType.TRADE, len(raw))
    _header(t, raw)
    t["px"] = ticks.convert(raw["instrument_id"], raw["price"], where, "trade price")
    t["sz"] = raw["size"]
    t["aggressor"] = _codes(raw["side"], _SIDES, "side", where)  # DBN: the aggressor's side
    return t


def _mbo(raw: np.ndarray, ticks: _Ticks, where: str) -> np.ndarray:
    keep = raw["action"] != b"N"  # "none": carries flags only, no book change
    raw = raw[keep]
    b = ev.empty(ev.RecordType.BOOK_DELTA, len(raw))
    _header(b, raw)
    b["px"] = ticks.convert(raw["instrument_id"], raw["price"], where, "price")
    b["px"][raw["price"] == UNDEF_PRICE] = 0  # clears and some trades carry no price
    b["sz"] = raw["size"]
    b["order_id"] = raw["order_id"]
    b["side"] = _codes(raw["side"], _SIDES, "side", where)
    b["action"] = _codes(raw["action"], _MBO_ACTIONS, "action", where)
    return b
