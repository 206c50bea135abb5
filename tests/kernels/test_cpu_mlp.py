"""CPU path: numpy batch 1 and torch functional agree with the reference, in place."""

import itertools

import numpy as np
import pytest
import torch

from redline.kernels.cpu_mlp import NUMPY_MAX_ROWS, CpuMLP, numpy_rows
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


@pytest.mark.parametrize("rows", [1, 8, 64, 65, 300])
def test_run_into_takes_the_faster_path_per_batch_and_both_agree(rows, monkeypatch):
    """Up to max_batch rows numpy (no allocation), above addmm: the plan is never slower than
    the simplest call of its shape (figures in cpu_mlp.py's docstring)."""
    cpu = CpuMLP(_layers("relu"))
    x = np.random.default_rng(rows).standard_normal((rows, 10)).astype(np.float32)
    want = cpu.forward_torch(torch.from_numpy(x)).numpy()
    numpy_calls = []
    numpy_path = cpu._numpy.run_into
    monkeypatch.setattr(
        cpu._numpy, "run_into", lambda a, b: numpy_calls.append(len(a)) or numpy_path(a, b)
    )
    for _ in range(2):  # the second call reuses the addmm path's buffers
        out = np.full((rows, 4), np.nan, np.float32)
        assert cpu.run_into(x, out) is out
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    assert numpy_calls == ([rows, rows] if rows <= cpu.max_batch else [])


def test_numpy_rows_follow_the_measured_crossover():
    def layers(*dims, act="relu"):
        return [quantize_layer(torch.zeros(n, k), torch.zeros(n), act, "fp32")
                for k, n in itertools.pairwise(dims)]  # fmt: skip

    assert numpy_rows(layers(14, 32, 32, 1)) == NUMPY_MAX_ROWS  # the bundled model: 160 rows
    assert numpy_rows(layers(32, 64, 64, 16)) == NUMPY_MAX_ROWS  # 7.2k multiply-adds a row
    assert numpy_rows(layers(14, 64, 64, 1, act="gelu")) == 16  # GELU: numpy's many passes
    assert numpy_rows(layers(256, 256, 256)) == 15  # 131k a row: past NUMPY_MAX_MACS sooner
    assert numpy_rows(layers(4096, 4096)) == 1
