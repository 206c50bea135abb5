"""Fused MLP kernel against its PyTorch reference (Triton interpreter on CPU)."""

import pytest
import torch

from redline.kernels.fused_mlp import (
    MLPLayer,
    dequantized_weight,
    fused_mlp,
    fused_mlp_ref,
    quantize_layer,
)

# The reference rounds exactly as the kernel does, so only summation order differs.
# precision -> (atol, rtol)
TOLERANCE = {
    "fp32": (1e-5, 1e-5),
    "fp16": (1e-3, 1e-3),  # a rounding tie can flip one fp16 ulp of an activation
    "bf16": (2e-3, 2e-3),  # truncating instead of rounding to bf16 errs by ~1e-2: caught
    "int8": (1e-3, 1e-3),
}

SHAPES = [
    # (dims, activations): odd, non-power-of-two widths; 1 to 4 layers; up to 256 wide
    ((7, 5), ("none",)),
    ((7, 33, 5), ("relu", "none")),
    ((13, 37, 29, 3), ("gelu", "silu", "none")),
    ((5, 17, 19, 23, 1), ("silu", "relu", "gelu", "relu")),
    ((3, 256, 9), ("gelu", "none")),
]


def _layers(dims, acts, precision, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, act in enumerate(acts):
        w = torch.randn(dims[i + 1], dims[i], generator=g) / dims[i] ** 0.5
        b = torch.randn(dims[i + 1], generator=g) * 0.1
        out.append(quantize_layer(w, b, act, precision))
    return out


@pytest.mark.parametrize("precision", list(TOLERANCE))
@pytest.mark.parametrize(("dims", "acts"), SHAPES)
@pytest.mark.parametrize("batch", [1, 3, 70])
def test_kernel_matches_reference(precision, dims, acts, batch, dev_call):
    layers = _layers(dims, acts, precision)
    x = torch.randn(batch, dims[0], generator=torch.Generator().manual_seed(batch))
    got = dev_call(fused_mlp, x, layers, precision)
    want = fused_mlp_ref(x, layers, precision)
    atol, rtol = TOLERANCE[precision]
    assert got.shape == (batch, dims[-1]) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=atol, rtol=rtol)  # also fails on NaN/inf


@pytest.mark.parametrize("xdtype", [torch.float16, torch.bfloat16, torch.float64])
def test_input_dtypes_are_widened(xdtype, dev_call):
    layers = _layers((9, 12, 4), ("relu", "none"), "fp32")
    x = torch.randn(4, 9).to(xdtype)
    torch.testing.assert_close(dev_call(fused_mlp, x, layers), fused_mlp_ref(x, layers))


def test_strided_input_and_out_buffer_bounds(dev_call):
    # Rows of a wider buffer, and an `out` view inside a sentinel-filled buffer:
    # masked stores must not touch the sentinels (interpreter does not trap OOB).
    layers = _layers((6, 20, 3), ("silu", "none"), "fp32")
    big = torch.randn(5, 10)
    backing = torch.full((7, 5), -123.0)

    def run(big, backing, layers):
        # x: [5, 6] rows of stride 10; out: a [5, 3] view inside `backing`
        fused_mlp(big[:, 2:8], layers, out=backing[1:6, 1:4])
        return backing

    backing = dev_call(run, big, backing, layers)
    torch.testing.assert_close(backing[1:6, 1:4], fused_mlp_ref(big[:, 2:8], layers))
    keep = torch.ones_like(backing, dtype=torch.bool)
    keep[1:6, 1:4] = False
    assert (backing[keep] == -123.0).all()


def test_batch_not_a_multiple_of_the_block_leaves_no_garbage(dev_call):
    layers = _layers((4, 8, 2), ("relu", "none"), "fp32")
    x = torch.randn(65, 4)  # one full block of 64 + one row
    torch.testing.assert_close(dev_call(fused_mlp, x, layers), fused_mlp_ref(x, layers))


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_nan_and_inf_propagate_per_row(dev_call):
    layers = _layers((5, 7, 2), ("none", "none"), "fp32")
    x = torch.randn(3, 5)
    x[1, 0] = float("nan")
    x[2, 3] = float("inf")
    got = dev_call(fused_mlp, x, layers)
    assert torch.isfinite(got[0]).all()
    assert torch.isnan(got[1]).all()
    want = fused_mlp_ref(x, layers)
    # inf through mixed-sign weights gives inf or nan depending on summation order.
    assert torch.equal(torch.isfinite(got), torch.isfinite(want))
    torch.testing.assert_close(got[:2], want[:2], equal_nan=True)


def test_empty_batch(dev_call):
    layers = _layers((5, 7, 2), ("relu", "none"), "fp32")
    assert dev_call(fused_mlp, torch.empty(0, 5), layers).shape == (0, 2)


def test_int8_quantization_is_per_output_channel():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(6, 10, generator=g)
    w[2] *= 100.0  # one loud channel must not cost the others their resolution
    layer = quantize_layer(w, None, "none", "int8")
    assert layer.weight.dtype == torch.int8 and layer.scale.shape == (6,)
    assert layer.weight.abs().amax(dim=1).eq(127).all()
    err = (dequantized_weight(layer) - w).abs().amax(dim=1)
    assert (err <= layer.scale / 2 + 1e-6).all()
    assert err[0] < err[2] / 50


@pytest.mark.parametrize(
    ("layers", "x", "message"),
    [
        (lambda: _layers((4, 5), ("none",), "fp32"), torch.randn(2, 3), "x has 3 features"),
        (lambda: _layers((4, 5), ("none",), "fp32"), torch.randn(4), r"float \[B, K\]"),
        (lambda: _layers((4, 5), ("none",), "fp16"), torch.randn(2, 4), "does not match precision"),
        (lambda: [], torch.randn(2, 4), "1..4 Linear layers"),
        (lambda: _layers((4, 5, 6), ("none", "none"), "fp32")[::-1], torch.randn(2, 5), "layer 1"),
        (
            lambda: [MLPLayer(torch.zeros(5, 300), torch.zeros(5), "none")],
            torch.randn(2, 300),
            "width 300 exceeds",
        ),
    ],
)
def test_bad_inputs_are_refused(layers, x, message):
    with pytest.raises(ValueError, match=message):
        fused_mlp(x, layers(), "fp32")


def test_compiled_kernels_refuse_host_tensors(monkeypatch):
    from redline.kernels import triton_mode

    monkeypatch.setattr(triton_mode, "INTERPRETED", False)
    layers = _layers((4, 5), ("none",), "fp32")
    with pytest.raises(ValueError, match="x is on cpu: compiled Triton kernels take CUDA"):
        fused_mlp(torch.randn(2, 4), layers)
