"""What the kernels and the model plans cost, against torch measured in the same run.

CPU (always): batch-1 latency of an MLP plan's CPU path (`run_into` on numpy
buffers, and `plan(x)` on tensors) against plain torch (functional addmm in
inference mode, the nn.Module in inference mode, and eager nn.Module under
no_grad); a GRU plan step against `nn.GRU` on one step; the feature kernel's
live update per event and its replay scan; CPU batch-4096 throughput.

GPU (when CUDA is present): batch-1 end to end (pinned host input -> device ->
pinned host output, synchronised) for the fused Triton MLP launched eagerly
and replayed from a CUDA graph, against torch eager, torch in a CUDA graph
and torch.compile; batch-4096 bf16 throughput of each with the roofline.
Without CUDA the GPU section prints that its figures are pending.

    .venv/bin/python bench/bench_kernels.py [--calls 20000] [--json PATH]

The plan's CPU path against the simplest calls of the same shape per batch size, median
and min-max of several runs, is bench/bench_cpu_mlp.py.
"""

from __future__ import annotations

import argparse
import copy
import platform
import time
from collections.abc import Callable

import numpy as np
import torch
from timing import percentiles, timed
from torch import nn

import redline.kernels as rk
from redline.kernels.features import N_FEATURES, FeatureState, merge_order
from redline.kernels.plans.calibration import calibration_features, synthetic_market
from redline.kernels.plans.demo_model import bundled_model, demo_model
from redline.pipeline.cli.json_out import write_json

# H100 SXM datasheet peaks: dense bf16 tensor-core FLOP/s and HBM3 bytes/s.
H100_BF16_FLOPS = 989e12
H100_HBM_BYTES = 3.35e12


