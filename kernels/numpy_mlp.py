"""A small-batch fp32 MLP on numpy buffers allocated once: the CPU hot path.

Torch-free on purpose: a CPU worker that imports torch takes ~2 s to start on an idle 2 vCPU
VM (5-15 s loaded), and a restart is what a failover costs. FLOORS.md: a 32-64-64-16 MLP at
batch 1 costs 7 µs in numpy vs 24 µs through nn.Module; 8 rows in one call cost 10.4 µs vs
6.8 µs for one, so a worker answers a feed batch's rows in one call. Used by the kernels' CPU plan
(`cpu_mlp.CpuMLP`) and by the workers' torch-free plan reader (`kernels/plans/numpy_loader.py`).
"""

from __future__ import annotations

import numpy as np

ACTIVATIONS = ("none", "relu", "silu", "gelu")
# erf by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7, below fp32 resolution near 1): numpy has
# no erf, and exact GELU is x * (1 + erf(x / sqrt 2)) / 2.
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
_SQRT1_2 = 0.7071067811865476


MAX_BATCH = 64  # rows per call; scratch is [MAX_BATCH, N] per layer (~100 KB for 32-64-64-16)


class NumpyMLP:
    """fp32 MLP on 1..`max_batch` rows with no allocation per call. Not thread-safe: scratch is
    shared. A row's result can differ in the last bits between batch sizes (BLAS picks another
    kernel: ~6e-6 measured), never between two calls of the same batch size."""

    def __init__(
        self,
        weights_t: list[np.ndarray],
        biases: list[np.ndarray],
        acts: list[str],
        max_batch: int = MAX_BATCH,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"NumpyMLP max_batch must be >= 1, got {max_batch}")
        for act in acts:
            if act not in ACTIVATIONS:
                raise ValueError(f"activation {act!r} is not one of {ACTIVATIONS}")
        self.weights_t = [np.ascontiguousarray(w, np.float32) for w in weights_t]  # [K, N] each
        self.biases = [np.asarray(b, np.float32).reshape(1, -1) for b in biases]  # [1, N]
        self.acts = list(acts)
        self.in_features = self.weights_t[0].shape[0]
        self.out_features = self.weights_t[-1].shape[1]
        self.max_batch = max_batch
        # Per layer: its output and three scratch arrays, [max_batch, N] each
        full = [[np.empty((max_batch, w.shape[1]), np.float32) for _ in range(4)]
                for w in self.weights_t]  # fmt: skip
        # ... and their [B, N] views for every B, made here so a call slices nothing
        self._scratch = [None] + [[[a[:b] for a in layer] for layer in full]
                                  for b in range(1, max_batch + 1)]  # fmt: skip

    def run_into(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """x [B, K] float32 -> out [B, N] float32, 1 <= B <= max_batch, no allocation."""
        rows = len(x)
        if not 0 < rows <= self.max_batch:
            raise ValueError(f"NumpyMLP: batch of {rows} rows, expected 1..{self.max_batch}")
        scratch = self._scratch[rows]
        h = x
        last = len(self.weights_t) - 1
        for i, (w, b, act) in enumerate(zip(self.weights_t, self.biases, self.acts, strict=True)):
            buf, t, t2, t3 = scratch[i]
            dst = out if i == last else buf
            np.dot(h, w, out=dst)  # BLAS straight into dst: 2-3x less than matmul here
            np.add(dst, b, out=dst)
            if act == "relu":
                np.maximum(dst, 0.0, out=dst)
            elif act == "silu":
                # x * sigmoid(x) = x * (1 + tanh(x/2)) / 2: no exp overflow for large |x|
                np.multiply(dst, 0.5, out=t)
                np.tanh(t, out=t)
                np.add(t, 1.0, out=t)
                np.multiply(t, 0.5, out=t)
                np.multiply(dst, t, out=dst)
            elif act == "gelu":
                _gelu_inplace(dst, t, t2, t3)
            h = dst
        return out


def _gelu_inplace(x: np.ndarray, t: np.ndarray, e: np.ndarray, poly: np.ndarray) -> None:
    """x <- x * (1 + erf(x / sqrt 2)) / 2, using scratch t, e and poly of x's shape."""
    np.multiply(x, _SQRT1_2, out=e)  # z
    np.abs(e, out=t)
    np.multiply(t, _AS_P, out=t)
    np.add(t, 1.0, out=t)
    np.reciprocal(t, out=t)  # k = 1 / (1 + p|z|)
    np.multiply(t, _AS_A[4], out=poly)
    for a in reversed(_AS_A[:4]):  # Horner: k * (a1 + k * (a2 + ...))
        np.add(poly, a, out=poly)
        np.multiply(poly, t, out=poly)
    np.square(e, out=t)
    np.minimum(t, 80.0, out=t)  # exp(-80) is already 0 next to 1; no underflow past it
    np.negative(t, out=t)
    np.exp(t, out=t)
    np.multiply(poly, t, out=t)  # 1 - erf(|z|)
    np.subtract(1.0, t, out=t)  # erf(|z|)
    np.copysign(t, e, out=t)  # erf(z)
    np.add(t, 1.0, out=t)
    np.multiply(t, 0.5, out=t)
    np.multiply(x, t, out=x)
