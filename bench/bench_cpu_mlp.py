"""The plan's CPU path against the simplest calls of the same shape, per batch size.

For each model (the bundled demo model, a seeded GELU one, the FLOORS shape) and batch size
(1: a quote; 8, 64: feed batches a worker answers; 256, 4096: backtest chunks): the plan's
`run_into` (preallocated output; numpy or addmm as kernels/cpu_mlp.py picks) against a plain
`torch.addmm` chain and, for ReLU-only models, a plain numpy `x @ w + b` chain (numpy has no
erf for GELU). The cases are interleaved within each run; each run gives a p50 per case, and
the table prints the median [min-max] of the runs' p50s and plan / fastest baseline.

    .venv/bin/python bench/bench_cpu_mlp.py [--calls 2000] [--runs 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import functools
import platform
from collections.abc import Callable

import numpy as np
import torch
from bench_kernels import measure
from torch import nn

import redline.kernels as rk
from redline.kernels.plans.demo_model import bundled_model, demo_model
from redline.pipeline.cli.json_out import write_json

BATCHES = (1, 8, 64, 256, 4096)


def chains(model: nn.Sequential, x_np: np.ndarray) -> dict[str, Callable[[], object]]:
    """The simplest calls of the model's shape on x_np [B, K]: a torch.addmm chain, and (when
    every activation is ReLU) a numpy `x @ w + b` chain. Both allocate, as a plain call does."""
    mods = list(model)
    acts = [type(mods[i + 1]).__name__ if i + 1 < len(mods) else "" for i in range(len(mods))]
    steps = [(m, a) for m, a in zip(mods, acts, strict=True) if isinstance(m, nn.Linear)]
    w_t = [m.weight.detach().T.contiguous() for m, _ in steps]
    b = [m.bias.detach() for m, _ in steps]
    names = [a if a in ("ReLU", "GELU") else "" for _, a in steps]
    fn = {"ReLU": torch.relu, "GELU": torch.nn.functional.gelu}
    x_t = torch.from_numpy(x_np)

    def torch_addmm() -> torch.Tensor:
        with torch.inference_mode():
            h = x_t
            for w, bias, a in zip(w_t, b, names, strict=True):
                h = torch.addmm(bias, h, w)
                if a:
                    h = fn[a](h)
            return h

    cases: dict[str, Callable[[], object]] = {"torch addmm chain": torch_addmm}
    if set(names) <= {"ReLU", ""}:
        w_np, b_np = [w.numpy() for w in w_t], [x.numpy() for x in b]

        def numpy_chain() -> np.ndarray:
            h = x_np
            for w, bias, a in zip(w_np, b_np, names, strict=True):
                h = h @ w + bias
                if a:
                    np.maximum(h, 0.0, out=h)
            return h

        cases["numpy x @ w + b chain"] = numpy_chain
    return cases


def bench_batches(model: nn.Sequential, calls: int, runs: int) -> dict[str, dict]:
    """{batch: {case: sorted p50 µs of each run}}; the plan's answer checked first."""
    plan = rk.compile(model, backend="cpu")
    k = model[0].in_features
    out: dict[str, dict] = {}
    for batch in BATCHES:
        x_np = np.random.default_rng(batch).standard_normal((batch, k)).astype(np.float32)
        y_np = np.empty((batch, plan.out_features), np.float32)
        cases = {"plan.run_into": functools.partial(plan.run_into, x_np, y_np)}
        cases |= chains(model, x_np)
        plan.run_into(x_np, y_np)
        want = cases["torch addmm chain"]().numpy()
        np.testing.assert_allclose(y_np, want, rtol=1e-4, atol=1e-4)  # same answer first
        n = max(50, calls // max(1, batch // 8))
        per_run: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(runs):
            for name, f in measure(cases, n, 200, rounds=5).items():
                per_run[name].append(f["p50_us"])
        out[str(batch)] = {name: sorted(v) for name, v in per_run.items()}
    return out


def print_batches(title: str, rows: dict[str, dict]) -> None:
    print(f"\n{title}: p50 µs, median [min-max] of the runs; ratio = plan / fastest baseline")
    for batch, cases in rows.items():
        med = {name: float(np.median(v)) for name, v in cases.items()}
        base = min(v for name, v in med.items() if name != "plan.run_into")
        cells = "  ".join(f"{n} {med[n]:7.1f} [{v[0]:.1f}-{v[-1]:.1f}]" for n, v in cases.items())
        print(f"  batch {batch:>5s}: {cells}  ratio {med['plan.run_into'] / base:4.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=2000, help="timed calls per case at batch 8")
    ap.add_argument("--runs", type=int, default=3, help="runs (median, min-max); at least 3")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    if args.runs < 3:
        ap.error(f"--runs must be >= 3 (a median and a range), got {args.runs}")
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"threads {torch.get_num_threads()}"
    )
    floors = nn.Sequential(
        nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 16)
    ).eval()
    models = (("bundled demo 14-32-32-1 ReLU", bundled_model()),
              ("seeded 14-64-64-1 GELU/ReLU", demo_model()), ("FLOORS 32-64-64-16 ReLU", floors))  # fmt: skip
    report = {}
    for name, model in models:
        rows = bench_batches(model, args.calls, args.runs)
        print_batches(f"MLP per batch size, CPU: {name}", rows)
        report[name] = rows
    write_json(args.json, report)


if __name__ == "__main__":
    main()
