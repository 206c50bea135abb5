"""Order books and importers on the real recordings (../shared/realdata).

    .venv/bin/python bench/bench_books.py [--deltas 3000000] [--runs 3]
        [--hftbacktest-python PATH] [--json PATH]

Every figure and its baseline are measured once in each of --runs runs (after one warm-up
pass, so numba's compile is never timed), and printed as the median (min-max) over the runs;
a ratio to a baseline is taken within each run.

Books: the Binance ETHUSDT L2 deltas and the CME ESM4 MBO (L3) deltas, each looped (the
loops start with the snapshot's CLEAR) to about --deltas, applied with the top of book
written after every delta: deltas/s on the wall clock and per CPU second, and the per-delta
cost over 4096-delta batches (p50/p99/p99.9 ns); baseline: the plain dict-of-levels /
dict-of-orders Python books of `feeds/books/reference.py` on one pass of the same deltas (top
read after each). NautilusTrader is not a dependency; the script says so rather than
measuring it.

Imports: the Binance capture (gunzip alone, decode alone, and both: what `redline import`
does before writing Parquet) and DBN (MBP-1 + MBO files), events/s and MB/s; baselines: a
line-by-line orjson import built like hftbacktest's converter, same run, and, with
`--hftbacktest-python` (an interpreter that has hftbacktest installed, kept out of redline's
environment), hftbacktest's own `binancefutures.convert` on the same file in a subprocess:
its first call (numba compile included) and a second, warm call. Like for like is warm
against warm, both from the .gz file to arrays in memory. Also prints the real-data match
rates (Binance bookTicker by update id, MBO uncrossed).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time

import numpy as np
import orjson
from timing import Runs, add_runs_arg, fmt, percentiles, table

from redline.feeds.books.check import match_top_to_quotes
from redline.feeds.books.l2 import TOP_DTYPE, L2Book
from redline.feeds.books.l3 import L3Book
from redline.feeds.books.reference import DictL2Book, DictL3Book
from redline.feeds.events import BookAction, Flag
from redline.feeds.importers import binance as bi
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


def nautilus_installed() -> bool:
    try:
        import nautilus_trader  # noqa: F401
    except ImportError:
        return False
    return True


def orjson_baseline(data: bytes) -> tuple[int, float, float]:
    """hftbacktest-style import: orjson per line, a Python row per level/quote/trade.
    Returns (rows, wall s, CPU s)."""
    t0, c0 = time.perf_counter(), time.process_time()
    rows = []
    for line in data.splitlines():
        if not line:
            continue
        ts, js = line.split(b" ", 1)
        msg = orjson.loads(js)
        recv = int(ts)
        d = msg.get("data", msg)
        e = d.get("e")
        if e == "depthUpdate":
            for px, qty in d["b"]:
                rows.append((1, recv, d["T"], float(px), float(qty)))
            for px, qty in d["a"]:
                rows.append((2, recv, d["T"], float(px), float(qty)))
        elif e == "bookTicker":
            rows.append((3, recv, d["T"], float(d["b"]), float(d["B"])))
            rows.append((4, recv, d["T"], float(d["a"]), float(d["A"])))
        elif e == "trade":
            rows.append((5, recv, d["T"], float(d["p"]), float(d["q"])))
        elif "lastUpdateId" in d:
            for px, qty in d["bids"]:
                rows.append((6, recv, d["T"], float(px), float(qty)))
            for px, qty in d["asks"]:
                rows.append((7, recv, d["T"], float(px), float(qty)))
    return len(rows), time.perf_counter() - t0, time.process_time() - c0


HFT_PROBE = r"""
import json, sys, time
from hftbacktest.data.utils import binancefutures as bf
out = []
for _ in range(2):  # the first call compiles (numba), the second is warm
    t, c = time.perf_counter(), time.process_time()
    rows = len(bf.convert(sys.argv[1], opt="t", buffer_size=5_000_000))
    out.append({"rows": rows, "seconds": time.perf_counter() - t,
                "cpu_seconds": time.process_time() - c})
