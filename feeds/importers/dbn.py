"""Databento DBN -> redline quotes, trades, L3 book deltas and instruments.

- MBP-1 / TBBO -> one QUOTE per record (the book's top after the event), and
  a TRADE for each trade record (action T); trades (MBP-0) -> TRADE;
  MBO -> BOOK_DELTA with order ids (A add, C cancel, M modify, R clear,
  F fill, T trade); definitions -> the instrument table (tick size, precision,
  multiplier).
- Kept as they are: `ts_event`, `ts_recv`, `sequence` (as `seq`, recorded as shared
  across instruments: `semantics.py`), the publisher (as `source_id`). DBN's SNAPSHOT, BAD_TS_RECV and LAST flags map
  onto ours; flagged records are kept, and left out of the latency figures.
- Prices are DBN's 1e-9 fixed point divided by the instrument's tick
  (`min_price_increment` from a definition given in the same import; without
  one, the largest step that divides every price seen). A price off that
  grid is an error, never rounded (`dbn_prices.py`).
- A record two files both hold is written once (`duplicates.py`): a trades
  file's trade wins over the copy an MBP-1/TBBO file carries (action T),
  and the repeats dropped are counted per file. TBBO and MBP-1 quotes
  (the book before a trade, after an event) are refused in one import.
- A file cut short or corrupt (zstd frame or record stream) is an error
  saying how many records were read and where the break is.

`databento-dbn` decodes the metadata and the definitions (variable, rare
records). The hot schemas are fixed-width C structs: they are viewed as numpy
records straight from the decompressed bytes, which the tests check field
by field against the package's own decoder.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import databento_dbn as dbn
import numba as nb
import numpy as np

from redline.feeds import events as ev
from redline.feeds.importers import compressed
from redline.feeds.importers import semantics as sem
from redline.feeds.importers.dbn_prices import UNDEF_PRICE, Ticks, instrument
from redline.feeds.importers.duplicates import drop_repeats
from redline.feeds.importers.output import Imported, latency_by_type, sort_by_recv
from redline.feeds.instruments import InstrumentTable

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
    zstd-compressed or not. A file cut short or corrupt is a ValueError that
    says how many records were read before the break and where it is."""
    try:
        data = compressed.decompressed(path)
    except compressed.CutShort as exc:
        done = _complete_records(exc.partial)
        raise ValueError(
            f"{path}: read {done:,} complete records, then {exc}; nothing imported"
        ) from None
    if data[:3] != b"DBN":
        raise ValueError(f"{path}: not a DBN stream (starts {data[:4]!r})")
    if not 1 <= data[3] <= 3:
        raise ValueError(f"{path}: DBN version {data[3]} is not supported (1-3 are)")
    end = _metadata_end(data)
    if end > len(data):
        raise ValueError(
            f"{path}: the DBN metadata needs {end:,} bytes and the stream ends at byte "
            f"{len(data):,} (the file is cut short); nothing imported"
        )
    meta = dbn.Metadata.decode(data[:end])
    return meta, data, data[end:]


def _metadata_end(data: bytes) -> int:
    return 8 + int.from_bytes(data[4:8], "little") if len(data) >= 8 else 8


