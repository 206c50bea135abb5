"""Order books and importers on the real recordings (../shared/realdata).

    .venv/bin/python bench/bench_books.py [--deltas 3000000] [--runs 3]
        [--hftbacktest-python PATH] [--nautilus-python PATH] [--json PATH]

Every figure and its baseline are measured once in each of --runs runs (after one warm-up
pass, so numba's compile is never timed), and printed as the median (min-max) over the runs;
a ratio to a baseline is taken within each run.

Books: the Binance ETHUSDT L2 deltas and the CME ESM4 MBO (L3) deltas, each looped (the
loops start with the snapshot's CLEAR) to about --deltas, applied with the top of book
written after every delta: deltas/s on the wall clock and per CPU second, and the per-delta
cost over 4096-delta batches (p50/p99/p99.9 ns); baseline: the plain dict-of-levels /
dict-of-orders Python books of `feeds/books/reference.py` on one pass of the same deltas (top
read after each). With `--nautilus-python` (an interpreter that has nautilus_trader installed,
kept out of redline's environment): NautilusTrader's `OrderBook` (L2_MBP) on the Binance
file's deltas (not looped) in a subprocess, the deltas built as its `OrderBookDelta`s before
the clock starts, each applied by `apply_delta` and best bid/ask price and size read after
each; one warm-up pass, then one timed pass on a fresh book; against ours on the same
deltas, same run, top written after each. Its top after every delta is checked against ours.

Imports: the Binance capture (gunzip alone, decode alone, and the file to arrays:
`import_binance`, which scans while it unpacks, what `redline import` does before writing
Parquet) and DBN (MBP-1 + MBO files), events/s and MB/s; baselines: a line-by-line orjson
import built like hftbacktest's converter, same run, and, with `--hftbacktest-python` (an
interpreter that has hftbacktest installed, kept out of redline's environment),
hftbacktest's own `binancefutures.convert` on the same file in a subprocess: its first call
(numba compile included) and a second, warm call. Like for like is warm against warm, both
from the .gz file to arrays in memory. Also prints the real-data match rates (Binance
bookTicker by update id, MBO uncrossed). The baselines live in `book_baselines.py`.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

import numpy as np
from book_baselines import hftbacktest_convert, nautilus_book, orjson_baseline
from timing import Runs, add_runs_arg, fmt, percentiles, table

from redline.feeds.books.check import match_top_to_quotes
from redline.feeds.books.l2 import TOP_DTYPE, L2Book
from redline.feeds.books.l3 import L3Book
from redline.feeds.books.reference import DictL2Book, DictL3Book
from redline.feeds.events import BookAction, Flag
from redline.feeds.importers import binance as bi
from redline.feeds.importers import compressed
from redline.feeds.importers import dbn as di
from redline.feeds.realdata import realdata_dir

BATCH = 4096


def looped(deltas: np.ndarray, target: int) -> np.ndarray:
    """`deltas` repeated to about `target`, each copy starting from an empty book: a CLEAR is
    put in front when the file does not start with one (an MBO file may open with its snapshot
    and no CLEAR; looped as it was, every copy re-added its orders and the book ended crossed
    for a million deltas)."""
    if deltas["action"][0] != BookAction.CLEAR:
        clear = deltas[:1].copy()
        clear["action"], clear["flags"], clear["sz"] = BookAction.CLEAR, Flag.LAST, 0
        deltas = np.concatenate([clear, deltas])
    return np.concatenate([deltas] * max(1, target // len(deltas)))


def bench_import_folder(folder: str, runs: int) -> int:
    """`--book DIR`: any `redline import` folder's book deltas through `Books` (one L2 or L3 book
    per instrument, by the public API), one pass per run after a warm-up: deltas/s, crossed."""
    from redline.feeds.books.per_instrument import Books
    from redline.feeds.events import RecordType
    from redline.feeds.replay.reader import replay

    parts = [r for t, r in replay([folder]) if t == RecordType.BOOK_DELTA]
    if not parts:
        raise SystemExit(f"{folder}: no book deltas (BOOK_DELTA records) to measure")
    deltas = np.concatenate(parts)
    Books().apply(deltas[:BATCH])
    session = Runs(runs)
    for _ in session:
        books = Books()
        t0, c0 = time.perf_counter_ns(), time.process_time_ns()
        for i in range(0, len(deltas), BATCH):
            books.apply(deltas[i : i + BATCH])
        wall, cpu = time.perf_counter_ns() - t0, time.process_time_ns() - c0
        session.add({"deltas": len(deltas), "deltas_per_s": len(deltas) / (wall / 1e9),
                     "deltas_per_cpu_s": len(deltas) / (cpu / 1e9),
                     "crossed": sum(books[i].stats["crossed"] for i in
                                    np.unique(deltas["instrument_id"]).tolist())})  # fmt: skip
    a = session.finish(None)
    print(f"{folder}: {len(deltas):,} deltas, {len(np.unique(deltas['instrument_id']))} "
          f"instruments: {fmt(a['deltas_per_s'], '.2f', 1e6)} M deltas/s wall, "
          f"{fmt(a['deltas_per_cpu_s'], '.2f', 1e6)} per CPU s, crossed {fmt(a['crossed'])}")  # fmt: skip
    return 0


def bench_book(make, deltas: np.ndarray) -> dict:
    """One pass: deltas/s (wall clock, and the process CPU time, which a loaded machine
    disturbs less), and ns/delta per 4096-delta batch. Warmed up by the caller."""
    top = np.empty(len(deltas), TOP_DTYPE)
    per_delta = []
    gc.disable()
    try:
        book = make()
        t0, c0 = time.perf_counter_ns(), time.process_time_ns()
        for i in range(0, len(deltas), BATCH):
            t = time.perf_counter_ns()
            book.apply(deltas[i : i + BATCH], top[i : i + BATCH])
            per_delta.append((time.perf_counter_ns() - t) / len(deltas[i : i + BATCH]))
        wall, cpu = time.perf_counter_ns() - t0, time.process_time_ns() - c0
    finally:
        gc.enable()
    return {
        "deltas": len(deltas),
        "deltas_per_s": len(deltas) / (wall / 1e9),
        "deltas_per_cpu_s": len(deltas) / (cpu / 1e9),
        "ns_per_delta_by_batch": percentiles(np.array(per_delta)),
        "crossed": book.stats["crossed"],
    }


def bench_dict_book(book, deltas: np.ndarray, l3: bool) -> dict:
    """The plain Python book: one call per delta, top of book read after each."""
    cols = [deltas[c].tolist() for c in ("side", "action", "px", "sz", "order_id")]
    t0, c0 = time.perf_counter_ns(), time.process_time_ns()
    if l3:
        for side, action, px, sz, oid in zip(*cols, strict=True):
            book.apply(side, action, px, sz, oid)
            book.best()
    else:
        for side, action, px, sz, _ in zip(*cols, strict=True):
            book.apply(side, action, px, sz)
            book.best()
    dt, cpu = (time.perf_counter_ns() - t0) / 1e9, (time.process_time_ns() - c0) / 1e9
    return {
        "deltas": len(deltas),
        "deltas_per_s": len(deltas) / dt,
        "deltas_per_cpu_s": len(deltas) / cpu,
    }


def timed(fn) -> tuple[float, float, object]:
    """One call: wall seconds, process CPU seconds (all threads), result."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t, time.process_time() - c, out