print(json.dumps(out))
"""


def hftbacktest_convert(python: str, path) -> dict:
    """hftbacktest's Binance futures converter on `path` (bookTicker included, as ours),
    in a fresh process of `python`: cold (first) and warm (second) call."""
    done = subprocess.run(
        [python, "-c", HFT_PROBE, str(path)], capture_output=True, text=True, check=True
    )
    cold, warm = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "rows": warm["rows"],
        "cold_seconds": cold["seconds"],
        "warm_seconds": warm["seconds"],
        "warm_cpu_seconds": warm["cpu_seconds"],
        "warm_rows_per_s": warm["rows"] / warm["seconds"],
    }


def timed(fn) -> tuple[float, float, object]:
    """One call: wall seconds, process CPU seconds (all threads), result."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t, time.process_time() - c, out


def measure(cap, text: bytes, mbo_files, mbp_files, l2_deltas, l3_deltas, book, mbo,
            hft_python: str | None) -> dict:  # fmt: skip
    """One run: every figure and its baseline, once each."""
    res: dict = {}
    t_gunzip, c_gunzip, _ = timed(lambda: bi.read_bytes(cap))
    t_bin, c_bin, imp = timed(lambda: bi.import_bytes(text))
    base_rows, t_base, c_base = orjson_baseline(text)
    res["import_binance"] = {
        "mb": len(text) / 1e6,
        "events": imp.events,
        "seconds": t_bin,
        "cpu_seconds": c_bin,
        "gunzip_seconds": t_gunzip,
        "mb_per_s": len(text) / 1e6 / t_bin,
        "events_per_s": imp.events / t_bin,
        "events_per_cpu_s": imp.events / c_bin,
        "events_per_s_with_gunzip": imp.events / (t_gunzip + t_bin),
        "events_per_cpu_s_with_gunzip": imp.events / (c_gunzip + c_bin),
        "orjson_rows": base_rows,
        "orjson_rows_per_s": base_rows / t_base,
        "orjson_rows_per_cpu_s": base_rows / c_base,
        "x_orjson": (imp.events / t_bin) / (base_rows / t_base),
    }
    if hft_python:
        h = hftbacktest_convert(hft_python, cap)
        ours = t_gunzip + t_bin  # the same work: .gz file -> arrays in memory
        h["x_ours_warm_vs_its_warm"] = h["warm_seconds"] / ours
        h["x_ours_warm_vs_its_warm_cpu"] = h["warm_cpu_seconds"] / (c_gunzip + c_bin)
        h["x_ours_warm_vs_its_cold"] = h["cold_seconds"] / ours
        res["hftbacktest"] = h
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
    checks: dict = {}
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
    checks["nautilus_installed"] = nautilus_installed()
    l2_deltas = looped(imp.book, args.deltas)
    l3_deltas = looped(mbo, args.deltas)
    for make, d in ((L2Book, l2_deltas), (L3Book, l3_deltas)):
        make().apply(d[:BATCH], np.empty(BATCH, TOP_DTYPE))

    for _ in session:
        session.add(measure(cap, text, mbo_files, mbp_files, l2_deltas, l3_deltas, imp.book,
                            mbo, args.hftbacktest_python))  # fmt: skip
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
        ["Binance import, gunzip + decode, events/s", fmt(b["events_per_s_with_gunzip"], **mega),
         fmt(b["events_per_cpu_s_with_gunzip"], **mega), f"gunzip alone {fmt(b['gunzip_seconds'], '.0f', 1e-3)} ms"],
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
        rows.append(["  ours (gunzip + decode) vs hftbacktest, same file, time ratio",
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
    table(
        f"median (min-max) of {n} runs; rates in millions",
        ["figure", "wall", "per CPU s", "notes"],
        rows,
    )
    m = checks["binance_match"]
    print(f"\nbinance ETHUSDT vs bookTicker by update id: {m['events_checked']:,} depth events, "
          f"price {m['price_match']:.2%}, size {m['size_match']:.2%}, gaps {m['gaps']}, "
          f"crossed {m['crossed']}")  # fmt: skip
    mc = checks["mbo_check"]
    print(f"CME ESM4 MBO: crossed {mc['crossed']}, {mc['orders']:,} orders resting")
    if not checks["nautilus_installed"]:
        print("NautilusTrader: not installed here, not measured")
    else:
        print("NautilusTrader: installed, but this script does not drive it yet")


if __name__ == "__main__":
    sys.exit(main())
