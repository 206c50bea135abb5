"""Backtest throughput of `model_signal` (fast replay) on the bundled trained model, beside the
plain torch forward of the same model over the same rows.

The data: the bundled market quotes and trades (replay_data, 4 instruments), tiled in time to
`--events` events (each copy starts a second after the previous one ends; seqs continue) and
written once as Parquet. One run is what `redline backtest DATA --venue l1 --strategy
model_signal` does: `model_signal.stream` reads the quotes once in the CLI's 256k chunks and
the trades beside them; per chunk, the feature kernel over its quotes and the trades before
them, one compiled forward, then the compiled strategy + risk + venue loop over the chunk
(features of the next chunk overlap the forward and the loop on the second core). Events/s
counts quotes and trades; CPU seconds are the process's (all threads), the figure to compare
on a shared, loaded host.
Baselines, in the same run: the bundled model as a torch nn.Sequential (one thread per core,
eval, no_grad) over the same quote feature rows in the same chunks (the forward alone: no
features, no replay, no venue), and reading the quotes and the trades alone (each file once,
as the backtest reads them: what any backtest of them pays). Numba compiles before the runs (a small warm-up
run). `--cold`: also one `redline backtest` of the bundled data in a fresh process per run,
its wall and CPU seconds: what a user pays per invocation, numba's cache loads included.

    python bench/bench_model_signal.py [--events 10000000] [--runs 3] [--cold] [--json PATH]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import Runs, add_runs_arg, fmt, ratio, table

CHUNK = 1 << 18  # the CLI's


def tiled(folder: Path, events: int) -> tuple[int, int]:
    """Write quotes and trades tiled to >= `events` events into `folder`; (quotes, trades)."""
    from redline.feeds.synthetic.network import write_records
    from redline.kernels.training import read_recording
    from redline.replay_data import DIR

    q, t = read_recording([str(DIR)])
    t0 = min(q["ts_event"].min(), t["ts_event"].min())
    span = max(q["ts_recv"].max(), t["ts_recv"].max()) - t0 + 1_000_000_000
    copies = -(-events // (len(q) + len(t)))
    parts = {}
    for name, recs in (("quotes", q), ("trades", t)):
        out = np.concatenate([recs] * copies)
        k = np.repeat(np.arange(copies, dtype=np.int64), len(recs))
        out["ts_event"] += k * span
        out["ts_recv"] += k * span
        out["seq"] += (k * (recs["seq"].max() + 1)).astype(out["seq"].dtype)
        write_records(folder / f"market_{name}.parquet", out, "bench_model_signal tiled")
        parts[name] = len(out)
    return parts["quotes"], parts["trades"]


def cpu_s(who: int = resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def backtest(folder: Path) -> dict:
    from redline.strategies import model_signal
    from redline.venue.backtest import Backtest
    from redline.venue.latency import Latency

    p = model_signal.Params()
    c0, t0 = cpu_s(), time.perf_counter()
    ids = [1, 2, 3, 4]
    stream = model_signal.stream(p, [str(folder)], ids)
    bt = Backtest(stream, p, Latency(), ids)
    stream.run(bt.feed)
    r = bt.finish()
    return {"seconds": time.perf_counter() - t0, "cpu_s": cpu_s() - c0,
            "orders": r.figures["orders"], "pnl": r.figures["pnl"]}  # fmt: skip


def replay_alone(folder: Path) -> float:
    """Seconds to read the quotes and the trades once (each file alone, as the backtest reads
    them), in the CLI's chunks, touching nothing."""
    from redline.feeds.replay.reader import replay

    t0 = time.perf_counter()
    for name in ("market_quotes.parquet", "market_trades.parquet"):
        for _ in replay([str(folder / name)], batch_rows=CHUNK):
            pass
    return time.perf_counter() - t0


def cold_cli() -> tuple[float, float]:
    """(wall s, CPU s) of `redline backtest` on the bundled data in a fresh process."""
    from redline.replay_data import DIR

    c0, t0 = cpu_s(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "redline.pipeline.cli.main", "backtest", str(DIR), "--venue",
         "l1", "--strategy", "model_signal", "--no-progress"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - t0, cpu_s(resource.RUSAGE_CHILDREN) - c0


def torch_forward(folder: Path) -> float:
    """Seconds for the bundled model in torch over every quote's features, CHUNK rows a call."""
    import torch

    from redline.kernels.plans.demo_model import bundled_model
    from redline.kernels.training import quote_features, read_recording

    q, t = read_recording([str(folder)])
    x = torch.from_numpy(quote_features(q, t))
    model = bundled_model()
    with torch.no_grad():
        model(x[:CHUNK])  # warm
        t0 = time.perf_counter()
        for s in range(0, len(x), CHUNK):
            model(x[s : s + CHUNK])
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    add_runs_arg(ap)
    ap.add_argument("--cold", action="store_true", help="also time a fresh `redline backtest`")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    session = Runs(args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        small, big = Path(tmp, "small"), Path(tmp, "big")
        small.mkdir()
        big.mkdir()
        tiled(small, 1)
        backtest(small)  # numba compiles here, not in a timed run
        n_q, n_t = tiled(big, args.events)
        print(f"data: {n_q:,} quotes + {n_t:,} trades = {n_q + n_t:,} events", flush=True)
        for _ in session:
            bt = backtest(big)
            fwd = torch_forward(big)
            read = replay_alone(big)
            cold = cold_cli() if args.cold else (None, None)
            session.add({
                "events_per_s": (n_q + n_t) / bt["seconds"], **bt, "torch_forward_s": fwd,
                "torch_forward_rows_per_s": n_q / fwd, "replay_s": read,
                "cold_cli_s": cold[0], "cold_cli_cpu_s": cold[1],
            })  # fmt: skip
        agg = session.finish(args.json, {"events": n_q + n_t, "quotes": n_q})
    runs = session.runs
    vs = summary_ratio([r["seconds"] for r in runs], [r["torch_forward_s"] for r in runs])
    vs_read = summary_ratio([r["seconds"] for r in runs], [r["replay_s"] for r in runs])
    table(
        f"model_signal on {n_q + n_t:,} events (median (min-max) of {args.runs} runs)",
        ["figure", "value"],
        [
            ["events/s, whole backtest", fmt(agg["events_per_s"], ",.0f")],
            [
                "whole backtest: wall / CPU (s)",
                f"{fmt(agg['seconds'], '.2f')} / {fmt(agg['cpu_s'], '.2f')}",
            ],
            ["baseline: torch forward alone (s)", fmt(agg["torch_forward_s"], ".2f")],
            ["baseline: reading the quotes and trades alone (s)", fmt(agg["replay_s"], ".2f")],
            ["whole backtest / torch forward alone", fmt(vs, ".2f", unit="x")],
            ["whole backtest / replay alone", fmt(vs_read, ".2f", unit="x")],
            [
                "fresh `redline backtest` of the bundled data, wall / CPU (s)",
                f"{fmt(agg['cold_cli_s'], '.1f')} / {fmt(agg['cold_cli_cpu_s'], '.1f')}",
            ],
            ["orders", fmt(agg["orders"], ",.0f")],
        ],
    )
    return 0


def summary_ratio(num: list, den: list) -> dict:
    from timing import agg

    return agg(ratio(num, den))


if __name__ == "__main__":
    raise SystemExit(main())
