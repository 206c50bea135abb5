"""What a worker's engine costs per event: apply the event, then answer it (µs).

The worker's hot path without the transport: `CpuEngine` (numba features + the plan's CPU
`run_into`) against `CudaEngine` (pinned staging, captured CUDA graphs, one synchronise per
answer), on the bundled model (kernel features, 14 wide) and on a window-feature MLP of the
same hidden size (state resident in device memory). Without CUDA only the CPU rows are
measured and the GPU rows say so.

    .venv/bin/python bench/bench_engines.py [--events 20000] [--runs 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from timing import Runs, add_runs_arg, fmt, percentiles
from torch import nn

import redline.kernels as rk
from redline.feeds.events import QUOTE_DTYPE, TRADE_DTYPE, RecordType
from redline.kernels.plans.demo_model import bundled_model
from redline.pipeline.workers.engines import CpuEngine, warm_up


def market(n: int) -> list[tuple[int, np.ndarray]]:
    """Quotes and trades on four instruments, one record each (what a worker receives)."""
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        if i % 4 == 3:
            r = np.zeros(1, TRADE_DTYPE)
            r["px"], r["sz"], r["aggressor"] = 1000 + rng.integers(-5, 6), 1 + i % 5, 1 + i % 2
            rtype = RecordType.TRADE
        else:
            r = np.zeros(1, QUOTE_DTYPE)
            bid = 1000 + rng.integers(-5, 6)
            r["bid_px"], r["ask_px"], r["bid_sz"], r["ask_sz"] = bid, bid + 1, 1 + i % 7, 3
            rtype = RecordType.QUOTE
        r["instrument_id"] = i % 4
        r["ts_event"] = r["ts_recv"] = 1_000 * i
        out.append((rtype, r))
    return out


def per_event_ns(engine, events) -> np.ndarray:
    warm_up(engine)
    out = np.zeros(engine.out_features, np.float32)
    clock = time.perf_counter_ns
    ns = np.empty(len(events), np.int64)
    for no, (rtype, r) in enumerate(events, start=1):
        t0 = clock()
        engine.apply(no, rtype, r)
        engine.answer_into(no, out)
        ns[no - 1] = clock() - t0
    return ns


def window_model(width: int = 32) -> nn.Sequential:
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        nn.Linear(width, 64), nn.GELU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1)
    ).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def engines(cuda: bool):
    models = {"kernel features (bundled model)": bundled_model(), "window 32": window_model()}
    for label, model in models.items():
        yield f"cpu, {label}", lambda m=model: CpuEngine(rk.compile(m, device="cpu", backend="cpu"))
        if cuda:
            from redline.pipeline.workers.cuda_engine import CudaEngine

            yield f"cuda, {label}", lambda m=model: CudaEngine(rk.compile(m, device="cuda"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    add_runs_arg(ap)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    session = Runs(args.runs)
    session.meta["device"] = torch.cuda.get_device_name(0) if cuda else "none"
    events = market(args.events)
    for _ in session:
        figures = {}
        for label, make in engines(cuda):
            p = percentiles(per_event_ns(make(), events), scale=1e3)
            figures[label] = {k: p[k] for k in ("p50", "p99", "p999")}
        session.add(figures)
    agg = session.finish(args.json)
    print(f"\nper event, apply + answer, µs, {args.events:,} events, median (min-max) of runs:")
    print(f"{'engine':<44} {'p50':>20} {'p99':>20} {'p99.9':>20}")
    for label, a in agg.items():
        cells = [fmt(a[k], ".1f") for k in ("p50", "p99", "p999")]
        print(f"{label:<44} {cells[0]:>20} {cells[1]:>20} {cells[2]:>20}")
    if not cuda:
        print("cuda rows: pending (no CUDA device on this host)")


if __name__ == "__main__":
    main()
