"""compile(): supported modules become plans matching the module; others are refused by name."""

import pytest
import torch
from torch import nn

import redline.kernels as rk
from redline.kernels import UnsupportedModelError

# precision -> (atol, rtol) of plan(x) against the fp32 module, unit-scale inputs.
TOLERANCE = {"fp32": (1e-5, 1e-5), "fp16": (5e-3, 5e-3), "bf16": (3e-2, 3e-2), "int8": (3e-2, 3e-2)}


def _mlp(*dims: int, act=nn.ReLU) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(len(dims) - 1):
        mods.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            mods.append(act())
    return nn.Sequential(*mods).eval()


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16", "int8"])
@pytest.mark.parametrize("backend", ["cpu", "triton"])
@pytest.mark.parametrize("act", [nn.ReLU, nn.GELU, nn.SiLU])
def test_plan_matches_module(precision, backend, act):
    torch.manual_seed(0)
    module = _mlp(13, 37, 29, 5, act=act)
    plan = rk.compile(module, precision=precision, backend=backend)
    x = torch.randn(6, 13)
    atol, rtol = TOLERANCE[precision]
    with torch.no_grad():
        torch.testing.assert_close(plan(x), module(x), atol=atol, rtol=rtol)
    assert plan.in_features == 13 and plan.out_features == 5
    assert plan.precision == precision and plan.backend == backend


def test_batch_one_and_batch_many_agree_on_cpu_path():
    # Batch 1 runs through numpy, larger batches through addmm: same answers.
    torch.manual_seed(1)
    module = _mlp(9, 31, 4, act=nn.GELU)
    plan = rk.compile(module, backend="cpu")
    x = torch.randn(7, 9)
    rows = torch.cat([plan(x[i : i + 1]) for i in range(7)])
    torch.testing.assert_close(rows, plan(x), atol=1e-6, rtol=1e-6)


def test_auto_backend_is_cpu_without_cuda():
    plan = rk.compile(_mlp(4, 8, 2))
    if not torch.cuda.is_available():
        assert plan.backend == "cpu" and plan.device.type == "cpu"
    else:
        assert plan.backend == "triton"


def test_bare_linear_and_nested_sequential():
    torch.manual_seed(2)
    lin = nn.Linear(5, 3)
    x = torch.randn(2, 5)
    with torch.no_grad():
        torch.testing.assert_close(rk.compile(lin)(x), lin(x))
        nested = nn.Sequential(nn.Sequential(nn.Linear(5, 8), nn.SiLU()), nn.Linear(8, 3))
        torch.testing.assert_close(rk.compile(nested)(x), nested(x), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_gru_plan_steps_like_torch_gru(backend):
    torch.manual_seed(3)
    gru = nn.GRU(7, 11)
    plan = rk.compile(gru, backend=backend)
    xs = torch.randn(5, 3, 7)  # [T, B, K]
    with torch.no_grad():
        want, _ = gru(xs)
    h = None
    for t in range(5):
        h = plan(xs[t], h)
        torch.testing.assert_close(h, want[t], atol=1e-5, rtol=1e-5)
    assert (plan.in_features, plan.out_features) == (7, 11)


@pytest.mark.parametrize(
    ("module", "named"),
    [
        (nn.Sequential(nn.Linear(3, 4), nn.Dropout()), "layer 1 (Dropout)"),
        (nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)), "layer 1 (Tanh)"),
        (nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.LayerNorm(4))), "layer 1.0 (LayerNorm)"),
        (nn.Sequential(nn.ReLU(), nn.Linear(3, 4)), "layer 0 (ReLU) must directly follow"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.ReLU()), "layer 2 (ReLU) must directly"),
        (nn.Sequential(nn.Linear(3, 4), nn.GELU(approximate="tanh")), "approximate='tanh'"),
        (nn.Sequential(nn.Linear(3, 300)), "widths above 256"),
        (
            nn.Sequential(*[nn.Linear(4, 4) for _ in range(5)]),
            "1..4 Linear layers, the module has 5",
        ),
        (nn.Conv1d(3, 4, 1), "module Conv1d is not supported"),
        (nn.GRU(3, 4, num_layers=2), "num_layers=2"),
        (nn.Sequential(nn.GRU(3, 4)), "layer 0 (GRU)"),
    ],
)
def test_unsupported_modules_are_refused_by_name(module, named):
    with pytest.raises(UnsupportedModelError, match=named.replace("(", r"\(").replace(")", r"\)")):
        rk.compile(module)


def test_bad_precision_and_backend_are_refused():
    with pytest.raises(ValueError, match="precision 'fp8'"):
        rk.compile(_mlp(3, 4), precision="fp8")
    with pytest.raises(ValueError, match="backend 'gpu'"):
        rk.compile(_mlp(3, 4), backend="gpu")
    with pytest.raises(ValueError, match="GRU plans take"):
        rk.compile(nn.GRU(3, 4), precision="int8")
