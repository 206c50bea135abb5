"""Backtest throughput: `ema_cross` against the L1 venue, beside a bare CPython loop.

The workload of ../shared/anchors/backtest_engines_bench.py: one instrument, a random-walk
bid (seed 42, steps -1/0/+1 ticks, spread 2 ticks, quotes 1 ms apart), the EMA of the mid with
alpha 0.01, every K quotes a flip of a fixed position when the side of the mid changed. Ours
runs the compiled strategy and venue loop with fills, fees, PnL and the per-order log; the
baseline, in the same run on the same arrays, is the anchors' bare loop (EMA and decisions
only, no fills). `market_maker` (post-only quotes on both sides, cancel and replace) runs on
the same quotes after them, no baseline yet. Each size runs in its own subprocess, so its peak
RSS is its own; the first call of a process (numba compile, ~1 s) is timed apart as `cold`.

`market_maker` on the L2 venue with the queue model (venue/l2.py) runs on a synthetic L2
stream (`l2_stream`: a snapshot, then groups of five events: the level inside the spread
deleted on both sides, the best bid and ask sizes set, a trade at one of them; the touch
walks a tick one group in ten) and, when ../shared/realdata is there, on its Binance ETHUSDT
capture imported; its baseline in the same run is our L2 book alone
(feeds/books/l2.py `L2Book.apply`) on the same deltas. `--mm-every K` requotes every K-th
book update (1: every one); `--mm-step-ms T` requotes on a timer, at most once per T ms of
data time (`L2Backtest(step_ns=...)`, as hftbacktest's market makers wake every 100 ms). Each
L2 figure is given in wall and in CPU time of the process (a shared machine's load shows in
the first more than in the second).

    python bench/bench_backtest.py [--sizes 1000000,10000000] [--every 1000] [--runs 3]
        [--l2-sizes 10000000] [--mm-every 1,100] [--mm-step-ms 100]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import Runs, add_runs_arg, fmt, ratio, table

SPREAD = 2
STEP_NS = 1_000_000


def series(n: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    bid = 110_000 + np.cumsum(rng.integers(-1, 2, size=n))
    return bid.astype(np.int64), (bid + SPREAD).astype(np.int64)


def bare_loop(bid: list, ask: list, every: int, alpha: float) -> int:
    """The anchors' bare CPython loop on the same quotes (prices as floats, as theirs)."""
    ema, side, orders, count = None, 0, 0, 0
    for b, a in zip(bid, ask, strict=True):
        count += 1
        mid = (b + a) * 0.5
        ema = mid if ema is None else alpha * mid + (1.0 - alpha) * ema
        if count % every:
            continue
        want = 1 if mid > ema else -1
        if want != side:
            orders += 1
            side = want
    return orders


def one_size(n: int, every: int) -> dict:
    """In a subprocess: cold and warm backtest of n quotes, then the bare loop."""
    from redline.feeds.events import QUOTE_DTYPE
    from redline.strategies.ema_cross import Params
    from redline.venue.backtest import Backtest
    from redline.venue.latency import Latency

    bid, ask = series(n)
    q = np.zeros(n, QUOTE_DTYPE)
    q["ts_recv"] = q["ts_event"] = np.arange(n, dtype=np.int64) * STEP_NS
    q["bid_px"], q["ask_px"], q["bid_sz"], q["ask_sz"], q["instrument_id"] = bid, ask, 10, 10, 1
    params = Params(alpha=0.01, every=every, qty=1)

    def run(name: str = "ema_cross", p=params) -> tuple[float, dict]:
        bt = Backtest(name, p, Latency(), [1], fee_bps=0.5)
        t = time.perf_counter()
        for i in range(0, n, 1 << 18):  # the CLI's chunk size
            bt.feed(q[i : i + (1 << 18)])
        figures = bt.finish().figures
        return time.perf_counter() - t, figures

    cold, _ = run()
    warm, figures = run()
    rss_ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the lists
    bl, al = (bid / 1e5).tolist(), (ask / 1e5).tolist()
    t = time.perf_counter()
    orders = bare_loop(bl, al, every, 0.01)
    bare = time.perf_counter() - t
    from redline.strategies import market_maker  # after the RSS figure: its log is bigger

    run("market_maker", market_maker.Params())  # compile
    mm_warm, mm = run("market_maker", market_maker.Params())
    return {
        "quotes": n,
        "ours_quotes_per_s": n / warm,
        "ours_cold_quotes_per_s": n / cold,
        "bare_loop_quotes_per_s": n / bare,
        "orders": figures["orders"],
        "bare_loop_orders": orders,
        "pnl_ticks": figures["pnl"],
        "mm_quotes_per_s": n / mm_warm,
        "mm_orders": mm["orders"],
        "peak_rss_mb": rss_ours,  # the quotes in memory included (64 B each)
    }