def _complete_records(data: bytes) -> int:
    """Whole records in a DBN stream that breaks off (0 when its metadata is not whole)."""
    end = _metadata_end(data)
    if data[:3] != b"DBN" or end > len(data):
        return 0
    return len(_walk(np.frombuffer(data, np.uint8, offset=end))[0])


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
        with open(path, "rb") as f:
            unpacked = "unpacked " if compressed.compression(f.read(4)) else ""
        raise ValueError(
            f"{path}: read {len(offs):,} complete records, then a record cut short or corrupt "
            f"at byte {len(data) - len(body_bytes) + bad:,} of the {unpacked}DBN stream; "
            f"nothing imported"
        )
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
            inst = instrument(d)
            if inst.instrument_id in table:
                if table[inst.instrument_id] != inst:
                    raise ValueError(f"{where}: instrument {inst.instrument_id} redefined: {inst}")
                continue
            table.add(inst)
    ticks = Ticks(table)
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
    # (priority, file, records) per type; trades files come first for trades, so the copy an
    # MBP-1/TBBO file also carries (action T) is the one dropped as a repeat
    parts: dict[str, list[tuple[int, str, np.ndarray]]] = {"quotes": [], "trades": [], "book": []}
    stats: dict[str, dict] = {}
    for where, meta, raws, defs, seen in loaded:
        actions: dict[str, dict[str, int]] = {}
        for rtype, raw in raws.items():
            acts = Counter(raw["action"].tobytes().decode("ascii"))
            actions[{0: "trades", 1: "mbp-1", 0xA0: "mbo"}[rtype]] = dict(sorted(acts.items()))
        if RTYPE_MBP1 in raws:
            q, t = _mbp1(raws[RTYPE_MBP1], ticks, where)
            parts["quotes"].append((0, where, q))
            parts["trades"].append((1, where, t))
        if RTYPE_MBP0 in raws:
            parts["trades"].append((0, where, _trades(raws[RTYPE_MBP0], ticks, where)))
        if RTYPE_MBO in raws:
            parts["book"].append((0, where, _mbo(raws[RTYPE_MBO], ticks, where)))
        skipped = {k: v for k, v in seen.items() if k not in RAW_DTYPES and k != RTYPE_DEF}
        stats[Path(where).name] = {
            "schema": str(meta.schema) if meta.schema is not None else "mixed",
            "records_by_rtype": {f"{k:#x}": v for k, v in sorted(seen.items())},
            "skipped_records": sum(skipped.values()),
            "definitions": len(defs),
            "actions": actions,
            "repeats_dropped": {},
        }
    _refuse_mixed_quotes(stats)
    quotes, trades, book = (_once(parts[k], k, stats) for k in ("quotes", "trades", "book"))
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
    # a venue's sequence (a CME channel's) runs across its instruments and several records
    sources = [np.unique(a["source_id"]) for a in (out.quotes, out.trades, out.book)]
    out.sequence = {int(s): sem.SHARED for s in np.unique(np.concatenate(sources))}
    out.stats = {
        "dbn": stats,
        "repeats_dropped": sum(n for st in stats.values() for n in st["repeats_dropped"].values()),
        "latency_ns": latency_by_type(out.quotes, out.trades, out.book),
    }
    return out


def _refuse_mixed_quotes(stats: dict[str, dict]) -> None:
    """TBBO quotes are the book before each trade, MBP-1 quotes the book after each event:
    both share `seq` and `ts_recv`, so one quotes file of both would hold two books."""
    schemas = {name: st["schema"] for name, st in stats.items()}
    tbbo = [n for n, s in schemas.items() if s == "tbbo"]
    mbp1 = [n for n, s in schemas.items() if s == "mbp-1"]
    if tbbo and mbp1:
        raise ValueError(
            f"{tbbo[0]} (tbbo) and {mbp1[0]} (mbp-1): their quotes are the book before each "
            f"trade and after each event, and would mix in one file; import them separately"
        )


def _once(parts: list[tuple[int, str, np.ndarray]], kind: str, stats: dict) -> list[np.ndarray]:
    """The parts less the records an earlier part (by priority, then file order) holds; the
    repeats dropped are counted per file in `stats`."""
    parts = sorted(parts, key=lambda p: p[0])
    kept, dropped = drop_repeats([recs for _, _, recs in parts])
    for (_, where, _), n in zip(parts, dropped, strict=True):
        if n:
            reps = stats[Path(where).name]["repeats_dropped"]
            reps[kind] = reps.get(kind, 0) + n
    return kept


def _mbp1(raw: np.ndarray, ticks: Ticks, where: str) -> tuple[np.ndarray, np.ndarray]:
    q = ev.empty(ev.RecordType.QUOTE, len(raw))
    _header(q, raw)
    iid = raw["instrument_id"]
    q["bid_px"] = ticks.convert(iid, raw["bid_px"], where, "bid_px_00")
    q["ask_px"] = ticks.convert(iid, raw["ask_px"], where, "ask_px_00")
    q["bid_sz"] = raw["bid_sz"]
    q["ask_sz"] = raw["ask_sz"]
    return q, _trades(raw[raw["action"] == b"T"], ticks, where)


def _trades(raw: np.ndarray, ticks: Ticks, where: str) -> np.ndarray:
    t = ev.empty(ev.RecordType.TRADE, len(raw))
    _header(t, raw)
    t["px"] = ticks.convert(raw["instrument_id"], raw["price"], where, "trade price")
    t["sz"] = raw["size"]
    t["aggressor"] = _codes(raw["side"], _SIDES, "side", where)  # DBN: the aggressor's side
    return t


def _mbo(raw: np.ndarray, ticks: Ticks, where: str) -> np.ndarray:
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
