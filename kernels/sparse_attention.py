"""Dynamic sparse attention over the last W events: local window + top-k of the rest.

Query at position p (causal: it sees keys 0..p) attends to
  - every key in its local window, positions p - window + 1 .. p, and
  - the `top_k` highest-scoring keys among the older ones (positions < p - window + 1).
With top_k >= W this is dense causal attention (tested). Queries are the last
M of the W positions, so the live path asks for M = 1 (the newest event) and
replay or training asks for M = W.

Ties at the k-th score are all kept (measure zero for real-valued scores).
Arithmetic is fp32 (inputs of any float dtype are widened on load).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from redline.kernels.triton_mode import check_device

# Keys of the whole window sit in one [W, D] tile, as the fused MLP's weights do.
MAX_WINDOW = 256
MAX_HEAD_DIM = 128
MIN_TILE = 16  # tl.dot minimum on a GPU
BLOCK_M = 16


@triton.jit
def _sparse_attention_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    o_ptr,
    M,
    W,
    D,
    WINDOW,
    scale,
    stride_qh,
    stride_qm,
    stride_kh,
    stride_kw,
    stride_vh,
    stride_vw,
    stride_oh,
    stride_om,
    TOP_K: tl.constexpr,
    TOP_K_P: tl.constexpr,  # TOP_K rounded up to a power of two (tl.topk needs one)
    KEEP_ALL: tl.constexpr,
    WP: tl.constexpr,
    DP: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    pid_m = tl.program_id(0)
    head = tl.program_id(1)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, WP)
    dims = tl.arange(0, DP)
    row_ok = rows < M
    q = tl.load(
        q_ptr + head * stride_qh + rows[:, None] * stride_qm + dims[None, :],
        mask=row_ok[:, None] & (dims[None, :] < D),
        other=0.0,
    ).to(tl.float32)  # [BLOCK_M, DP]
    kv_mask = (cols[:, None] < W) & (dims[None, :] < D)
    k = tl.load(
        k_ptr + head * stride_kh + cols[:, None] * stride_kw + dims[None, :],
        mask=kv_mask,
        other=0.0,
    ).to(tl.float32)  # [WP, DP]
    s = tl.dot(q, tl.trans(k), input_precision="ieee") * scale  # [BLOCK_M, WP]
    pos_q = W - M + rows
    valid = (cols[None, :] <= pos_q[:, None]) & (cols[None, :] < W) & row_ok[:, None]
    local = valid & (pos_q[:, None] - cols[None, :] < WINDOW)
    if KEEP_ALL:
        keep = valid
    elif TOP_K == 0:
        keep = local
    else:
        older = valid & ~local
        cand = tl.where(older, s, float("-inf"))
        top = tl.topk(cand, TOP_K_P)  # [BLOCK_M, TOP_K_P], largest first
        kth = tl.arange(0, TOP_K_P)[None, :] == TOP_K - 1
        threshold = tl.max(tl.where(kth, top, float("-inf")), axis=1)
        keep = local | (older & (s >= threshold[:, None]))
    s = tl.where(keep, s, float("-inf"))
    m = tl.max(s, axis=1)
    m = tl.where(row_ok, m, 0.0)  # padded rows: no NaN from -inf - -inf
    p = tl.exp(s - m[:, None])
    denom = tl.sum(p, axis=1)
    p = p / tl.where(denom > 0, denom, 1.0)[:, None]
    v = tl.load(
        v_ptr + head * stride_vh + cols[:, None] * stride_vw + dims[None, :],
        mask=kv_mask,
        other=0.0,
    ).to(tl.float32)  # [WP, DP]
    o = tl.dot(p, v, input_precision="ieee")  # [BLOCK_M, DP]
    o_mask = row_ok[:, None] & (dims[None, :] < D)
    tl.store(o_ptr + head * stride_oh + rows[:, None] * stride_om + dims[None, :], o, mask=o_mask)


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, top_k: int) -> None:
    if q.ndim != 3 or k.ndim != 3 or v.shape != k.shape:
        raise ValueError(
            f"q must be [H, M, D] and k, v [H, W, D]; got {tuple(q.shape)}, {tuple(k.shape)}, "
            f"{tuple(v.shape)}"
        )
    heads, m, d = q.shape
    if k.shape[0] != heads or k.shape[2] != d:
        raise ValueError(f"k/v heads or head dim {tuple(k.shape)} do not match q {tuple(q.shape)}")
    w = k.shape[1]
    if not 1 <= m <= w <= MAX_WINDOW:
        raise ValueError(f"need 1 <= M ({m}) <= W ({w}) <= {MAX_WINDOW}")
    if d > MAX_HEAD_DIM:
        raise ValueError(f"head dim {d} exceeds {MAX_HEAD_DIM}")
    if window < 1:
        raise ValueError(f"window must be >= 1 (a query sees itself), got {window}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")


def sparse_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, top_k: int
) -> torch.Tensor:
    """q [H, M, D] (the last M positions), k, v [H, W, D] -> fp32 [H, M, D]."""
    _check(q, k, v, window, top_k)
    heads, m, d = q.shape
    w = k.shape[1]
    q, k, v = (t if t.stride(2) == 1 else t.contiguous() for t in (q, k, v))
    check_device(q=q, k=k, v=v)
    out = torch.empty((heads, m, d), device=q.device, dtype=torch.float32)
    wp = max(MIN_TILE, triton.next_power_of_2(w))
    keep_all = top_k >= w  # every older key is in the top-k anyway
    grid = (triton.cdiv(m, BLOCK_M), heads)
    _sparse_attention_kernel[grid](
        q,
        k,
        v,
        out,
        m,
        w,
        d,
        window,
        1.0 / math.sqrt(d),
        q.stride(0),
        q.stride(1),
        k.stride(0),
        k.stride(1),
        v.stride(0),
        v.stride(1),
        out.stride(0),
        out.stride(1),
        TOP_K=top_k,
        TOP_K_P=min(wp, triton.next_power_of_2(max(top_k, 1))),
        KEEP_ALL=keep_all,
        WP=wp,
        DP=max(MIN_TILE, triton.next_power_of_2(d)),
        BLOCK_M=BLOCK_M,
    )
    return out


def sparse_attention_ref(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, top_k: int
) -> torch.Tensor:
    """PyTorch reference: the same selection with torch.topk, fp32."""
    _check(q, k, v, window, top_k)
    q, k, v = q.float(), k.float(), v.float()
    m, w = q.shape[1], k.shape[1]
    s = q @ k.transpose(1, 2) / math.sqrt(q.shape[2])  # [H, M, W]
    pos_q = torch.arange(w - m, w)[:, None]
    pos_k = torch.arange(w)[None, :]
    valid = pos_k <= pos_q
    local = valid & (pos_q - pos_k < window)
    older = valid & ~local
    keep = local.expand_as(s).clone()
    if top_k > 0:
        cand = s.masked_fill(~older, float("-inf"))
        vals, idx = cand.topk(min(top_k, w), dim=-1)
        picked = torch.zeros_like(keep).scatter_(-1, idx, torch.isfinite(vals))
        keep |= picked
    return torch.softmax(s.masked_fill(~keep, float("-inf")), dim=-1) @ v


def dense_attention_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Dense causal attention of the last M positions over all W (torch SDPA)."""
    m, w = q.shape[1], k.shape[1]
    mask = torch.arange(w)[None, :] <= torch.arange(w - m, w)[:, None]
    return torch.nn.functional.scaled_dot_product_attention(
        q.float(), k.float(), v.float(), attn_mask=mask
    )