def streamed(n: int, every: int, folder: str) -> dict:
    """`redline backtest` on the same quotes written to Parquet: the user's path, read in
    chunks, so its peak RSS is what a long recording costs (compile and read included)."""
    import pyarrow.parquet as pq

    from redline.feeds import event_schema as es
    from redline.feeds.events import QUOTE_DTYPE

    bid, ask = series(n)
    path = f"{folder}/q{n}.parquet"
    with pq.ParquetWriter(path, es.arrow_schema(es.RecordType.QUOTE)) as w:
        for i in range(0, n, 1 << 20):
            q = np.zeros(min(1 << 20, n - i), QUOTE_DTYPE)
            q["ts_recv"] = q["ts_event"] = (i + np.arange(len(q), dtype=np.int64)) * STEP_NS
            q["bid_px"], q["ask_px"] = bid[i : i + len(q)], ask[i : i + len(q)]
            q["bid_sz"], q["ask_sz"], q["instrument_id"] = 10, 10, 1
            w.write_batch(es.to_arrow(q))
    out = f"{folder}/bt{n}.json"
    subprocess.run([sys.executable, "-m", "redline.pipeline.cli.main", "backtest", path,
                    "--strategy", "ema_cross", "--param", f"every={every}", "--no-progress",
                    "--json", out], check=True, capture_output=True)  # fmt: skip
    with open(out) as f:
        fig = json.load(f)
    return {"cli_quotes_per_s": fig["events_per_s"], "cli_peak_rss_mb": fig["peak_rss_mb"]}


GROUP = 5  # events per book change in the synthetic L2 stream


def l2_stream(n: int, seed: int = 42, depth: int = 10) -> np.ndarray:
    """About n BOOK_DELTA records (trades as action TRADE) of one instrument, ts_recv order."""
    from redline.feeds.events import BOOK_DELTA_DTYPE, BookAction, Flag, Side

    rng = np.random.default_rng(seed)
    g = n // GROUP
    bid = 100_000 + np.cumsum(rng.choice([-1, 0, 0, 0, 0, 0, 0, 0, 0, 1], size=g))
    d = np.zeros((g, GROUP), BOOK_DELTA_DTYPE)
    d["ts_recv"] = d["ts_event"] = np.arange(g, dtype=np.int64)[:, None] * 100_000 + np.arange(
        GROUP
    )  # a group every 100 µs
    cols = [  # side, px, action of each event of a group
        (Side.BID, bid + 1, BookAction.DELETE), (Side.ASK, bid + 1, BookAction.DELETE),
        (Side.BID, bid, BookAction.UPDATE), (Side.ASK, bid + 2, BookAction.UPDATE),
    ]  # fmt: skip
    for c, (side, px, action) in enumerate(cols):
        d[:, c]["side"], d[:, c]["px"], d[:, c]["action"] = side, px, action
    d[:, 2]["sz"], d[:, 3]["sz"] = rng.integers(1, 20, g), rng.integers(1, 20, g)
    d[:, 3]["flags"] = Flag.LAST
    buy = rng.random(g) < 0.5
    d[:, 4]["side"], d[:, 4]["px"] = np.where(buy, Side.BID, Side.ASK), np.where(buy, bid + 2, bid)
    d[:, 4]["sz"], d[:, 4]["action"] = rng.integers(1, 6, g), BookAction.TRADE
    snap = np.zeros(2 * depth + 1, BOOK_DELTA_DTYPE)
    snap["action"], snap[0]["action"] = BookAction.ADD, BookAction.CLEAR
    snap[1 : depth + 1]["side"], snap[1 : depth + 1]["px"] = Side.BID, bid[0] - np.arange(depth)
    snap[depth + 1 :]["side"], snap[depth + 1 :]["px"] = Side.ASK, bid[0] + 2 + np.arange(depth)
    snap[1:]["sz"], snap["flags"] = 10, Flag.SNAPSHOT
    snap[-1]["flags"] |= Flag.LAST
    out = np.concatenate([snap, d.reshape(-1)])
    out["instrument_id"], out["seq"] = 1, np.arange(len(out))
    return out


