"""A graph's arbiter node made real: two worker processes, the CPU fallback, the Arbiter, warm.

The runtime calls `build_arbiter` for every arbiter node it runs (tests inject a fake instead).
Devices: workers whose `device` is "auto" get CUDA when the driver reports a GPU, else CPU.
The model plan is checked here, before any worker starts (kernels/plans/plan_file.py, as each
worker checks it again): a pickled, corrupt or untrusted plan, or one that takes other inputs
than the workers feed or gives more than the one score the strategy reads, fails the graph's
start with one line instead of two worker crashes.
"""

from __future__ import annotations

from redline.feeds.clock import Clock
from redline.pipeline.graph import config as gc


def build_arbiter(node: gc.ArbiterSpec, clock: Clock, graph: gc.GraphSpec):
    """The workers' Arbiter with its two worker processes, warm and in service."""
    from redline.pipeline.arbiter.arbiter import Arbiter
    from redline.pipeline.arbiter.fallback import CpuFallback, safe_default
    from redline.pipeline.workers.link import ProcessLink, ipc_endpoints

    model_dir = node.model or default_model_dir(node)
    trust = node.plan_trust()
    checked = check_model(node, model_dir)
    backend, devices = _worker_devices(node)
    links = tuple(
        ProcessLink(
            name,
            endpoint,
            model_dir,
            backend,
            device,
            heartbeat_ms=w.heartbeat_us / 1000,
            extra_args=_worker_args(w, trust),
        )
        for name, endpoint, device, w in zip(
            "AB", ipc_endpoints(2), devices, node.workers, strict=True
        )
    )
    fallback = None
    n_out = 1
    if node.fallback:
        from redline.kernels.feature_state import make_features
        from redline.kernels.plans.numpy_loader import numpy_plan
        from redline.pipeline.workers.engines import CpuEngine

        # the workers' CPU path: torch (~2-10 s to import, ~250 MB) only for a plan numpy
        # cannot run
        plan = numpy_plan(checked)
        if plan is None:
            from redline.kernels.plans.storage import build_plan

            plan = build_plan(checked, "cpu", "cpu")
        capacity = min(w.max_instruments for w in node.workers)  # as the node admits
        features = make_features(plan, checked.features, capacity, node.workers[0].scale)
        fallback = CpuFallback(CpuEngine(plan, features), clock)
        n_out = plan.out_features
    cfg = node.arbiter_config(graph.budget_ns)
    arb = Arbiter(links, cfg, clock, safe_default=safe_default(n_out), fallback=fallback)
    arb.wait_ready(timeout_s=120)
    return arb


def check_model(node: gc.ArbiterSpec, model_dir: str):
    """The node's plan, checked as its workers will load it (`plan_file.read_plan`, with each
    worker's features and the node's trusted keys) and giving the one score the arbiter node
    hands the strategy (output 0 of each answer)."""
    from redline.kernels.plans.plan_file import read_plan

    trust = node.plan_trust()
    checked = [read_plan(model_dir, features=w.features, trust=trust) for w in node.workers]
    outputs = checked[0].manifest["out_features"]
    if outputs != 1:
        raise gc.GraphError(
            f"node arbiter: field 'model': the plan in {model_dir} gives {outputs} outputs; the "
            "strategy reads one score per decision; export a model with one output"
        )
    return checked[0]


def _worker_args(w: gc.WorkerSpec, trust) -> tuple[str, ...]:
    """The worker command's options that a graph's WorkerSpec and the node's trust set."""
    keys = [arg for key in trust.trusted_keys for arg in ("--trusted-key", key)]
    signed = ["--require-signed"] if trust.require_signed else []
    return (
        "--max-instruments", str(w.max_instruments), "--features", w.features, "--scale", str(w.scale),
        *keys, *signed,
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


def default_model_dir(node: gc.ArbiterSpec) -> str:
    """The bundled model for the node's kind: the trading demo model, or for a frame arbiter
    the driving planner's learned term (kernels/plans/driving_model.py, its shipped weights)."""
    from redline.kernels.plans.demo_model import bundled_model_dir
    from redline.kernels.plans.driving_model import bundled_dir

    return str(bundled_dir() if isinstance(node, gc.FrameArbiterSpec) else bundled_model_dir())
