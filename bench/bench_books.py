"""Order books and importers on the real recordings (../shared/realdata).

    .venv/bin/python bench/bench_books.py [--deltas 3000000] [--runs 5] [--json PATH]

Books: the Binance ETHUSDT L2 deltas and the CME ESM4 MBO (L3) deltas, each
looped (the loops start with the snapshot's CLEAR) to about --deltas, applied
with the top of book written after every delta. Reported: deltas/s over the
whole run (p50 of --runs) and the per-delta cost distribution over 4096-delta
batches (p50/p99/p99.9 ns), against the plain dict-of-levels Python books of
`feeds/books/reference.py` on one pass of the same deltas (top read after each).
NautilusTrader is not a dependency and was not installed where this ran;
the script says so rather than measuring it.

Imports: DBN (MBP-1 + MBO files) and the Binance capture, p50 of --runs, in
MB/s of decoded input and events/s, against a line-by-line orjson import
built like hftbacktest's converter (the issue's 0.31M rows/s reference) in
the same run. Also prints the real-data match rates (Binance bookTicker by
update id, MBO uncrossed).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

import numpy as np
import orjson
from timing import percentiles

from redline.feeds.books.check import match_top_to_quotes
from redline.feeds.books.l2 import TOP_DTYPE, L2Book
from redline.feeds.books.l3 import L3Book
from redline.feeds.books.reference import DictL2Book, DictL3Book
from redline.feeds.events import Flag
from redline.feeds.importers import binance as bi
from redline.feeds.importers import dbn as di
from redline.feeds.realdata import realdata_dir
from redline.pipeline.cli.json_out import write_json

BATCH = 4096


def looped(deltas: np.ndarray, target: int) -> np.ndarray:
    return np.concatenate([deltas] * max(1, target // len(deltas)))


def bench_book(make, deltas: np.ndarray, runs: int) -> dict:
    """deltas/s of whole runs (wall clock, and the process CPU time, which
    a loaded machine disturbs less), and ns/delta per 4096-delta batch."""
    top = np.empty(len(deltas), TOP_DTYPE)
    make().apply(deltas[:BATCH], top)  # warm up (compiled code loaded, caches hot)
    rates, cpu_rates, per_delta = [], [], []
    gc.disable()
    try:
        for _ in range(runs):
            book = make()
            t0, c0 = time.perf_counter_ns(), time.process_time_ns()
            for i in range(0, len(deltas), BATCH):
                t = time.perf_counter_ns()
                book.apply(deltas[i : i + BATCH], top[i : i + BATCH])
                per_delta.append((time.perf_counter_ns() - t) / len(deltas[i : i + BATCH]))
            rates.append(len(deltas) / ((time.perf_counter_ns() - t0) / 1e9))
            cpu_rates.append(len(deltas) / ((time.process_time_ns() - c0) / 1e9))
    finally:
        gc.enable()
    return {
        "deltas": len(deltas),
        "deltas_per_s": float(np.median(rates)),
        "deltas_per_cpu_s": float(np.median(cpu_rates)),
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


def orjson_baseline(data: bytes) -> tuple[int, float]:
    """hftbacktest-style import: orjson per line, a Python row per level/quote/trade."""
    t0 = time.perf_counter()
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
    return len(rows), time.perf_counter() - t0


def timed(fn, runs: int) -> tuple[float, float, object]:
    """p50 wall seconds, p50 process CPU seconds (all threads), last result."""
    fn()  # warm up
    walls, cpus, out = [], [], None
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return float(np.median(walls)), float(np.median(cpus)), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deltas", type=int, default=3_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
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
    res: dict = {}

    # --- imports ---
    text = bi.read_bytes(cap)
    t_gunzip, _, _ = timed(lambda: bi.read_bytes(cap), args.runs)
    t_bin, c_bin, imp = timed(lambda: bi.import_bytes(text), args.runs)
    base_rows, t_base = orjson_baseline(text)
    res["import_binance"] = {
        "mb": len(text) / 1e6,
        "events": imp.events,
        "seconds_p50": t_bin,
        "cpu_seconds_p50": c_bin,
        "mb_per_s": len(text) / 1e6 / t_bin,
        "events_per_s": imp.events / t_bin,
        "events_per_cpu_s": imp.events / c_bin,
        "gunzip_s": t_gunzip,
        "orjson_baseline_rows": base_rows,
        "orjson_baseline_rows_per_s": base_rows / t_base,
        "speedup_vs_orjson": (imp.events / t_bin) / (base_rows / t_base),
        "x_of_0_31M_wall": imp.events / t_bin / 0.31e6,
        "x_of_0_31M_cpu": imp.events / c_bin / 0.31e6,
    }
    dbn_bytes = sum(len(di.read_dbn(p)[1]) for p in mbo_files + mbp_files)
    t_dbn, c_dbn, dimp = timed(
        lambda: [di.import_dbn(mbo_files), di.import_dbn(mbp_files)], args.runs
    )
    dbn_events = sum(x.events for x in dimp)
    res["import_dbn"] = {
        "mb": dbn_bytes / 1e6,
        "events": dbn_events,
        "seconds_p50": t_dbn,
        "cpu_seconds_p50": c_dbn,
        "mb_per_s": dbn_bytes / 1e6 / t_dbn,
        "events_per_s": dbn_events / t_dbn,
        "events_per_cpu_s": dbn_events / c_dbn,
    }

    # --- real-data checks ---
    top = L2Book().apply(imp.book)
    res["binance_match"] = match_top_to_quotes(imp.book, top, imp.quotes)
    res["binance_match"]["gaps"] = imp.stats["binance"]["gaps"]
    mbo = di.import_dbn(mbo_files).book
    l3 = L3Book()
    l3_top = l3.apply(mbo)
    last = (mbo["flags"] & Flag.LAST) != 0
    res["mbo_check"] = {"crossed": l3.stats["crossed"],
                        "crossed_rows_at_last": int(l3_top["crossed"][last].sum()),
                        "orders": l3.stats["orders"]}  # fmt: skip

    # --- books ---
    l2_deltas = looped(imp.book, args.deltas)
    l3_deltas = looped(mbo, args.deltas)
    res["l2"] = bench_book(L2Book, l2_deltas, args.runs)
    res["l2_dict_baseline"] = bench_dict_book(DictL2Book(), imp.book, l3=False)
    res["l2"]["speedup_vs_dict"] = (
        res["l2"]["deltas_per_cpu_s"] / res["l2_dict_baseline"]["deltas_per_cpu_s"]
    )
    res["l3"] = bench_book(L3Book, l3_deltas, args.runs)
    res["l3_dict_baseline"] = bench_dict_book(DictL3Book(), looped(mbo, 200_000), l3=True)
    res["l3"]["speedup_vs_dict"] = (
        res["l3"]["deltas_per_cpu_s"] / res["l3_dict_baseline"]["deltas_per_cpu_s"]
    )
    res["nautilus_installed"] = nautilus_installed()

    b, d = res["import_binance"], res["import_dbn"]
    print(f"import binance: {b['mb']:.1f} MB, {b['events']:,} events in {b['seconds_p50'] * 1e3:.0f} ms "
          f"wall / {b['cpu_seconds_p50'] * 1e3:.0f} ms CPU (p50 of {args.runs}): {b['mb_per_s']:.0f} MB/s, "
          f"{b['events_per_s'] / 1e6:.2f} M events/s wall ({b['x_of_0_31M_wall']:.1f}x 0.31M), "
          f"{b['events_per_cpu_s'] / 1e6:.2f} M/CPU s ({b['x_of_0_31M_cpu']:.1f}x); orjson line-by-line "
          f"baseline {b['orjson_baseline_rows_per_s'] / 1e6:.2f} M rows/s ({b['speedup_vs_orjson']:.1f}x); "
          f"gunzip alone {b['gunzip_s'] * 1e3:.0f} ms")  # fmt: skip
    print(f"import dbn: {d['mb']:.2f} MB, {d['events']:,} events in {d['seconds_p50'] * 1e3:.1f} ms wall / "
          f"{d['cpu_seconds_p50'] * 1e3:.1f} ms CPU: {d['mb_per_s']:.0f} MB/s, "
          f"{d['events_per_s'] / 1e6:.2f} M events/s wall, {d['events_per_cpu_s'] / 1e6:.2f} M/CPU s")  # fmt: skip
    for name in ("l2", "l3"):
        r, base = res[name], res[f"{name}_dict_baseline"]
        q = r["ns_per_delta_by_batch"]
        print(f"{name.upper()} book: {r['deltas']:,} deltas, {r['deltas_per_s'] / 1e6:.2f} M deltas/s "
              f"wall, {r['deltas_per_cpu_s'] / 1e6:.2f} M/s per CPU second (top after each); "
              f"ns/delta by {BATCH}-batch p50 {q['p50']:.0f} p99 {q['p99']:.0f} "
              f"p99.9 {q['p999']:.0f}; dict book {base['deltas_per_cpu_s'] / 1e6:.2f} M/CPU s -> "
              f"{r['speedup_vs_dict']:.0f}x")  # fmt: skip
    m = res["binance_match"]
    print(f"binance ETHUSDT vs bookTicker by update id: {m['events_checked']:,} depth events, "
          f"price {m['price_match']:.2%}, size {m['size_match']:.2%}, gaps {m['gaps']}, "
          f"crossed {m['crossed']}")  # fmt: skip
    print(
        f"CME ESM4 MBO: crossed {res['mbo_check']['crossed']}, {res['mbo_check']['orders']:,} orders resting"
    )
    if not res["nautilus_installed"]:
        print("NautilusTrader: not installed here, not measured")
    else:
        print("NautilusTrader: installed, but this script does not drive it yet")
    write_json(args.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