def l2_market_maker(batches: list[np.ndarray], every: int, queue: str = "risk_averse",
                    step_ns: int = 0) -> dict:  # fmt: skip
    """`market_maker` on the L2 venue over `batches` (BOOK_DELTA / TRADE, in order), warm,
    beside L2Book.apply on the same deltas (warm, a fresh book)."""
    from redline.feeds.books.l2 import L2Book
    from redline.feeds.events import BOOK_DELTA_DTYPE
    from redline.strategies import market_maker
    from redline.venue.l2_backtest import L2Backtest
    from redline.venue.latency import Latency

    n = sum(len(b) for b in batches)
    ids = sorted({int(i) for b in batches for i in np.unique(b["instrument_id"])})

    # cut as the CLI's reader cuts them (256k rows at most), before the clock starts
    chunks = [b[i : i + (1 << 18)] for b in batches for i in range(0, len(b), 1 << 18)]

    def run() -> tuple[float, float, dict]:
        bt = L2Backtest("market_maker", market_maker.Params(every=every), Latency(), ids,
                        queue=queue, step_ns=step_ns)  # fmt: skip
        t, c = time.perf_counter(), time.process_time()
        for b in chunks:
            bt.feed(b)
        figures = bt.finish().figures
        return time.perf_counter() - t, time.process_time() - c, figures

    t0 = time.perf_counter()
    run()  # compile
    cold = time.perf_counter() - t0
    # A short stream (the real capture: ~40 ms a pass) is timed as the median of several
    # passes, so one scheduler hiccup is not the figure; a long one, once.
    passes = max(1, 2_000_000 // n)
    warm, cpu, fig = _median_pass([run() for _ in range(passes)])
    deltas = [b for b in batches if b.dtype == BOOK_DELTA_DTYPE]
    L2Book(ids[0]).apply(deltas[0][:1000])  # compile

    def book_pass() -> tuple[float, float, None]:
        book = L2Book(ids[0])
        t, c = time.perf_counter(), time.process_time()
        for b in deltas:
            book.apply(b)
        return time.perf_counter() - t, time.process_time() - c, None

    base, base_cpu, _ = _median_pass([book_pass() for _ in range(passes)])
    m = sum(len(b) for b in deltas)
    return {"rows": n, "rows_per_s": n / warm, "cpu_rows_per_s": n / cpu,
            "compile_s": cold - warm, "book_only_rows_per_s": m / base,
            "book_only_cpu_rows_per_s": m / base_cpu, "decisions": fig["decisions"],
            "orders": fig["orders"], "fills": fig["fills"], "pnl_ticks": fig["pnl"]}  # fmt: skip


def _median_pass(passes: list[tuple]) -> tuple:
    """The pass with the median wall time (its CPU time and figures with it)."""
    return sorted(passes, key=lambda p: p[0])[len(passes) // 2]


def one_l2(n: int, every: int, step_ns: int) -> dict:
    """In a subprocess: the L2 market maker on the synthetic stream of n events."""
    out = l2_market_maker([l2_stream(n)], every, step_ns=step_ns)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def one_realdata(folder: str, every: int, step_ns: int) -> dict:
    """In a subprocess: the L2 market maker on an import of the realdata capture."""
    from redline.feeds.events import RecordType
    from redline.feeds.replay.reader import replay

    batches = [np.array(r) for t, r in replay([folder], batch_rows=1 << 18)
               if t in (RecordType.BOOK_DELTA, RecordType.TRADE)]  # fmt: skip
    return l2_market_maker(batches, every, step_ns=step_ns) | {
        "power_queue": l2_market_maker(batches, every, "power", step_ns)["rows_per_s"]
    }


def realdata_import(folder: str) -> str | None:
    """../shared/realdata's Binance capture imported into `folder` (None: not there)."""
    from redline.feeds.importers.detect import import_files
    from redline.feeds.realdata import realdata_dir

    root = realdata_dir()
    cap = root / "binance" / "ethusdt_20240808.gz" if root else None
    if cap is None or not cap.is_file():
        return None
    import_files([cap], None).write(Path(folder) / "eth", False)
    return str(Path(folder) / "eth")


def _sub(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                         check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--every", type=int, default=1000, help="decide every K quotes")
    ap.add_argument("--l2-sizes", default="10000000", help="synthetic L2 events ('' for none)")
    ap.add_argument("--mm-every", default="1,100", help="market_maker's every, L2 runs")
    ap.add_argument("--mm-step-ms", default="100", help="L2 runs on a timer of T ms ('': none)")
    ap.add_argument("--step-ns", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the subprocess's own size
    ap.add_argument("--one-l2", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--one-real", help=argparse.SUPPRESS)
    add_runs_arg(ap)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one_size(args.one, args.every)))
        return 0
    if args.one_l2:
        print(json.dumps(one_l2(args.one_l2, args.every, args.step_ns)))
        return 0
    if args.one_real:
        print(json.dumps(one_realdata(args.one_real, args.every, args.step_ns)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    l2_sizes = [int(s) for s in args.l2_sizes.split(",") if s]
    # (row name, every, step_ns): every K-th update, then a timer of T ms requoting each time
    l2_runs = [(f"every{k}", k, 0) for s in args.mm_every.split(",") if s for k in [int(s)]]
    l2_runs += [(f"timer{s}ms", 1, int(float(s) * 1e6)) for s in args.mm_step_ms.split(",") if s]
    tmp = tempfile.TemporaryDirectory()
    real = realdata_import(tmp.name)
    session = Runs(args.runs)
    for _ in session:
        run = {}
        for name, k, step_ns in l2_runs:
            step = ("--every", str(k), "--step-ns", str(step_ns))
            for n in l2_sizes:
                run[f"l2_{n}_{name}"] = _sub("--one-l2", str(n), *step)
            if real:
                run[f"real_{name}"] = _sub("--one-real", real, *step)
        for n in sizes:
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(n), "--every", str(args.every)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            fig = json.loads(out.stdout.strip().splitlines()[-1])
            if fig["orders"] != fig["bare_loop_orders"]:
                raise SystemExit(f"{n}: {fig['orders']} orders vs the bare loop's "
                                 f"{fig['bare_loop_orders']}: not the same workload")  # fmt: skip
            with tempfile.TemporaryDirectory() as folder:
                fig |= streamed(n, args.every, folder)
            run[str(n)] = fig
        session.add(run)
    agg = session.finish(args.json)
    tmp.cleanup()
    l2_rows = []
    for key in [k for k in agg if k.startswith(("l2_", "real_"))]:
        a = agg[key]
        x = ratio([r[key]["cpu_rows_per_s"] for r in session.runs],
                  [r[key]["book_only_cpu_rows_per_s"] for r in session.runs])  # fmt: skip
        l2_rows.append([key, f"{a['rows']['median']:,.0f}", fmt(a["rows_per_s"], ".2f", 1e6),
                        fmt(a["cpu_rows_per_s"], ".2f", 1e6),
                        fmt(a["book_only_cpu_rows_per_s"], ".2f", 1e6),
                        fmt({"median": float(np.median(x)), "min": min(x), "max": max(x),
                             "runs": x}, ".2f", unit="x"),
                        f"{a['decisions']['median']:,.0f}", f"{a['orders']['median']:,.0f}",
                        f"{a['fills']['median']:,.0f}", fmt(a["compile_s"], ".1f")])  # fmt: skip
    if l2_rows:
        table("market_maker on the L2 venue, risk-averse queue (M rows/s; median (min-max))",
              ["stream", "rows", "ours warm (wall)", "ours warm (CPU)", "L2 book alone (CPU)",
               "ours / book (CPU)", "decisions", "orders", "fills", "compile s"],
              l2_rows)  # fmt: skip
    rows = []
    for n in sizes:
        a = agg[str(n)]
        x = ratio([r[str(n)]["ours_quotes_per_s"] for r in session.runs],
                  [r[str(n)]["bare_loop_quotes_per_s"] for r in session.runs])  # fmt: skip
        rows.append([f"{n:,}", fmt(a["ours_quotes_per_s"], ".2f", 1e6),
                     fmt(a["ours_cold_quotes_per_s"], ".2f", 1e6),
                     fmt(a["bare_loop_quotes_per_s"], ".2f", 1e6),
                     fmt({"median": float(np.median(x)), "min": min(x), "max": max(x), "runs": x},
                         ".1f", unit="x"),
                     f"{a['orders']['median']:,.0f}", fmt(a["peak_rss_mb"], ",.0f"),
                     fmt(a["cli_quotes_per_s"], ".2f", 1e6),
                     fmt(a["cli_peak_rss_mb"], ",.0f"), fmt(a["mm_quotes_per_s"], ".2f", 1e6),
                     f"{a['mm_orders']['median']:,.0f}"])  # fmt: skip
    if not rows:
        return 0
    table("ema_cross with fills and PnL vs the bare loop (M quotes/s; median (min-max))",
          ["quotes", "ours warm", "ours cold", "bare loop", "ours / bare", "orders",
           "RSS MB (in memory)", "CLI from Parquet", "CLI RSS MB", "market_maker warm",
           "mm orders"], rows)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
