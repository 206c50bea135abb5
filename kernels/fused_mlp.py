"""Fused MLP: one Triton launch runs a whole small MLP (1-4 Linear layers).

Each program owns BLOCK_B rows of the batch and keeps their activations in
registers from the input to the output, so a batch-1 call is one launch and
one read of every weight. Weights use torch's Linear layout `[N, K]`.

Precisions (`PRECISIONS`): fp32; fp16 and bf16 (activations rounded to the
precision before each matmul, fp32 accumulation, fp32 bias and activation);
int8 weight-only (int8 weights and one fp32 scale per output channel,
activations in fp16, fp32 accumulation). `fused_mlp_ref` computes exactly that
rounding in PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from redline.kernels.triton_mode import INTERPRETED, check_device

# Activation codes shared by the kernel and the plan manifest.
ACTIVATIONS: dict[str, int] = {"none": 0, "relu": 1, "gelu": 2, "silu": 3}
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16", "int8")
_PREC_CODE = {"fp32": 0, "fp16": 1, "bf16": 2, "int8": 3}
# Storage dtype of the weights per precision.
WEIGHT_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
    "int8": torch.int8,
}
# Activation dtype fed to each matmul (int8 is weight-only: W8A16).
ACT_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
    "int8": torch.float16,
}

MAX_LAYERS = 4
# One layer's weight tile lives in registers: 256 x 256 is the most that
# fits without the whole kernel spilling to local memory.
MAX_WIDTH = 256
# tl.dot on a GPU wants every dimension >= 16; pad with masked zeros.
MIN_TILE = 16
# Larger row blocks amortise the weight loads at batch 4096; wide layers need
# the registers for the weights instead.
MAX_BLOCK_B = 64


@dataclass(frozen=True)
class MLPLayer:
    """One Linear layer as stored: `weight` [N, K] in the precision's dtype,
    `bias` [N] fp32, `scale` [N] fp32 for int8 (else None)."""

    weight: torch.Tensor
    bias: torch.Tensor
    activation: str
    scale: torch.Tensor | None = None

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]


def quantize_layer(
    weight: torch.Tensor, bias: torch.Tensor | None, activation: str, precision: str
) -> MLPLayer:
    """Convert an fp32 Linear's parameters to the stored form of `precision`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation {activation!r} is not one of {tuple(ACTIVATIONS)}")
    w = weight.detach().to(torch.float32).contiguous()
    n = w.shape[0]
    b = torch.zeros(n) if bias is None else bias.detach().to(torch.float32).contiguous()
    if precision != "int8":
        return MLPLayer(w.to(WEIGHT_DTYPES[precision]).contiguous(), b, activation)
    # Symmetric per-output-channel scale: the row's largest |w| maps to 127.
    amax = w.abs().amax(dim=1).clamp_min(1e-12)
    scale = (amax / 127.0).contiguous()
    q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
    return MLPLayer(q, b, activation, scale)


def dequantized_weight(layer: MLPLayer) -> torch.Tensor:
    """The fp32 weight [N, K] that a stored layer stands for."""
    w = layer.weight.to(torch.float32)
    return w * layer.scale[:, None] if layer.scale is not None else w


@triton.jit
def _activate(h, ACT: tl.constexpr):
    if ACT == 1:
        h = tl.maximum(h, 0.0)
    elif ACT == 2:
        h = 0.5 * h * (1.0 + tl.math.erf(h * 0.7071067811865476))  # exact GELU
    elif ACT == 3:
        h = h * tl.sigmoid(h)
    return h


