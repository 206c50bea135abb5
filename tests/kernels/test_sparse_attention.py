"""Sparse attention kernel against its reference; top-k = all equals dense attention."""

import pytest
import torch

from redline.kernels.sparse_attention import (
    dense_attention_ref,
    sparse_attention,
    sparse_attention_ref,
)

# input dtype -> (atol, rtol); arithmetic is fp32 after the load in both.
TOLERANCE = {torch.float32: (2e-5, 1e-5), torch.float16: (2e-5, 1e-5), torch.bfloat16: (2e-5, 1e-5)}


def _qkv(heads, m, w, d, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(heads, w, d, generator=g)
    v = torch.randn(heads, w, d, generator=g)
    q = torch.randn(heads, m, d, generator=g)
    return q.to(dtype), k.to(dtype), v.to(dtype)


# One interpreted tl.topk program costs ~0.25 s on the 2 vCPU VM: few programs per case.
@pytest.mark.parametrize(
    ("heads", "m", "w", "d", "window", "top_k", "dtype"),
    [
        (1, 1, 37, 8, 4, 3, torch.float32),  # live: the newest event only
        (1, 1, 37, 8, 4, 3, torch.float16),
        (1, 1, 37, 8, 4, 3, torch.bfloat16),
        (2, 9, 21, 12, 5, 4, torch.float32),  # odd sizes, two heads
        (1, 17, 50, 16, 1, 7, torch.float32),  # window 1: only itself locally
        (1, 40, 40, 5, 8, 0, torch.float32),  # top_k 0: local attention only
    ],
)
def test_kernel_matches_reference(heads, m, w, d, window, top_k, dtype, dev_call):
    q, k, v = _qkv(heads, m, w, d, dtype, seed=w)
    got = dev_call(sparse_attention, q, k, v, window, top_k)
    atol, rtol = TOLERANCE[dtype]
    torch.testing.assert_close(
        got, sparse_attention_ref(q, k, v, window, top_k), atol=atol, rtol=rtol
    )


@pytest.mark.parametrize(("m", "w", "window"), [(1, 33, 4), (19, 19, 3), (8, 64, 1)])
def test_top_k_all_is_dense_attention(m, w, window, dev_call):
    q, k, v = _qkv(2, m, w, 16, seed=1)
    dense = dense_attention_ref(q, k, v)
    torch.testing.assert_close(
        dev_call(sparse_attention, q, k, v, window, top_k=w), dense, atol=2e-5, rtol=1e-5
    )
    # The reference takes the same top-k = all path to dense.
    torch.testing.assert_close(sparse_attention_ref(q, k, v, window, top_k=w), dense)


def test_sparse_differs_from_dense_when_it_should(dev_call):
    # Guards the selection itself: dropping keys must change the answer.
    q, k, v = _qkv(1, 1, 40, 8, seed=2)
    sparse = dev_call(sparse_attention, q, k, v, window=2, top_k=2)
    assert not torch.allclose(sparse, dense_attention_ref(q, k, v), atol=1e-3)


def test_top_k_picks_the_highest_scoring_old_keys(dev_call):
    # One old key aligned with the query, others orthogonal: with top_k=1 the
    # output is (nearly) that key's value plus the local window's values.
    d, w = 16, 20
    q = torch.zeros(1, 1, d)
    q[0, 0, 0] = 8.0
    k = torch.zeros(1, w, d)
    k[0, 3, 0] = 8.0  # old key 3 scores 16, everything else 0
    v = torch.zeros(1, w, d)
    v[0, 3, 1] = 1.0
    v[0, 5, 2] = 1.0  # an old key that is not picked
    out = dev_call(sparse_attention, q, k, v, window=2, top_k=1)
    assert out[0, 0, 1] > 0.99 and out[0, 0, 2] == 0.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1, 3, 2, 8, 1, 1), r"M \(3\) <= W \(2\)"),
        ((1, 1, 300, 8, 1, 1), "<= 256"),
        ((1, 1, 8, 8, 0, 1), "window must be >= 1"),
        ((1, 1, 8, 8, 1, -1), "top_k must be >= 0"),
    ],
)
def test_bad_arguments_are_refused(args, message):
    heads, m, w, d, window, top_k = args
    q, k, v = _qkv(heads, m, w, d)
    with pytest.raises(ValueError, match=message):
        sparse_attention(q, k, v, window, top_k)
