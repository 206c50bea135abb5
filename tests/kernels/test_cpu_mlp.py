"""CPU path: numpy batch 1 and torch functional agree with the reference, in place."""

import numpy as np
import pytest
import torch

from redline.kernels.cpu_mlp import CpuMLP
from redline.kernels.fused_mlp import fused_mlp_ref, quantize_layer


def _layers(act, precision="fp32"):
    g = torch.Generator().manual_seed(0)
    dims = (10, 21, 21, 4)
    return [
        quantize_layer(
            torch.randn(dims[i + 1], dims[i], generator=g) / dims[i] ** 0.5,
            torch.randn(dims[i + 1]),
            a,
            precision,
        )
        for i, a in enumerate((act, act, "none"))
    ]


@pytest.mark.parametrize("act", ["relu", "gelu", "silu", "none"])
@pytest.mark.parametrize("scale", [1.0, 60.0])  # 60: |pre-activations| in the hundreds
def test_numpy_and_torch_paths_match_reference(act, scale):
    layers = _layers(act)
    cpu = CpuMLP(layers)
    x = torch.randn(3, 10, generator=torch.Generator().manual_seed(1)) * scale
    want = fused_mlp_ref(x, layers)
    atol = 1e-5 * scale  # fp32 summation-order noise grows with the magnitudes
    torch.testing.assert_close(cpu.forward_torch(x), want, atol=atol, rtol=1e-5)
    out = np.empty((1, 4), np.float32)
    for i in range(3):
        with np.errstate(all="raise"):  # no overflow warnings on the hot path
            cpu.forward_numpy_into(x[i : i + 1].numpy(), out)
        np.testing.assert_allclose(out[0], want[i].numpy(), atol=atol, rtol=1e-5)


def test_int8_cpu_path_uses_dequantized_weights():
    layers = _layers("relu", "int8")
    x = torch.randn(2, 10)
    # The CPU path keeps activations in fp32: the reference with fp32 activations is
    # the same as the fp32 reference on the dequantized weights.
    want = fused_mlp_ref(
        x,
        [
            quantize_layer(w, ly.bias, ly.activation, "fp32")
            for w, ly in ((ly.weight.float() * ly.scale[:, None], ly) for ly in layers)
        ],
    )
    torch.testing.assert_close(CpuMLP(layers).forward_torch(x), want, atol=1e-5, rtol=1e-5)
