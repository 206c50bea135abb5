"""A graph's arbiter node made real: two worker processes, the CPU fallback, the Arbiter, warm.

The runtime calls `build_arbiter` for every arbiter node it runs (tests inject a fake instead).
Devices: workers whose `device` is "auto" get CUDA when the driver reports a GPU, else CPU.
"""

from __future__ import annotations

from redline.feeds.clock import Clock
from redline.pipeline.graph import config as gc


def build_arbiter(node: gc.ArbiterSpec, clock: Clock, graph: gc.GraphSpec):
    """The workers' Arbiter with its two worker processes, warm and in service."""
    from redline.pipeline.arbiter.arbiter import Arbiter
    from redline.pipeline.arbiter.fallback import CpuFallback, safe_default
    from redline.pipeline.workers.link import ProcessLink, ipc_endpoints

    model_dir = node.model or default_model_dir()
    backend, devices = _worker_devices(node)
    links = tuple(
        ProcessLink(
            name,
            endpoint,
            model_dir,
            backend,
            device,
            heartbeat_ms=w.heartbeat_us / 1000,
            extra_args=_worker_args(w),
        )
        for name, endpoint, device, w in zip(
            "AB", ipc_endpoints(2), devices, node.workers, strict=True
        )
    )
    fallback = None
    n_out = 1
    if node.fallback:
        from redline.kernels.feature_state import make_features
        from redline.kernels.plans.numpy_loader import load_numpy_plan
        from redline.pipeline.workers.engines import CpuEngine

        plan = load_numpy_plan(model_dir)  # the workers' CPU path: no torch import (~2-10 s)
        capacity = min(w.max_instruments for w in node.workers)  # as the node admits
        features = make_features(plan, node.workers[0].features, capacity, node.workers[0].scale)
        fallback = CpuFallback(CpuEngine(plan, features), clock)
        n_out = plan.out_features
    cfg = node.arbiter_config(graph.budget_ns)
    arb = Arbiter(links, cfg, clock, safe_default=safe_default(n_out), fallback=fallback)
    arb.wait_ready(timeout_s=120)
    return arb


def _worker_args(w: gc.WorkerSpec) -> tuple[str, ...]:
    """The worker command's options that a graph's WorkerSpec sets."""
    return (
        "--max-instruments", str(w.max_instruments), "--features", w.features, "--scale", str(w.scale),
    )  # fmt: skip


def _worker_devices(node: gc.ArbiterSpec) -> tuple[str, tuple[int, int]]:
    """("cpu" | "cuda", device indices) from the workers' `device` fields."""
    devs = [w.device for w in node.workers]
    if all(d == "auto" for d in devs):
        n = cuda_device_count()
        if n == 0:
            return "cpu", (0, 0)
        return "cuda", (0, 1 if n > 1 else 0)
    if all(d == "cpu" for d in devs):
        return "cpu", (0, 0)
    if all(d.startswith("cuda") for d in devs):
        idx = [int(d.partition(":")[2] or 0) for d in devs]
        return "cuda", (idx[0], idx[1])
    raise gc.GraphError(
        f"node arbiter: field 'workers': devices {devs} mix backends; use 'auto', 'cpu' for "
        "both, or 'cuda:N' for both"
    )


def cuda_device_count() -> int:
    """NVIDIA GPUs the driver reports, without importing torch (seconds on a busy host)."""
    from pathlib import Path

    gpus = Path("/proc/driver/nvidia/gpus")
    return len(list(gpus.iterdir())) if gpus.is_dir() else 0


def default_model_dir() -> str:
    from redline.replay_data import DIR

    return str(DIR / "model")
