"""GRU step: one GRU cell step for a batch, the unit of a sliding window.

A sliding-window sequence model (STAC-ML's sliding-window suite) sees one new
input per event. The hidden state carries over from the previous event, so
only the newest step is computed: `h_t = gru_step(x_t, h_{t-1})`, one launch,
instead of re-running the whole window. Stepping T times equals `torch.nn.GRU`
over the T inputs (tested).

Gate order and equations are torch's (r, z, n):
    r = σ(W_ir x + b_ir + W_hr h + b_hr)
    z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
    h' = (1 - z) ⊙ n + z ⊙ h
Weights may be stored fp32/fp16/bf16; they are widened to fp32 on load and
all arithmetic is fp32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from redline.kernels.triton_mode import check_device

# Each program holds gate tiles of W_hh [H, BLOCK_J]: the output units are split in blocks of
# at most MAX_BLOCK_J, since whole [256, 256] fp32 tiles for three gates spill so far that the
# compile alone ran past 90 s on an H200.
MAX_WIDTH = 256
MIN_TILE = 16  # tl.dot minimum on a GPU
MAX_BLOCK_B = 32
MAX_BLOCK_J = 64


@triton.jit
def _gate(
    x, h, w_ih, w_hh, b_ih, b_hh, G: tl.constexpr, K, H, offs_j, KP: tl.constexpr, HP: tl.constexpr
):
    # Returns (W_ig x + b_ig, W_hg h + b_hg) for the output units offs_j, each [BLOCK_B, BJ].
    offs_k = tl.arange(0, KP)
    offs_h = tl.arange(0, HP)
    rows = G * H + offs_j  # row of the stacked [3H, *] weights
    wi = tl.load(
        w_ih + rows[None, :] * K + offs_k[:, None],
        mask=(offs_k[:, None] < K) & (offs_j[None, :] < H),
        other=0.0,
    ).to(tl.float32)  # [KP, BJ]
    wh = tl.load(
        w_hh + rows[None, :] * H + offs_h[:, None],
        mask=(offs_h[:, None] < H) & (offs_j[None, :] < H),
        other=0.0,
    ).to(tl.float32)  # [HP, BJ]
    bi = tl.load(b_ih + rows, mask=offs_j < H, other=0.0).to(tl.float32)
    bh = tl.load(b_hh + rows, mask=offs_j < H, other=0.0).to(tl.float32)
    gi = tl.dot(x, wi, input_precision="ieee") + bi[None, :]
    gh = tl.dot(h, wh, input_precision="ieee") + bh[None, :]
    return gi, gh


@triton.jit
def _gru_step_kernel(
    x_ptr,
    h_ptr,
    out_ptr,
    w_ih,
    w_hh,
    b_ih,
    b_hh,
    B,
    K,
    H,
    stride_xb,
    stride_hb,
    stride_ob,
    KP: tl.constexpr,
    HP: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_J: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid * BLOCK_B + tl.arange(0, BLOCK_B)
    offs_j = tl.program_id(1) * BLOCK_J + tl.arange(0, BLOCK_J)  # this program's output units
    offs_k = tl.arange(0, KP)
    offs_h = tl.arange(0, HP)
    row_ok = rows[:, None] < B
    x = tl.load(
        x_ptr + rows[:, None] * stride_xb + offs_k[None, :],
        mask=row_ok & (offs_k[None, :] < K),
        other=0.0,
    ).to(tl.float32)
    h_mask = row_ok & (offs_h[None, :] < H)
    h = tl.load(h_ptr + rows[:, None] * stride_hb + offs_h[None, :], mask=h_mask, other=0.0)
    h = h.to(tl.float32)
    ri, rh = _gate(x, h, w_ih, w_hh, b_ih, b_hh, 0, K, H, offs_j, KP, HP)
    zi, zh = _gate(x, h, w_ih, w_hh, b_ih, b_hh, 1, K, H, offs_j, KP, HP)
    ni, nh = _gate(x, h, w_ih, w_hh, b_ih, b_hh, 2, K, H, offs_j, KP, HP)
    r = tl.sigmoid(ri + rh)
    z = tl.sigmoid(zi + zh)
    n = 2.0 * tl.sigmoid(2.0 * (ni + r * nh)) - 1.0  # tanh; tl has no tanh
    j_mask = row_ok & (offs_j[None, :] < H)
    h_j = tl.load(h_ptr + rows[:, None] * stride_hb + offs_j[None, :], mask=j_mask, other=0.0)
    h_new = (1.0 - z) * n + z * h_j.to(tl.float32)
    tl.store(out_ptr + rows[:, None] * stride_ob + offs_j[None, :], h_new, mask=j_mask)


def _check(x: torch.Tensor, h: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor) -> None:
    hidden = w_hh.shape[1]
    if w_ih.ndim != 2 or w_ih.shape[0] != 3 * hidden or w_hh.shape != (3 * hidden, hidden):
        raise ValueError(
            f"GRU weights must be w_ih [3H, K], w_hh [3H, H]; got {tuple(w_ih.shape)}, "
            f"{tuple(w_hh.shape)}"
        )
    if max(hidden, w_ih.shape[1]) > MAX_WIDTH:
        raise ValueError(f"GRU width {max(hidden, w_ih.shape[1])} exceeds the kernel's {MAX_WIDTH}")
    if x.ndim != 2 or x.shape[1] != w_ih.shape[1]:
        raise ValueError(f"x must be [B, {w_ih.shape[1]}], got {tuple(x.shape)}")
    if h.shape != (x.shape[0], hidden):
        raise ValueError(f"h must be [{x.shape[0]}, {hidden}], got {tuple(h.shape)}")


def gru_step(
    x: torch.Tensor,
    h: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """One GRU step: x [B, K], h [B, H] -> h' [B, H] fp32 (written to `out` if given;
    `out` may be `h` itself)."""
    _check(x, h, w_ih, w_hh)
    batch, k = x.shape
    hidden = h.shape[1]
    x = x if x.stride(1) == 1 else x.contiguous()
    h = h if h.stride(1) == 1 else h.contiguous()
    if out is None:
        out = torch.empty((batch, hidden), device=x.device, dtype=torch.float32)
    elif out.shape != (batch, hidden) or out.dtype != torch.float32 or out.stride(1) != 1:
        raise ValueError(f"out must be fp32 [{batch}, {hidden}] with unit column stride")
    if batch == 0:
        return out
    check_device(x=x, h=h, out=out, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)
    block_b = min(MAX_BLOCK_B, max(MIN_TILE, triton.next_power_of_2(batch)))
    hp = max(MIN_TILE, triton.next_power_of_2(hidden))
    block_j = min(hp, MAX_BLOCK_J)
    grid = (triton.cdiv(batch, block_b), triton.cdiv(hidden, block_j))
    # In place over several column blocks, one block's writes would reach another's reads of h.
    dst = out if grid[1] == 1 or out.data_ptr() != h.data_ptr() else torch.empty_like(out)
    _gru_step_kernel[grid](
        x,
        h,
        dst,
        w_ih.contiguous(),
        w_hh.contiguous(),
        b_ih.contiguous(),
        b_hh.contiguous(),
        batch,
        k,
        hidden,
        x.stride(0),
        h.stride(0),
        out.stride(0),
        KP=max(MIN_TILE, triton.next_power_of_2(k)),
        HP=hp,
        BLOCK_B=block_b,
        BLOCK_J=block_j,
    )
    if dst is not out:
        out.copy_(dst)
    return out


def gru_step_ref(
    x: torch.Tensor,
    h: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> torch.Tensor:
    """PyTorch reference (fp32), torch's GRU gate equations written out."""
    x, h = x.float(), h.float()
    gi = torch.addmm(b_ih.float(), x, w_ih.float().T)
    gh = torch.addmm(b_hh.float(), h, w_hh.float().T)
    ri, zi, ni = gi.chunk(3, dim=1)
    rh, zh, nh = gh.chunk(3, dim=1)
    r = torch.sigmoid(ri + rh)
    z = torch.sigmoid(zi + zh)
    n = torch.tanh(ni + r * nh)
    return (1.0 - z) * n + z * h
