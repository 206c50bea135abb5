"""The CPU path of an MLP plan: torch functional in inference mode, or numpy at batch 1.

Measured on the 2 vCPU VM (FLOORS.md, 32-64-64-16 MLP at batch 1): numpy 7 µs,
torch functional (addmm) 11 µs, nn.Module in inference mode 24 µs. So batch 1
runs through numpy on buffers allocated once here, larger batches through
`torch.addmm`. Both compute in fp32 on the plan's (dequantized) weights.
"""

from __future__ import annotations

import numpy as np
import torch

from redline.kernels.fused_mlp import MLPLayer, dequantized_weight
from redline.kernels.numpy_mlp import NumpyMLP


class CpuMLP:
    """fp32 executor for a list of MLP layers. Not thread-safe: batch-1
    scratch buffers are shared by calls."""

    def __init__(self, layers: list[MLPLayer] | tuple[MLPLayer, ...]) -> None:
        # [K, N] fp32, contiguous, so both numpy and addmm read rows in order.
        self.weights_t = [dequantized_weight(layer).T.contiguous() for layer in layers]
        self.biases = [layer.bias.to(torch.float32).contiguous() for layer in layers]
        self.activations = [layer.activation for layer in layers]
        # Batch 1 runs on numpy buffers allocated once (the torch-free hot path).
        self._numpy = NumpyMLP(
            [w.numpy() for w in self.weights_t], [b.numpy() for b in self.biases], self.activations
        )

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
        """x [1, K] fp32 -> `out` [1, N] fp32, no allocation."""
        return self._numpy.run_into(x, out)