def measure(cap, text: bytes, mbo_files, mbp_files, l2_deltas, l3_deltas, book, mbo, inst,
            hft_python: str | None, nt_python: str | None) -> dict:  # fmt: skip
    """One run: every figure and its baseline, once each."""
    res: dict = {}
    t_gunzip, c_gunzip, _ = timed(lambda: bi.read_bytes(cap))
    t_bin, c_bin, imp = timed(lambda: bi.import_bytes(text))
    t_file, c_file, _ = timed(lambda: bi.import_binance(cap))  # unpacks and scans at once
    base_rows, t_base, c_base = orjson_baseline(text)
    res["import_binance"] = {
        "mb": len(text) / 1e6,
        "events": imp.events,
        "seconds": t_bin,
        "cpu_seconds": c_bin,
        "gunzip_seconds": t_gunzip,
        "gunzip_cpu_seconds": c_gunzip,
        "mb_per_s": len(text) / 1e6 / t_bin,
        "events_per_s": imp.events / t_bin,
        "events_per_cpu_s": imp.events / c_bin,
        "file_seconds": t_file,
        "file_cpu_seconds": c_file,
        "events_per_s_file": imp.events / t_file,
        "events_per_cpu_s_file": imp.events / c_file,
        "orjson_rows": base_rows,
        "orjson_rows_per_s": base_rows / t_base,
        "orjson_rows_per_cpu_s": base_rows / c_base,
        "x_orjson": (imp.events / t_bin) / (base_rows / t_base),
    }
    if hft_python:
        h = hftbacktest_convert(hft_python, cap)
        # the same work: .gz file -> arrays in memory
        h["x_ours_warm_vs_its_warm"] = h["warm_seconds"] / t_file
        h["x_ours_warm_vs_its_warm_cpu"] = h["warm_cpu_seconds"] / c_file
        h["x_ours_warm_vs_its_cold"] = h["cold_seconds"] / t_file
        res["hftbacktest"] = h
    if nt_python:
        nt = nautilus_book(nt_python, book, inst)
        ours = bench_book(L2Book, book)  # the same deltas, not looped, this run
        nt["ours_deltas_per_s"], nt["ours_deltas_per_cpu_s"] = (
            ours["deltas_per_s"], ours["deltas_per_cpu_s"])  # fmt: skip
        nt["x_ours_wall"] = ours["deltas_per_s"] / nt["deltas_per_s"]
        nt["x_ours_cpu"] = ours["deltas_per_cpu_s"] / nt["deltas_per_cpu_s"]
        res["nautilus"] = nt
    dbn_bytes = sum(len(di.read_dbn(p)[1]) for p in mbo_files + mbp_files)
    t_dbn, c_dbn, dimp = timed(lambda: [di.import_dbn(mbo_files), di.import_dbn(mbp_files)])
    dbn_events = sum(x.events for x in dimp)
    res["import_dbn"] = {
        "mb": dbn_bytes / 1e6,
        "events": dbn_events,
        "seconds": t_dbn,
        "cpu_seconds": c_dbn,
        "mb_per_s": dbn_bytes / 1e6 / t_dbn,
        "events_per_s": dbn_events / t_dbn,
        "events_per_cpu_s": dbn_events / c_dbn,
    }
    res["l2"] = bench_book(L2Book, l2_deltas)
    res["l2_dict_baseline"] = bench_dict_book(DictL2Book(), book, l3=False)
    res["l3"] = bench_book(L3Book, l3_deltas)
    res["l3_dict_baseline"] = bench_dict_book(DictL3Book(), looped(mbo, 200_000), l3=True)
    for name in ("l2", "l3"):
        ours, base = res[name], res[f"{name}_dict_baseline"]
        ours["x_dict_cpu"] = ours["deltas_per_cpu_s"] / base["deltas_per_cpu_s"]
        ours["x_dict_wall"] = ours["deltas_per_s"] / base["deltas_per_s"]
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deltas", type=int, default=3_000_000)
    add_runs_arg(ap)
    ap.add_argument(
        "--hftbacktest-python",
        metavar="PATH",
        help="a Python with hftbacktest installed: its converter is timed on the same file",
    )
    ap.add_argument(
        "--nautilus-python",
        metavar="PATH",
        help="a Python with nautilus_trader installed: its L2 OrderBook is timed on the same deltas",
    )
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--book", metavar="DIR", help="only: any import folder's books, by the API")
    args = ap.parse_args(argv)
    if args.book:
        return bench_import_folder(args.book, args.runs)
    root = realdata_dir()
    if root is None:
        print("no ../shared/realdata (or $REDLINE_REALDATA): nothing to measure", file=sys.stderr)
        return 0
    cap = root / "binance" / "ethusdt_20240808.gz"
    cme = root / "cme"
    mbo_files = [cme / "orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.dbn.zst",
                 cme / "orderbooks_definition.dbn.zst"]  # fmt: skip
    mbp_files = [cme / "futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.dbn.zst",
                 cme / "futures_definition.dbn.zst"]  # fmt: skip
    session = Runs(args.runs)

    # --- warm-up (compiled code loaded, caches hot) and the real-data checks, once ---
    text = bi.read_bytes(cap)
    imp = bi.import_bytes(text)
    [di.import_dbn(mbo_files), di.import_dbn(mbp_files)]
    checks: dict = {"inflater": compressed.INFLATER}
    top = L2Book().apply(imp.book)
    checks["binance_match"] = match_top_to_quotes(imp.book, top, imp.quotes)
    checks["binance_match"]["gaps"] = imp.stats["binance"]["gaps"]
    mbo = di.import_dbn(mbo_files).book
    l3 = L3Book()
    l3_top = l3.apply(mbo)
    last = (mbo["flags"] & Flag.LAST) != 0
    checks["mbo_check"] = {"crossed": l3.stats["crossed"],
                           "crossed_rows_at_last": int(l3_top["crossed"][last].sum()),
                           "orders": l3.stats["orders"]}  # fmt: skip
    l2_deltas = looped(imp.book, args.deltas)
    l3_deltas = looped(mbo, args.deltas)
    bi.import_binance(cap)
    for make, d in ((L2Book, l2_deltas), (L3Book, l3_deltas)):
        make().apply(d[:BATCH], np.empty(BATCH, TOP_DTYPE))

    for _ in session:
        session.add(measure(cap, text, mbo_files, mbp_files, l2_deltas, l3_deltas, imp.book,
                            mbo, next(iter(imp.instruments)), args.hftbacktest_python,
                            args.nautilus_python))  # fmt: skip
    a = session.finish(args.json, extra={"checks": checks})
    report(a, checks, args.runs)
    return 0


