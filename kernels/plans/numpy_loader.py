"""A torch-free loader of MLP plan directories (`redline.kernels` plan files) for CPU workers.

Why: a CPU worker that imports torch takes 2.2 s to start on an idle 2 vCPU VM and 7 s under
load, and a restart is what a failover costs; numpy + safetensors start in 0.2 s. The files are
checked by the same code as `redline.kernels.load` (plan_file.read_plan: pickles, sha256,
tensors, widths, input names, signature), so both loaders refuse a plan with the same message.
The arithmetic is the kernels' own small-batch CPU path (`redline.kernels.numpy_mlp`), and
tests/kernels/plans/test_numpy_loader.py checks it against `redline.kernels.load` on the same
files. What it does not cover (GRU plans, bf16 weights, activations numpy lacks) returns None
from `load_numpy_plan`, and the worker then loads through `redline.kernels` instead.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import safetensors.numpy

from redline.kernels.numpy_mlp import ACTIVATIONS, NumpyMLP
from redline.kernels.plans.plan_file import MANIFEST, PlanFile, PlanFileError, read_plan
from redline.kernels.plans.signing import Trust


class NumpyMLPPlan(NumpyMLP):
    """fp32 MLP with the plan API the engines use: `run_into(x [B,K], out [B,N])`,
    B <= `max_batch` (the engine answers a feed batch's rows in one call)."""

    def __init__(self, weights_t: list[np.ndarray], biases: list[np.ndarray], acts: list[str],
                 version: str, input_features: tuple[str, ...] | None = None) -> None:  # fmt: skip
        super().__init__(weights_t, biases, acts)
        self.version = version
        self.version_id = zlib.crc32(version.encode())  # as kernels' Plan.version_id
        self.backend = "numpy"
        self.input_features = input_features


def load_numpy_plan(
    directory: str | Path, *, features: str | None = None, trust: Trust | None = None
) -> NumpyMLPPlan | None:
    """The plan in `directory` on numpy, or None when it needs `redline.kernels` (see above).

    Every check of `plan_file.read_plan` runs first (with `features` and `trust` as there): a
    missing, corrupt, pickled, mismatched or untrusted plan raises a ValueError naming it."""
    return numpy_plan(read_plan(directory, features=features, trust=trust))


def numpy_plan(checked: PlanFile) -> NumpyMLPPlan | None:
    """The plan of a checked plan directory on numpy, or None (see `load_numpy_plan`)."""
    manifest = checked.manifest
    if manifest["kind"] != "mlp" or manifest["precision"] not in ("fp32", "fp16", "int8"):
        return None
    layers = manifest["architecture"]["layers"]
    if any(layer["activation"] not in ACTIVATIONS for layer in layers):
        return None
    try:
        tensors = safetensors.numpy.load(checked.blob)
    except Exception as exc:  # safetensors raises its own error types
        where = checked.directory / MANIFEST
        raise PlanFileError(f"{where}: weights not readable as safetensors ({exc})") from None
    weights_t, biases = [], []
    for i in range(len(layers)):
        w = tensors[f"layer{i}.weight"].astype(np.float32)  # [N, K]
        scale = tensors.get(f"layer{i}.scale")
        if scale is not None:  # int8 weight-only: one fp32 scale per output channel
            w = w * scale.astype(np.float32)[:, None]
        weights_t.append(np.ascontiguousarray(w.T))
        biases.append(tensors[f"layer{i}.bias"].astype(np.float32))
    names = manifest.get("input_features")
    return NumpyMLPPlan(weights_t, biases, [layer["activation"] for layer in layers],
                        manifest["version"], tuple(names) if names else None)  # fmt: skip


def load_cpu_plan(
    directory: str | Path, *, features: str | None = None, trust: Trust | None = None
):
    """The plan in `directory` for a CPU engine: on numpy, through `redline.kernels` (torch)
    only where numpy cannot run it; checked as `load_numpy_plan` checks."""
    checked = read_plan(directory, features=features, trust=trust)
    plan = numpy_plan(checked)
    if plan is None:
        from redline.kernels.plans.storage import build_plan

        plan = build_plan(checked, "cpu", "cpu")
    return plan
