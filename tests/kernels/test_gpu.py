"""Checks only a GPU can make; skipped on CPU CI with the reason."""

import pytest
import torch
from torch import nn

import redline.kernels as rk
from redline.kernels.fused_mlp import fused_mlp, fused_mlp_ref, quantize_layer
from redline.kernels.triton_mode import INTERPRETED

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available() or INTERPRETED,
    reason="needs a CUDA device with compiled kernels (TRITON_INTERPRET=0 pytest): the "
    "interpreter cannot check native bf16/fp16 tl.dot (its bf16 dot is wrong, "
    "triton#11584), TF32 vs ieee, or CUDA graph capture",
)


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16", "int8"])
def test_native_dot_paths_match_reference(precision):
    g = torch.Generator().manual_seed(0)
    dims = (14, 64, 256, 1)
    layers = [
        quantize_layer(
            torch.randn(dims[i + 1], dims[i], generator=g) / dims[i] ** 0.5, None, a, precision
        )
        for i, a in enumerate(("gelu", "relu", "none"))
    ]
    dev = [
        type(ly)(
            ly.weight.cuda(),
            ly.bias.cuda(),
            ly.activation,
            None if ly.scale is None else ly.scale.cuda(),
        )
        for ly in layers
    ]
    x = torch.randn(4096, 14, generator=g)
    got = fused_mlp(x.cuda(), dev, precision).cpu()
    tol = {"fp32": 1e-5, "fp16": 1e-3, "bf16": 1e-2, "int8": 1e-3}[precision]
    torch.testing.assert_close(got, fused_mlp_ref(x, layers, precision), atol=tol, rtol=tol)


@needs_cuda
def test_run_into_replays_from_a_cuda_graph():
    model = nn.Sequential(nn.Linear(14, 64), nn.GELU(), nn.Linear(64, 1)).eval()
    plan = rk.compile(model, device="cuda")
    assert plan.backend == "triton"
    x = torch.zeros(1, 14, device="cuda")
    out = torch.zeros(1, 1, device="cuda")
    plan.run_into(x, out)  # warm up (compiles the kernel) outside the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        plan.run_into(x, out)
    for seed in range(3):
        x.copy_(torch.randn(1, 14, generator=torch.Generator().manual_seed(seed)))
        graph.replay()
        with torch.no_grad():
            torch.testing.assert_close(out.cpu(), model(x.cpu()), atol=1e-5, rtol=1e-5)
