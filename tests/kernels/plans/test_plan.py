"""Plan behaviour beyond compile(): input checks, run_into, versions."""

import numpy as np
import pytest
import torch
from torch import nn

import redline.kernels as rk
from redline.kernels import triton_mode


@pytest.fixture
def module() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(11, 24), nn.SiLU(), nn.Linear(24, 3)).eval()


def test_run_into_numpy_writes_out_and_reuses_it(module):
    plan = rk.compile(module, backend="cpu")
    out = np.full(3, np.nan, np.float32)
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal(11).astype(np.float32)
        plan.run_into(x, out)
        with torch.no_grad():
            want = module(torch.from_numpy(x)[None]).numpy()[0]
        np.testing.assert_allclose(out, want, atol=1e-6, rtol=1e-6)


def test_run_into_accepts_cpu_tensors_and_2d_rows(module):
    plan = rk.compile(module, backend="cpu")
    x = torch.randn(1, 11)
    out = torch.empty(1, 3)
    plan.run_into(x, out)
    torch.testing.assert_close(out, plan(x))


def test_run_into_triton_backend(module):
    plan = rk.compile(module, backend="triton")
    x = torch.randn(1, 11)
    out = torch.full((1, 3), float("nan"))
    plan.run_into(x, out)
    with torch.no_grad():
        torch.testing.assert_close(out, module(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("x", "out", "message"),
    [
        (np.zeros(11, np.float64), np.zeros(3, np.float32), "x must be C-contiguous float32"),
        (np.zeros(10, np.float32), np.zeros(3, np.float32), r"x must be .*\[11\]"),
        (np.zeros(11, np.float32), np.zeros(4, np.float32), r"out must be .*\[3\]"),
        (np.zeros((2, 11), np.float32)[:, 0], np.zeros(3, np.float32), "C-contiguous"),
    ],
)
def test_run_into_refuses_bad_buffers(module, x, out, message):
    plan = rk.compile(module, backend="cpu")
    with pytest.raises(ValueError, match=message):
        plan.run_into(x, out)


def test_call_refuses_bad_input(module):
    plan = rk.compile(module, backend="cpu")
    with pytest.raises(ValueError, match=r"\[B, 11\]"):
        plan(torch.zeros(2, 10))
    with pytest.raises(ValueError, match=r"\[B, 11\]"):
        plan(torch.zeros(11))
    with pytest.raises(TypeError, match="torch tensor"):
        plan(np.zeros((1, 11), np.float32))


def test_nan_input_propagates_to_output(module):
    # A corrupt input must show up as NaN, never as a plausible number.
    for backend in ("cpu", "triton"):
        plan = rk.compile(module, backend=backend)
        x = torch.zeros(2, 11)
        x[1, 4] = float("nan")
        y = plan(x)
        assert torch.isfinite(y[0]).all() and torch.isnan(y[1]).all()


def test_version_defaults_to_checksum_and_can_be_named(module):
    a = rk.compile(module)
    b = rk.compile(module)
    assert a.version == b.version == f"mlp-{a.checksum[:12]}"
    assert a.version_id == b.version_id and 0 <= a.version_id < 2**32
    with torch.no_grad():
        module[0].weight[0, 0] += 1.0
    assert rk.compile(module).version != a.version
    named = rk.compile(module, version="alpha-7")
    assert named.version == "alpha-7" and named.version_id != a.version_id


def test_triton_backend_without_cuda_or_interpreter_is_refused(module, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    monkeypatch.setattr(triton_mode, "INTERPRETED", False)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        rk.compile(module, backend="triton")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("batch", [1, 3])
def test_any_float_input_dtype_and_strides(module, dtype, batch):
    plan = rk.compile(module, backend="cpu")
    x = torch.randn(batch, 22)[:, ::2].to(dtype)  # non-contiguous rows
    with torch.no_grad():
        want = module(x.float())
    torch.testing.assert_close(plan(x), want, atol=1e-5, rtol=1e-5)


def test_triton_run_into_refuses_numpy_and_batches_on_host(module):
    plan = rk.compile(module, backend="triton")
    with pytest.raises(TypeError, match="torch tensors"):
        plan.run_into(np.zeros(11, np.float32), np.zeros(3, np.float32))
    if plan.device.type == "cuda":
        with pytest.raises(ValueError, match="batch 1"):
            plan.run_into(torch.zeros(2, 11), torch.zeros(2, 3))


def test_cpu_plan_answers_a_batch_in_one_run_into_as_row_by_row(module):
    """Before: run_into took one row only, so an engine called it once per row (8 rows: 8x the
    batch-1 cost instead of ~1.1x)."""
    plan = rk.compile(module, backend="cpu")
    x = np.random.default_rng(0).standard_normal((plan.max_batch, 11)).astype(np.float32)
    alone = np.zeros((len(x), plan.out_features), np.float32)
    for i in range(len(x)):
        plan.run_into(x[i], alone[i])
    out = np.zeros_like(alone)
    plan.run_into(x, out)
    np.testing.assert_allclose(out, alone, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(plan(torch.from_numpy(x)).numpy(), out, rtol=0, atol=0)
    with pytest.raises(ValueError, match="x has 3 rows, out 2"):
        plan.run_into(x[:3], out[:2])
