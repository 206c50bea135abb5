"""A torch-free reader of MLP plan directories (`redline.kernels` plan files) for CPU workers.

Why: a CPU worker that imports torch takes 2.2 s to start on an idle 2 vCPU VM and 7 s under
load, and a restart is what a failover costs; numpy + safetensors start in 0.2 s. The plan file
is the kernels' format (manifest.json + weights.safetensors, sha256 checked); the arithmetic is
the kernels' CPU path at batch 1 (fp32 matmul, bias, activation on preallocated buffers), and
tests/pipeline/test_numpy_plan.py checks it against `redline.kernels.load` on the same files.
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

_ACTIVATIONS = ("none", "relu", "silu", "gelu")
# erf by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7, below fp32 resolution near 1): numpy has
# no erf, and exact GELU is x * (1 + erf(x / sqrt 2)) / 2.
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
_SQRT1_2 = 0.7071067811865476


class NumpyMLPPlan:
    """Batch-1 fp32 MLP with the plan API the engines use: `run_into(x [1,K], out [1,N])`."""

    def __init__(self, weights_t: list[np.ndarray], biases: list[np.ndarray], acts: list[str],
                 version: str) -> None:  # fmt: skip
        self.weights_t = weights_t  # [K, N] each, C-contiguous
        self.biases = [b.reshape(1, -1) for b in biases]  # [1, N]
        self.acts = acts
        self.version = version
        self.version_id = zlib.crc32(version.encode())  # as kernels' Plan.version_id
        self.in_features = weights_t[0].shape[0]
        self.out_features = weights_t[-1].shape[1]
        self.backend = "numpy"
        self._buf = [np.empty((1, w.shape[1]), np.float32) for w in weights_t]
        self._tmp = [np.empty((1, w.shape[1]), np.float32) for w in weights_t]
        self._tmp2 = [np.empty((1, w.shape[1]), np.float32) for w in weights_t]

    def run_into(self, x: np.ndarray, out: np.ndarray) -> None:
        """x [1, K] float32 -> out [1, N] float32, no allocation."""
        h = x
        last = len(self.weights_t) - 1
        for i, (w, b, act) in enumerate(zip(self.weights_t, self.biases, self.acts, strict=True)):
            dst = out if i == last else self._buf[i]
            np.matmul(h, w, out=dst)
            np.add(dst, b, out=dst)
            if act == "relu":
                np.maximum(dst, 0.0, out=dst)
            elif act == "silu":
                # x * sigmoid(x) = x * (1 + tanh(x/2)) / 2: no exp overflow for large |x|
                t = self._tmp[i]
                np.multiply(dst, 0.5, out=t)
                np.tanh(t, out=t)
                np.add(t, 1.0, out=t)
                np.multiply(t, 0.5, out=t)
                np.multiply(dst, t, out=dst)
            elif act == "gelu":
                _gelu_inplace(dst, self._tmp[i], self._tmp2[i])
            h = dst


def _gelu_inplace(x: np.ndarray, t: np.ndarray, e: np.ndarray) -> None:
    """x <- x * (1 + erf(x / sqrt 2)) / 2, using scratch t and e of x's shape."""
    np.multiply(x, _SQRT1_2, out=e)  # z
    np.abs(e, out=t)
    np.multiply(t, _AS_P, out=t)
    np.add(t, 1.0, out=t)
    np.reciprocal(t, out=t)  # k = 1 / (1 + p|z|)
    poly = _AS_A[4] * t
    for a in reversed(_AS_A[:4]):  # Horner: k * (a1 + k * (a2 + ...))
        np.add(poly, a, out=poly)
        np.multiply(poly, t, out=poly)
    np.square(e, out=t)
    np.negative(t, out=t)
    np.exp(t, out=t)
    np.multiply(poly, t, out=t)  # 1 - erf(|z|)
    np.subtract(1.0, t, out=t)  # erf(|z|)
    np.copysign(t, e, out=t)  # erf(z)
    np.add(t, 1.0, out=t)
    np.multiply(t, 0.5, out=t)
    np.multiply(x, t, out=x)


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
    if any(layer["activation"] not in _ACTIVATIONS for layer in layers):
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
