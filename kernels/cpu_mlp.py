"""The CPU path of an MLP plan: numpy for small calls, `torch.addmm` for large ones.

Measured on the 2 vCPU VM, 2026-12-03 (bench/bench_cpu_mlp.py, medians of 3 runs, two
sessions at load 2.8-4.9, so read the orders of magnitude): the bundled 14-32-32-1 ReLU
model (1.5k multiply-adds per row) at 1 / 8 / 64 / 256 / 4096 rows: a plain numpy chain
7.2 / 7.9-12.2 / 12.5-16.7 / 26.7-32.1 / 785-955 µs, a plain `torch.addmm` chain 12.1-12.7 /
14.8-25.6 / 26.3-37.5 / 40.5-58.6 / 330-383 µs. The 32-64-64-16 model (7.2k per row): numpy
ahead at 64 rows (23 vs 25, 29 vs 58 µs), addmm at 256 (49 vs 60 µs in the quieter session).
So a call runs on numpy while its work is under NUMPY_MAX_MACS multiply-adds (at most
NUMPY_MAX_ROWS rows), on addmm above. GELU/SiLU cost numpy ~20 array passes each, so those
models stop at 64 rows, where numpy led addmm by 41 vs 55 µs (and trailed in a noisier run).
Both compute in fp32 on the plan's (dequantized) weights.
"""

from __future__ import annotations

import numpy as np
import torch

from redline.kernels.fused_mlp import MLPLayer, dequantized_weight
from redline.kernels.numpy_mlp import MAX_BATCH, NumpyMLP

NUMPY_MAX_MACS = 800_000  # multiply-adds per call below which numpy beats addmm (see above)
NUMPY_MAX_ROWS = 256  # scratch rows numpy keeps per layer
_COSTLY = ("gelu", "silu")  # many numpy passes per element


def numpy_rows(layers: list[MLPLayer] | tuple[MLPLayer, ...]) -> int:
    """Rows per call up to which numpy is the faster path for these layers (see above)."""
    macs = sum(layer.in_features * layer.out_features for layer in layers)
    rows = NUMPY_MAX_MACS // macs
    if any(layer.activation in _COSTLY for layer in layers):
        rows = min(rows, MAX_BATCH)
    return max(1, min(rows, NUMPY_MAX_ROWS))


class CpuMLP:
    """fp32 executor for a list of MLP layers. Not thread-safe: the numpy path's scratch
    buffers are shared by calls."""

    def __init__(self, layers: list[MLPLayer] | tuple[MLPLayer, ...]) -> None:
        # [K, N] fp32, contiguous, so both numpy and addmm read rows in order.
        self.weights_t = [dequantized_weight(layer).T.contiguous() for layer in layers]
        self.biases = [layer.bias.to(torch.float32).contiguous() for layer in layers]
        self.activations = [layer.activation for layer in layers]
        # Small batches run on numpy buffers allocated once (the torch-free hot path).
        self._numpy = NumpyMLP(
            [w.numpy() for w in self.weights_t],
            [b.numpy() for b in self.biases],
            self.activations,
            numpy_rows(layers),
        )
        self.max_batch = self._numpy.max_batch  # rows per call on numpy; more go to addmm

    def forward_torch(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, K] CPU -> new fp32 [B, N]."""
        with torch.inference_mode():
            h = x.to(torch.float32)
            for w, b, act in zip(self.weights_t, self.biases, self.activations, strict=True):
                h = torch.addmm(b, h, w)
                if act == "relu":
                    h.relu_()
                elif act == "gelu":
                    h = torch.nn.functional.gelu(h)
                elif act == "silu":
                    h = torch.nn.functional.silu(h, inplace=True)
            return h

    def forward_numpy_into(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """x [B, K] fp32 -> `out` [B, N] fp32, B <= max_batch, no allocation."""
        return self._numpy.run_into(x, out)

    def run_into(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """x [B, K] fp32 -> `out` [B, N] fp32 by the faster path for B (see the module doc)."""
        if len(x) <= self.max_batch:
            return self._numpy.run_into(x, out)
        out[:] = self.forward_torch(torch.from_numpy(x)).numpy()
        return out