@triton.jit
def _round_bf16(h):
    # fp32 -> nearest bf16 (ties to even), still held in fp32. The interpreter's
    # own fp32 -> bf16 cast truncates; this makes it match torch and the GPU.
    bits = h.to(tl.uint32, bitcast=True)
    # Shifts instead of `& 0xFFFF0000`: no constant outside int32 to promote.
    bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def _layer(
    h,  # [BLOCK_B, KP] fp32 activations
    w_ptr,
    b_ptr,
    s_ptr,
    K,
    N,
    KP: tl.constexpr,
    NP: tl.constexpr,
    ACT: tl.constexpr,
    PREC: tl.constexpr,
    DOT_FP32: tl.constexpr,
):
    offs_k = tl.arange(0, KP)
    offs_n = tl.arange(0, NP)
    # W is [N, K] row-major; load it transposed as a [KP, NP] tile.
    w_mask = (offs_k[:, None] < K) & (offs_n[None, :] < N)
    w = tl.load(w_ptr + offs_n[None, :] * K + offs_k[:, None], mask=w_mask, other=0)
    if PREC == 0:
        acc = tl.dot(h, w, input_precision="ieee")
    else:
        if PREC == 2:  # noqa: SIM108 (a static branch in Triton)
            hc = _round_bf16(h).to(tl.bfloat16)
        else:
            hc = h.to(tl.float16)
        wc = w.to(hc.dtype)  # int8 -> fp16 is exact for |q| <= 127
        if DOT_FP32:
            # The interpreter's bf16 tl.dot is wrong (triton#11584); the
            # rounded values are the same in fp32, only the dot path differs.
            acc = tl.dot(hc.to(tl.float32), wc.to(tl.float32), input_precision="ieee")
        else:
            acc = tl.dot(hc, wc)  # fp32 accumulation
    if PREC == 3:
        scale = tl.load(s_ptr + offs_n, mask=offs_n < N, other=0.0)
        acc = acc * scale[None, :]
    bias = tl.load(b_ptr + offs_n, mask=offs_n < N, other=0.0)
    # Padded columns stay 0: zero weights, zero bias, act(0) == 0.
    return _activate(acc + bias[None, :], ACT)


@triton.jit
def _fused_mlp_kernel(
    x_ptr,
    out_ptr,
    w1,
    b1,
    s1,
    w2,
    b2,
    s2,
    w3,
    b3,
    s3,
    w4,
    b4,
    s4,
    B,
    D0,
    D1,
    D2,
    D3,
    D4,
    D_OUT,
    stride_xb,
    stride_ob,
    P0: tl.constexpr,
    P1: tl.constexpr,
    P2: tl.constexpr,
    P3: tl.constexpr,
    P4: tl.constexpr,
    P_OUT: tl.constexpr,
    ACT1: tl.constexpr,
    ACT2: tl.constexpr,
    ACT3: tl.constexpr,
    ACT4: tl.constexpr,
    N_LAYERS: tl.constexpr,
    PREC: tl.constexpr,
    DOT_FP32: tl.constexpr,
    BLOCK_B: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, P0)
    x_mask = (rows[:, None] < B) & (cols[None, :] < D0)
    h = tl.load(x_ptr + rows[:, None] * stride_xb + cols[None, :], mask=x_mask, other=0.0)
    h = h.to(tl.float32)
    h = _layer(h, w1, b1, s1, D0, D1, P0, P1, ACT1, PREC, DOT_FP32)
    if N_LAYERS >= 2:
        h = _layer(h, w2, b2, s2, D1, D2, P1, P2, ACT2, PREC, DOT_FP32)
    if N_LAYERS >= 3:
        h = _layer(h, w3, b3, s3, D2, D3, P2, P3, ACT3, PREC, DOT_FP32)
    if N_LAYERS >= 4:
        h = _layer(h, w4, b4, s4, D3, D4, P3, P4, ACT4, PREC, DOT_FP32)
    out_cols = tl.arange(0, P_OUT)
    o_mask = (rows[:, None] < B) & (out_cols[None, :] < D_OUT)
    tl.store(out_ptr + rows[:, None] * stride_ob + out_cols[None, :], h, mask=o_mask)


def _pad(d: int) -> int:
    return max(MIN_TILE, triton.next_power_of_2(d))


