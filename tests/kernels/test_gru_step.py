"""GRU step kernel: one step == the reference; T steps == torch.nn.GRU over the window."""

import pytest
import torch
from torch import nn

from redline.kernels.gru_step import gru_step, gru_step_ref

# weight dtype -> (atol, rtol); arithmetic is fp32 in both, only weights are rounded.
TOLERANCE = {torch.float32: (1e-5, 1e-5), torch.float16: (1e-5, 1e-5), torch.bfloat16: (1e-5, 1e-5)}


def _weights(k, h, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = h**-0.5
    return (
        (torch.rand(3 * h, k, generator=g) * 2 - 1).mul(s).to(dtype),
        (torch.rand(3 * h, h, generator=g) * 2 - 1).mul(s).to(dtype),
        (torch.rand(3 * h, generator=g) * 2 - 1).mul(s),
        (torch.rand(3 * h, generator=g) * 2 - 1).mul(s),
    )


@pytest.mark.parametrize("dtype", list(TOLERANCE))
@pytest.mark.parametrize(("batch", "k", "h"), [(1, 14, 16), (3, 5, 11), (33, 17, 40), (2, 3, 130)])
def test_step_matches_reference(dtype, batch, k, h, dev_call):
    w = _weights(k, h, dtype)
    g = torch.Generator().manual_seed(batch)
    x, h0 = torch.randn(batch, k, generator=g), torch.randn(batch, h, generator=g)
    atol, rtol = TOLERANCE[dtype]
    torch.testing.assert_close(
        dev_call(gru_step, x, h0, *w), gru_step_ref(x, h0, *w), atol=atol, rtol=rtol
    )


def test_in_place_over_several_column_blocks_reads_the_old_state(dev_call):
    # 130 units run as three blocks of 64 outputs; each block's dot reads all of h, so writing
    # h' over h block by block would feed one block's new state into another's step.
    w = _weights(3, 130, torch.float32)
    g = torch.Generator().manual_seed(7)
    x, h0 = torch.randn(2, 3, generator=g), torch.randn(2, 130, generator=g)

    def in_place(x, h, *w):
        return gru_step(x, h, *w, out=h)

    torch.testing.assert_close(
        dev_call(in_place, x, h0.clone(), *w), gru_step_ref(x, h0, *w), atol=1e-5, rtol=1e-5
    )


def test_stepping_a_sliding_window_equals_torch_gru(dev_call):
    # The state carries over; each new event costs one step, not a window re-run.
    torch.manual_seed(0)
    gru = nn.GRU(6, 12)
    w = (
        gru.weight_ih_l0.detach(),
        gru.weight_hh_l0.detach(),
        gru.bias_ih_l0.detach(),
        gru.bias_hh_l0.detach(),
    )
    xs = torch.randn(9, 2, 6)
    with torch.no_grad():
        want, _ = gru(xs)
    h = torch.zeros(2, 12)

    def step(x, h, *w):
        gru_step(x, h, *w, out=h)  # in place: the worker's resident state
        return h

    for t in range(9):
        h = dev_call(step, xs[t], h, *w)
        torch.testing.assert_close(h, want[t], atol=1e-5, rtol=1e-5)


def test_nan_state_stays_in_its_row(dev_call):
    w = _weights(4, 8, torch.float32)
    x, h = torch.randn(3, 4), torch.randn(3, 8)
    h[1, 2] = float("nan")
    got = dev_call(gru_step, x, h, *w)
    assert torch.isnan(got[1]).any() and torch.isfinite(got[[0, 2]]).all()


def test_bad_shapes_are_refused():
    w = _weights(4, 8, torch.float32)
    with pytest.raises(ValueError, match=r"x must be \[B, 4\]"):
        gru_step(torch.randn(2, 5), torch.randn(2, 8), *w)
    with pytest.raises(ValueError, match=r"h must be \[2, 8\]"):
        gru_step(torch.randn(2, 4), torch.randn(3, 8), *w)
    with pytest.raises(ValueError, match="GRU weights must be"):
        gru_step(torch.randn(2, 4), torch.randn(2, 8), w[0][:5], *w[1:])
    with pytest.raises(ValueError, match="exceeds"):
        gru_step(torch.randn(1, 4), torch.randn(1, 300), *_weights(4, 300, torch.float32))