def measure(
    cases: dict[str, Callable[[], object]], calls: int, warmup: int, rounds: int = 10
) -> dict[str, dict[str, float]]:
    """Figures per case, timed in interleaved rounds so that load changes on a
    shared machine hit every case alike."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in cases}
    for r in range(rounds):
        for name, fn in cases.items():
            parts[name].append(timed(fn, max(1, calls // rounds), warmup if r == 0 else 50))
    return {name: figures(np.concatenate(p)) for name, p in parts.items()}


def figures(samples_ns: np.ndarray) -> dict[str, float]:
    return {f"{k}_us": v for k, v in percentiles(samples_ns, scale=1e3).items() if k != "n"}


def table(title: str, rows: dict[str, dict[str, float]], baseline: str) -> None:
    base = rows[baseline]["p50_us"]
    print(f"\n{title} (µs; ratio = baseline p50 / p50, baseline: {baseline})")
    print(f"{'case':58s} {'p50':>8s} {'p99':>8s} {'p99.9':>8s} {'ratio':>6s}")
    for name, f in rows.items():
        print(
            f"{name:58s} {f['p50_us']:8.2f} {f['p99_us']:8.2f} {f['p999_us']:8.2f} "
            f"{base / f['p50_us']:6.2f}"
        )


def bench_mlp_cpu(model: nn.Sequential, calls: int, warmup: int) -> dict[str, dict[str, float]]:
    k = model[0].in_features
    plan = rk.compile(model, backend="cpu")
    x_np = calibration_features(64)[:, :k] if k == N_FEATURES else np.random.randn(64, k)
    x_np = np.ascontiguousarray(x_np[:1], dtype=np.float32)  # [1, K]
    out_np = np.empty((1, plan.out_features), np.float32)
    x_t = torch.from_numpy(x_np)
    lin = [m for m in model if isinstance(m, nn.Linear)]
    acts = [type(model[i + 1]).__name__ if i + 1 < len(model) else "" for i, m in enumerate(model)]
    acts = [a for a, m in zip(acts, model, strict=True) if isinstance(m, nn.Linear)]
    w_t = [m.weight.detach().T.contiguous() for m in lin]
    b = [m.bias.detach() for m in lin]
    fn = {"ReLU": torch.relu, "GELU": torch.nn.functional.gelu, "SiLU": torch.nn.functional.silu}

    def torch_functional() -> torch.Tensor:
        with torch.inference_mode():
            h = x_t
            for w, bias, a in zip(w_t, b, acts, strict=True):
                h = torch.addmm(bias, h, w)
                if a:
                    h = fn[a](h)
            return h

    def module_inference() -> torch.Tensor:
        with torch.inference_mode():
            return model(x_t)

    def module_eager() -> torch.Tensor:
        with torch.no_grad():
            return model(x_t)

    cases = {
        "torch eager nn.Module (no_grad)": module_eager,
        "torch nn.Module, inference_mode": module_inference,
        "torch functional addmm, inference_mode": torch_functional,
        "plan(x) tensor in/out (CPU path, numpy at B=1)": lambda: plan(x_t),
        "plan.run_into(x, out) numpy buffers (CPU path)": lambda: plan.run_into(x_np, out_np),
    }
    np.testing.assert_allclose(
        plan(x_t).numpy(), module_eager().numpy(), atol=1e-5, rtol=1e-5
    )  # same answer before timing it
    return measure(cases, calls, warmup)


def bench_gru_cpu(calls: int, warmup: int) -> dict[str, dict[str, float]]:
    gru = nn.GRU(N_FEATURES, 32).eval()
    plan = rk.compile(gru, backend="cpu")
    x = torch.from_numpy(calibration_features(8)[:1])
    h = torch.zeros(1, 32)
    h3 = h[None]

    def torch_gru() -> object:
        with torch.no_grad():
            return gru(x[None], h3)

    def plan_step() -> None:
        plan.run_into(x, h, h)  # state carried in place

    cases = {
        "torch nn.GRU, one step (no_grad)": torch_gru,
        "GRU plan run_into, state in place (CPU path)": plan_step,
    }
    return measure(cases, calls, warmup)


def bench_features(calls: int, warmup: int) -> tuple[dict[str, dict[str, float]], float]:
    quotes, qrows, trades, trows = synthetic_market(20_000, 5_000, n_instruments=4, seed=1)
    state = FeatureState([0.01, 0.25, 0.5, 1.0])
    state.scan(quotes[:10], qrows[:10], trades[:0], trows[:0])  # compile outside the timing
    out = np.empty(N_FEATURES, np.float32)
    j = 0

    def live_quote() -> None:
        nonlocal j
        j = (j + 1) % len(quotes)
        state.update_quote(qrows[j], quotes, j, out)

    def live_trade() -> None:
        nonlocal j
        j = (j + 1) % len(trades)
        state.update_trade(trows[j], trades, j, out)

    rows = measure(
        {
            "feature live update, one QUOTE": live_quote,
            "feature live update, one TRADE": live_trade,
        },
        calls,
        warmup,
    )
    merge_order(quotes, trades)
    state.reset()
    t0 = time.perf_counter()
    state.scan(quotes, qrows, trades, trows)
    events_per_s = (len(quotes) + len(trades)) / (time.perf_counter() - t0)
    return rows, events_per_s


def throughput_cpu(model: nn.Sequential, batch: int = 4096, calls: int = 200) -> dict:
    """rows/s from the p50 time of one batch-4096 call (interleaved cases)."""
    plan = rk.compile(model, backend="cpu")
    x = torch.randn(batch, model[0].in_features)

    def module_call() -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    cases = {"plan(x) (CPU path, addmm)": lambda: plan(x), "nn.Module, inference_mode": module_call}
    samples: dict[str, list[np.ndarray]] = {name: [] for name in cases}
    for _ in range(5):  # rounds, so load changes hit both cases alike
        for name, f in cases.items():
            samples[name].append(timed(f, calls // 5, 5))
    out = {}
    for name, parts in samples.items():
        p50_s = float(np.percentile(np.concatenate(parts), 50)) / 1e9
        out[name] = {"rows_per_s": batch / p50_s, "p50_us": p50_s * 1e6}
    return out


def bench_gpu(model: nn.Sequential, calls: int, warmup: int) -> dict:
    """Batch-1 end to end and batch-4096 throughput on CUDA (needs a GPU)."""
    from redline.kernels.fused_mlp import fused_mlp

    dev = torch.device("cuda")
    k = model[0].in_features
    gmodel = copy.deepcopy(model).to(dev).eval()
    plan = rk.compile(model, device=dev, backend="triton")
    x_pin = torch.from_numpy(calibration_features(8)[:1]).pin_memory()
    out_pin = torch.empty((1, plan.out_features)).pin_memory()
    x_dev = torch.empty((1, k), device=dev)
    out_dev = torch.empty((1, plan.out_features), device=dev)
    stream = torch.cuda.current_stream()

    def e2e(compute: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            x_dev.copy_(x_pin, non_blocking=True)
            compute()
            out_pin.copy_(out_dev, non_blocking=True)
            stream.synchronize()

        return run

    def fused() -> None:
        fused_mlp(x_dev, plan._dev_layers, "fp32", out=out_dev)

    def torch_eager() -> None:
        with torch.inference_mode():
            out_dev.copy_(gmodel(x_dev))

    def graphed(compute: Callable[[], None]) -> Callable[[], None]:
        # Capture H2D, compute and D2H in one graph: a replay is one submission.
        s = torch.cuda.Stream()
        s.wait_stream(stream)
        with torch.cuda.stream(s):
            for _ in range(3):
                compute()
        stream.wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            x_dev.copy_(x_pin, non_blocking=True)
            compute()
            out_pin.copy_(out_dev, non_blocking=True)

        def run() -> None:
            graph.replay()
            stream.synchronize()

        return run

    compiled = torch.compile(gmodel)

    def torch_compiled() -> None:
        with torch.inference_mode():
            out_dev.copy_(compiled(x_dev))

    cases = {
        "torch eager, end to end": e2e(torch_eager),
        "torch CUDA graph, end to end": graphed(torch_eager),
        "torch.compile, end to end": e2e(torch_compiled),
        "fused Triton MLP, eager launch, end to end": e2e(fused),
        "fused Triton MLP, CUDA graph, end to end": graphed(fused),
    }
    latency = measure(cases, calls, warmup)

    # Batch-4096 bf16 throughput, device-resident input and output.
    batch = 4096
    xb = torch.randn(batch, k, device=dev)
    plan_bf16 = rk.compile(model, precision="bf16", device=dev, backend="triton")
    model_bf16 = copy.deepcopy(model).to(dev, torch.bfloat16).eval()
    compiled_bf16 = torch.compile(model_bf16)
    xb16 = xb.to(torch.bfloat16)
    flops = (
        2 * batch * sum(m.in_features * m.out_features for m in model if isinstance(m, nn.Linear))
    )
    weight_bytes = sum(t.numel() * t.element_size() for t in plan_bf16.tensors().values())
    io_bytes = batch * (k * 4 + plan.out_features * 4) + weight_bytes
    roofline_s = max(flops / H100_BF16_FLOPS, io_bytes / H100_HBM_BYTES)
    throughput = {}
    with torch.inference_mode():
        for name, f in (
            ("fused Triton MLP bf16", lambda: plan_bf16(xb)),
            ("torch eager bf16", lambda: model_bf16(xb16)),
            ("torch.compile bf16", lambda: compiled_bf16(xb16)),
        ):
            for _ in range(20):
                f()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(200):
                f()
            end.record()
            end.synchronize()
            per_call_s = start.elapsed_time(end) / 1e3 / 200
            throughput[name] = {
                "rows_per_s": batch / per_call_s,
                "us_per_batch": per_call_s * 1e6,
                "x_roofline": per_call_s / roofline_s,
            }
    return {
        "latency_batch1": latency,
        "throughput_4096": throughput,
        "roofline_us": roofline_s * 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20_000, help="timed calls per case")
    ap.add_argument("--warmup", type=int, default=2_000)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, cuda {torch.cuda.is_available()}"
    )
    report: dict = {}
    demo = bundled_model()  # what the demo graph runs
    gelu = demo_model()
    floors = nn.Sequential(
        nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 16)
    ).eval()
    models = (("bundled demo 14-32-32-1 ReLU", demo), ("seeded 14-64-64-1 GELU/ReLU", gelu),
              ("FLOORS 32-64-64-16 ReLU", floors))  # fmt: skip
    for name, model in models:
        rows = bench_mlp_cpu(model, args.calls, args.warmup)
        table(f"MLP batch 1, CPU: {name}", rows, "torch eager nn.Module (no_grad)")
        report[f"mlp_cpu_batch1[{name}]"] = rows
    rows = bench_gru_cpu(args.calls, args.warmup)
    table("GRU 14->32 one step, batch 1, CPU", rows, "torch nn.GRU, one step (no_grad)")
    report["gru_cpu_batch1"] = rows
    rows, eps = bench_features(args.calls, args.warmup)
    table("Feature kernel (numba), per event", rows, "feature live update, one QUOTE")
    print(f"feature replay scan: {eps / 1e6:.2f} M events/s (25k events, 4 instruments)")
    report["features"] = rows | {"scan_events_per_s": eps}
    tput = throughput_cpu(demo)
    print("\nCPU batch 4096, demo model (p50 per batch):")
    for name, f in tput.items():
        print(f"  {name:40s} {f['p50_us']:9.1f} µs  {f['rows_per_s'] / 1e6:6.2f} M rows/s")
    report["cpu_throughput_4096"] = tput
    if torch.cuda.is_available():
        gpu = bench_gpu(demo, args.calls, args.warmup)
        table("GPU batch 1, demo model", gpu["latency_batch1"], "torch CUDA graph, end to end")
        for name, f in gpu["throughput_4096"].items():
            print(
                f"{name:30s} {f['rows_per_s'] / 1e6:8.1f} M rows/s  "
                f"{f['x_roofline']:.1f}x the roofline's time per batch"
            )
        report["gpu"] = gpu
    else:
        print("\nGPU figures pending: no CUDA device on this machine.")
        report["gpu"] = "pending: no CUDA device"
    write_json(args.json, report)


if __name__ == "__main__":
    main()