def check_layers(layers: list[MLPLayer] | tuple[MLPLayer, ...], precision: str) -> None:
    """Raise ValueError naming the first layer the kernel cannot run."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
    if not 1 <= len(layers) <= MAX_LAYERS:
        raise ValueError(f"fused MLP takes 1..{MAX_LAYERS} Linear layers, got {len(layers)}")
    for i, layer in enumerate(layers):
        if layer.activation not in ACTIVATIONS:
            raise ValueError(
                f"layer {i}: activation {layer.activation!r} is not one of {tuple(ACTIVATIONS)}"
            )
        n, k = layer.weight.shape
        if layer.bias.shape != (n,):
            raise ValueError(f"layer {i}: bias shape {tuple(layer.bias.shape)}, expected ({n},)")
        if max(n, k) > MAX_WIDTH:
            raise ValueError(f"layer {i}: width {max(n, k)} exceeds the kernel's {MAX_WIDTH}")
        if i and k != layers[i - 1].out_features:
            raise ValueError(
                f"layer {i}: in_features {k} != layer {i - 1} out_features "
                f"{layers[i - 1].out_features}"
            )
        if layer.weight.dtype != WEIGHT_DTYPES[precision]:
            raise ValueError(
                f"layer {i}: weight dtype {layer.weight.dtype} does not match precision "
                f"{precision} ({WEIGHT_DTYPES[precision]})"
            )
        if (layer.scale is not None) != (precision == "int8"):
            raise ValueError(f"layer {i}: int8 needs per-channel scales, other precisions none")


def fused_mlp(
    x: torch.Tensor,
    layers: list[MLPLayer] | tuple[MLPLayer, ...],
    precision: str = "fp32",
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run `layers` on `x` [B, K] in one launch; returns fp32 [B, N].

    `out` (fp32, [B, N], on x's device) is written in place when given, so a
    caller with preallocated buffers allocates nothing per call.
    """
    check_layers(layers, precision)
    if x.ndim != 2 or not x.is_floating_point():
        raise ValueError(f"x must be a float [B, K] tensor, got {x.dtype} {tuple(x.shape)}")
    if x.shape[1] != layers[0].in_features:
        raise ValueError(f"x has {x.shape[1]} features, the MLP takes {layers[0].in_features}")
    if x.stride(1) != 1:
        x = x.contiguous()
    batch = x.shape[0]
    n_out = layers[-1].out_features
    if out is None:
        out = torch.empty((batch, n_out), device=x.device, dtype=torch.float32)
    elif out.shape != (batch, n_out) or out.dtype != torch.float32 or out.stride(1) != 1:
        raise ValueError(f"out must be fp32 [{batch}, {n_out}] with unit column stride")
    if batch == 0:
        return out
    check_device(x=x, out=out, weight=layers[0].weight)
    dims = [layers[0].in_features] + [layer.out_features for layer in layers]
    dims += [1] * (MAX_LAYERS + 1 - len(dims))
    args: list = []
    for i in range(MAX_LAYERS):
        layer = layers[min(i, len(layers) - 1)]  # unused slots: any valid pointer
        scale = layer.scale if layer.scale is not None else layer.bias
        args += [layer.weight, layer.bias, scale]
    acts = [ACTIVATIONS[layer.activation] for layer in layers]
    acts += [0] * (MAX_LAYERS - len(acts))
    prec = _PREC_CODE[precision]
    widest = max(_pad(d) for d in dims)
    # Interpreter: one program per row block is a Python loop, so bigger blocks.
    cap = MAX_BLOCK_B if (INTERPRETED or widest <= 64) else (32 if widest <= 128 else 16)
    block_b = min(cap, max(MIN_TILE, triton.next_power_of_2(batch)))
    grid = (triton.cdiv(batch, block_b),)
    _fused_mlp_kernel[grid](
        x,
        out,
        *args,
        batch,
        *dims,
        n_out,
        x.stride(0),
        out.stride(0),
        *[_pad(d) for d in dims],
        _pad(n_out),
        *acts,
        N_LAYERS=len(layers),
        PREC=prec,
        DOT_FP32=INTERPRETED and prec == 2,
        BLOCK_B=block_b,
        # A 256-wide layer's weight tile needs the registers of 8 warps.
        num_warps=8 if widest >= 256 else 4,
    )
    return out


def _activate_ref(h: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "relu":
        return torch.relu(h)
    if activation == "gelu":
        return torch.nn.functional.gelu(h)
    if activation == "silu":
        return torch.nn.functional.silu(h)
    return h


def fused_mlp_ref(
    x: torch.Tensor, layers: list[MLPLayer] | tuple[MLPLayer, ...], precision: str = "fp32"
) -> torch.Tensor:
    """PyTorch reference with the kernel's rounding: activations rounded to the
    precision's activation dtype before each matmul, fp32 accumulation."""
    h = x.to(torch.float32)
    act_dtype = ACT_DTYPES[precision]
    for layer in layers:
        hr = h.to(act_dtype).to(torch.float32)
        w = layer.weight.to(torch.float32)
        acc = hr @ w.T
        if layer.scale is not None:
            acc = acc * layer.scale
        h = _activate_ref(acc + layer.bias, layer.activation)
    return h
