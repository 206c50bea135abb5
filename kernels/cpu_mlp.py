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

_SQRT1_2 = 0.7071067811865476


class CpuMLP:
    """fp32 executor for a list of MLP layers. Not thread-safe: batch-1
    scratch buffers are shared by calls."""

    def __init__(self, layers: list[MLPLayer] | tuple[MLPLayer, ...]) -> None:
        # [K, N] fp32, contiguous, so both numpy and addmm read rows in order.
        self.weights_t = [dequantized_weight(layer).T.contiguous() for layer in layers]
        self.biases = [layer.bias.to(torch.float32).contiguous() for layer in layers]
        self.activations = [layer.activation for layer in layers]
        self._np_w = [w.numpy() for w in self.weights_t]
        self._np_b = [b.numpy()[None, :] for b in self.biases]  # [1, N]
        # Batch-1 scratch: one output and one temporary per layer.
        self._buf = [np.empty((1, w.shape[1]), np.float32) for w in self._np_w]
        self._tmp = [np.empty((1, w.shape[1]), np.float32) for w in self._np_w]
        self._tmp_t = [torch.from_numpy(t) for t in self._tmp]  # shares memory (for erf)

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
        h = x
        last = len(self._np_w) - 1
        for i, (w, b, act) in enumerate(zip(self._np_w, self._np_b, self.activations, strict=True)):
            dst = out if i == last else self._buf[i]
            np.matmul(h, w, out=dst)
            np.add(dst, b, out=dst)
            if act == "relu":
                np.maximum(dst, 0.0, out=dst)
            elif act == "silu":
                # x * sigmoid(x), sigmoid via tanh so large |x| cannot overflow exp.
                tmp = self._tmp[i]
                np.multiply(dst, 0.5, out=tmp)
                np.tanh(tmp, out=tmp)
                np.multiply(tmp, 0.5, out=tmp)
                np.add(tmp, 0.5, out=tmp)
                np.multiply(dst, tmp, out=dst)
            elif act == "gelu":
                tmp = self._tmp[i]
                np.multiply(dst, _SQRT1_2, out=tmp)
                torch.special.erf(self._tmp_t[i], out=self._tmp_t[i])  # numpy has no erf
                np.add(tmp, 1.0, out=tmp)
                np.multiply(dst, tmp, out=dst)
                np.multiply(dst, 0.5, out=dst)
            h = dst
        return out