def report(a: dict, checks: dict, n: int) -> None:
    b, d = a["import_binance"], a["import_dbn"]
    mega = {"spec": ".2f", "scale": 1e6}
    rows = [
        ["Binance import, decode (gunzipped bytes -> arrays), events/s", fmt(b["events_per_s"], **mega),
         fmt(b["events_per_cpu_s"], **mega), f"{b['events']['median']:,.0f} events, "
         f"{b['mb']['median']:.1f} MB: {fmt(b['mb_per_s'], '.0f')} MB/s"],
        ["Binance import, .gz file -> arrays (unpack + scan overlap), events/s", fmt(b["events_per_s_file"], **mega),
         fmt(b["events_per_cpu_s_file"], **mega), f"{fmt(b['file_seconds'], '.0f', 1e-3)} ms; gunzip alone "
         f"{fmt(b['gunzip_seconds'], '.0f', 1e-3)} ms, {fmt(b['gunzip_cpu_seconds'], '.0f', 1e-3)} ms CPU"],
        ["  baseline: orjson line by line, rows/s", fmt(b["orjson_rows_per_s"], **mega),
         fmt(b["orjson_rows_per_cpu_s"], **mega), f"decode / orjson (wall): {fmt(b['x_orjson'], '.1f', unit='x')}"],
        ["DBN import (MBO + MBP-1 files), events/s", fmt(d["events_per_s"], **mega),
         fmt(d["events_per_cpu_s"], **mega), f"{d['events']['median']:,.0f} events, {fmt(d['mb_per_s'], '.0f')} MB/s"],
    ]  # fmt: skip
    if "hftbacktest" in a:
        h = a["hftbacktest"]
        rows.append(["  baseline: hftbacktest convert, warm, rows/s", fmt(h["warm_rows_per_s"], **mega),
                     "–", f"{h['rows']['median']:,.0f} rows; warm {fmt(h['warm_seconds'], '.2f')} s, "
                     f"first call {fmt(h['cold_seconds'], '.2f')} s"])  # fmt: skip
        rows.append(["  ours (.gz file -> arrays) vs hftbacktest, same file, time ratio",
                     f"warm vs warm {fmt(h['x_ours_warm_vs_its_warm'], '.1f', unit='x')}",
                     f"{fmt(h['x_ours_warm_vs_its_warm_cpu'], '.1f', unit='x')}",
                     f"warm vs its first call {fmt(h['x_ours_warm_vs_its_cold'], '.1f', unit='x')}"])  # fmt: skip
    for name in ("l2", "l3"):
        r, base = a[name], a[f"{name}_dict_baseline"]
        q = r["ns_per_delta_by_batch"]
        rows.append([f"{name.upper()} book, top after each delta, deltas/s", fmt(r["deltas_per_s"], **mega),
                     fmt(r["deltas_per_cpu_s"], **mega), f"{r['deltas']['median']:,.0f} deltas; ns/delta "
                     f"by {BATCH}-batch p50 {fmt(q['p50'])} p99 {fmt(q['p99'])} p99.9 {fmt(q['p999'])}"])  # fmt: skip
        rows.append(["  baseline: dict book, deltas/s", fmt(base["deltas_per_s"], **mega),
                     fmt(base["deltas_per_cpu_s"], **mega), f"ours / dict: per CPU s "
                     f"{fmt(r['x_dict_cpu'], '.0f', unit='x')}, wall {fmt(r['x_dict_wall'], '.0f', unit='x')}"])  # fmt: skip
    if "nautilus" in a:
        nt = a["nautilus"]
        rows.append(["  baseline: NautilusTrader OrderBook L2_MBP, warm, deltas/s", fmt(nt["deltas_per_s"], **mega),
                     fmt(nt["deltas_per_cpu_s"], **mega), f"{nt['deltas']['median']:,.0f} Binance deltas (not looped); "
                     f"its top = ours after {fmt(nt['top_same_as_ours'], '.2%')} of them"])  # fmt: skip
        rows.append(["  L2 book on the same deltas, same run, deltas/s", fmt(nt["ours_deltas_per_s"], **mega),
                     fmt(nt["ours_deltas_per_cpu_s"], **mega), f"ours / NautilusTrader: wall "
                     f"{fmt(nt['x_ours_wall'], '.0f', unit='x')}, per CPU s {fmt(nt['x_ours_cpu'], '.0f', unit='x')}"])  # fmt: skip
    table(
        f"median (min-max) of {n} runs; rates in millions",
        ["figure", "wall", "per CPU s", "notes"],
        rows,
    )
    m = checks["binance_match"]
    print(f"\nbinance ETHUSDT vs bookTicker by update id: {m['events_checked']:,} depth events, "
          f"price {m['price_match']:.2%}, size {m['size_match']:.2%}, gaps {m['gaps']}, "
          f"crossed {m['crossed']}")  # fmt: skip
    print(f"gzip inflated by {checks['inflater']}")
    mc = checks["mbo_check"]
    print(f"CME ESM4 MBO: crossed {mc['crossed']}, {mc['orders']:,} orders resting")


if __name__ == "__main__":
    sys.exit(main())
