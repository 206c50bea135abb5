"""A torch-free reader of MLP plan directories (`redline.kernels` plan files) for CPU workers.

Why: a CPU worker that imports torch takes 2.2 s to start on an idle 2 vCPU VM and 7 s under
load, and a restart is what a failover costs; numpy + safetensors start in 0.2 s. The plan file
is the kernels' format (manifest.json + weights.safetensors, sha256 checked); the arithmetic is
the kernels' own small-batch CPU path (`redline.kernels.numpy_mlp`, torch-free), and
tests/kernels/plans/test_numpy_loader.py checks it against `redline.kernels.load` on the same files.
What it does not cover (GRU plans, bf16 weights) returns None from `load_numpy_plan`, and
the worker then loads through `redline.kernels` instead.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import numpy as np
import safetensors.numpy

from redline.kernels.numpy_mlp import ACTIVATIONS, NumpyMLP


class NumpyMLPPlan(NumpyMLP):
    """fp32 MLP with the plan API the engines use: `run_into(x [B,K], out [B,N])`,
    B <= `max_batch` (the engine answers a feed batch's rows in one call)."""

    def __init__(self, weights_t: list[np.ndarray], biases: list[np.ndarray], acts: list[str],
                 version: str) -> None:  # fmt: skip
        super().__init__(weights_t, biases, acts)
        self.version = version
        self.version_id = zlib.crc32(version.encode())  # as kernels' Plan.version_id
        self.backend = "numpy"


def load_numpy_plan(directory: str | Path) -> NumpyMLPPlan | None:
    """The plan in `directory` on numpy, or None when it needs `redline.kernels` (see above).

    A missing or corrupt plan raises ValueError/FileNotFoundError naming the file."""
    directory = Path(directory)
    mpath = directory / "manifest.json"
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{mpath}: no plan manifest (is {directory} a plan?)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{mpath}: not JSON ({exc})") from None
    if manifest.get("format") != "redline.plan" or manifest.get("format_version") != 1:
        return None
    if manifest.get("kind") != "mlp" or manifest.get("precision") not in ("fp32", "fp16", "int8"):
        return None
    layers = manifest["architecture"]["layers"]
    if any(layer["activation"] not in ACTIVATIONS for layer in layers):
        return None
    wpath = directory / manifest["weights"]
    blob = wpath.read_bytes()
    if hashlib.sha256(blob).hexdigest() != manifest["sha256"]:
        raise ValueError(f"{wpath}: sha256 does not match {mpath}")
    tensors = safetensors.numpy.load(blob)
    weights_t, biases = [], []
    for i in range(len(layers)):
        w = tensors[f"layer{i}.weight"].astype(np.float32)  # [N, K]
        scale = tensors.get(f"layer{i}.scale")
        if scale is not None:  # int8 weight-only: one fp32 scale per output channel
            w = w * scale.astype(np.float32)[:, None]
        weights_t.append(np.ascontiguousarray(w.T))
        biases.append(tensors[f"layer{i}.bias"].astype(np.float32))
    return NumpyMLPPlan(weights_t, biases, [layer["activation"] for layer in layers],
                        manifest["version"])  # fmt: skip
