"""Backtest throughput: `ema_cross` against the L1 venue, beside a bare CPython loop.

The workload of ../shared/anchors/backtest_engines_bench.py: one instrument, a random-walk
bid (seed 42, steps -1/0/+1 ticks, spread 2 ticks, quotes 1 ms apart), the EMA of the mid with
alpha 0.01, every K quotes a flip of a fixed position when the side of the mid changed. Ours
runs the compiled strategy and venue loop with fills, fees, PnL and the per-order log; the
baseline, in the same run on the same arrays, is the anchors' bare loop (EMA and decisions
only, no fills). `market_maker` (post-only quotes on both sides, cancel and replace) runs on
the same quotes after them, no baseline yet. Each size runs in its own subprocess, so its peak
RSS is its own; the first call of a process (numba compile, ~1 s) is timed apart as `cold`.

    python bench/bench_backtest.py [--sizes 1000000,10000000] [--every 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--every", type=int, default=1000, help="decide every K quotes")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the subprocess's own size
    add_runs_arg(ap)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one_size(args.one, args.every)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    session = Runs(args.runs)
    for _ in session:
        run = {}
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
    table("ema_cross with fills and PnL vs the bare loop (M quotes/s; median (min-max))",
          ["quotes", "ours warm", "ours cold", "bare loop", "ours / bare", "orders",
           "RSS MB (in memory)", "CLI from Parquet", "CLI RSS MB", "market_maker warm",
           "mm orders"], rows)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
