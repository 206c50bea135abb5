"""The CPU path of an MLP plan: numpy for small calls, `torch.addmm` for large ones.

Measured on the 2 vCPU VM, 2026-12-04 00:20 UTC (bench/bench_cpu_mlp.py --runs 3, load ~1),
µs p50 at 64 / 256 rows: the bundled 14-32-32-1 ReLU model, numpy chain 12.1 / 25.7, plain
addmm chain 16.9 / 23.8; the 32-64-64-16 ReLU model 29.3 / 77.5 against 36.6 / 72.3. Fitting
a fixed cost plus a cost per row to each gives a crossover near 200 rows for both, though their
work per row differs 5x: numpy's lead is addmm's fixed cost per layer, not the arithmetic. So a
call runs on numpy up to NUMPY_MAX_ROWS rows (and under NUMPY_MAX_MACS multiply-adds, for big
models), on addmm above. GELU/SiLU
cost numpy ~20 array passes each: those models stop at GELU_MAX_ROWS, where numpy still led
(23.6 vs 25.2 µs at 8 rows; 41.7 vs 31.6 at 64). The addmm path runs outside
`torch.inference_mode` (entering it costs ~4 µs a call; nothing here records autograd) and
writes the last layer straight into `out`. Both compute in fp32 on the plan's
(dequantized) weights, and the choice depends on the batch alone, so a replay and the live
path that see the same batches compute alike.
"""

from __future__ import annotations

import numpy as np
import torch

from redline.kernels.fused_mlp import MLPLayer, dequantized_weight
from redline.kernels.numpy_mlp import NumpyMLP

NUMPY_MAX_ROWS = 160  # rows per call up to which numpy beats addmm (see above)
NUMPY_MAX_MACS = 2_000_000  # and multiply-adds per call: wide models go to addmm sooner
GELU_MAX_ROWS = 16
_COSTLY = ("gelu", "silu")  # many numpy passes per element


def numpy_rows(layers: list[MLPLayer] | tuple[MLPLayer, ...]) -> int:
    """Rows per call up to which numpy is the faster path for these layers (see above)."""
    macs = sum(layer.in_features * layer.out_features for layer in layers)
    rows = min(NUMPY_MAX_ROWS, NUMPY_MAX_MACS // macs)
    if any(layer.activation in _COSTLY for layer in layers):
        rows = min(rows, GELU_MAX_ROWS)
    return max(1, rows)


class CpuMLP:
    """fp32 executor for a list of MLP layers. Not thread-safe: the numpy path's scratch
    buffers are shared by calls."""

    def __init__(self, layers: list[MLPLayer] | tuple[MLPLayer, ...]) -> None:
        # [K, N] fp32, contiguous, so both numpy and addmm read rows in order.
        # Detached: the addmm path runs without inference_mode, so no autograd may be asked for.
        self.weights_t = [dequantized_weight(layer).detach().T.contiguous() for layer in layers]
        self.biases = [layer.bias.detach().to(torch.float32).contiguous() for layer in layers]
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
        """x [B, K] CPU -> new fp32 [B, N] (a caller's tensor may ask for grad: inference_mode)."""
        with torch.inference_mode():
            return self._chain(x.to(torch.float32))

    def _chain(self, h: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The layers on addmm; the last one written into `out` when given."""
        last = len(self.weights_t) - 1
        for i, (w, b, act) in enumerate(
            zip(self.weights_t, self.biases, self.activations, strict=True)
        ):
            h = (
                torch.addmm(b, h, w, out=out)
                if i == last and out is not None
                else torch.addmm(b, h, w)
            )
            if act == "relu":
                h.relu_()
            elif act == "gelu":
                h = torch.nn.functional.gelu(h)
            elif act == "silu":
                torch.nn.functional.silu(h, inplace=True)
        if out is not None and h is not out:  # GELU made a new tensor of the last layer
            out.copy_(h)
        return h

    def forward_numpy_into(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """x [B, K] fp32 -> `out` [B, N] fp32, B <= max_batch, no allocation."""
        return self._numpy.run_into(x, out)

    def run_into(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """x [B, K] fp32 -> `out` [B, N] fp32 by the faster path for B (see the module doc)."""
        if len(x) <= self.max_batch:
            return self._numpy.run_into(x, out)
        # No inference_mode here: entering it costs ~4 µs a call, and nothing in this chain
        # records autograd history (the weights need no grad).
        self._chain(torch.from_numpy(x), torch.from_numpy(out))
        return out
