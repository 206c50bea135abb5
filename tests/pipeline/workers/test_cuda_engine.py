"""The CUDA engine answers what the CPU engine answers, on both feature kinds (GPU only).

The CUDA engine keeps window state in device memory and replays captured CUDA graphs; these
checks run the same market through it and through `CpuEngine` with the same weights, event by
event, late asks included, and across a snapshot into a fresh engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import redline.kernels as rk
from redline.kernels.features import N_FEATURES
from redline.kernels.triton_mode import INTERPRETED
from redline.pipeline.workers.engines import ROW_RING, CpuEngine

from .test_engines import market

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available() or INTERPRETED,
    reason="needs a CUDA device with compiled kernels (TRITON_INTERPRET=0 pytest)",
)

TOL = {"atol": 1e-4, "rtol": 1e-4}  # fp32 plans; Triton's dot and torch's addmm sum differently


def engines(width: int):
    from redline.pipeline.workers.engines import CudaEngine

    g = torch.Generator().manual_seed(7)
    model = nn.Sequential(nn.Linear(width, 32), nn.GELU(), nn.Linear(32, 2)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    cpu = CpuEngine(rk.compile(model, device="cpu", backend="cpu"))
    gpu = CudaEngine(rk.compile(model, device="cuda"))
    return cpu, gpu


@pytest.mark.parametrize("width,kind", [(N_FEATURES, "kernels"), (8, "window")])
def test_answers_match_the_cpu_engine_event_by_event(width, kind):
    cpu, gpu = engines(width)
    assert cpu.features.kind == gpu.features.kind == kind
    want, got = np.zeros(2, np.float32), np.zeros(2, np.float32)
    answers = []
    for no, (rtype, r) in enumerate(market(300), start=1):
        cpu.apply(no, rtype, r)
        gpu.apply(no, rtype, r)
        cpu.answer_into(no, want)
        gpu.answer_into(no, got)
        np.testing.assert_allclose(got, want, **TOL)
        answers.append(want.copy())
    assert np.ptp(np.array(answers), axis=0).min() > 0  # the answers move with the market
    # A late ask (hedge, readmission check) is answered on the state the first answer saw.
    gpu.answer_into(100, got)
    np.testing.assert_allclose(got, answers[99], **TOL)
    nos = np.array([5, 150, 300], np.uint64)
    out = np.zeros((3, 2), np.float32)
    assert gpu.answer_batch_into(nos, out).all()
    np.testing.assert_allclose(out, np.array([answers[4], answers[149], answers[299]]), **TOL)
    with pytest.raises(LookupError):
        gpu.answer_into(300 + ROW_RING, got)  # never applied: not held


@pytest.mark.parametrize("width", [N_FEATURES, 8])
def test_snapshot_from_the_gpu_restores_on_either_engine(width):
    cpu, gpu = engines(width)
    events = market(120)
    for no, (rtype, r) in enumerate(events[:80], start=1):
        gpu.apply(no, rtype, r)
    blob = gpu.snapshot()
    cpu.restore(blob)
    _, fresh = engines(width)
    fresh.restore(blob)
    want, got, again = (np.zeros(2, np.float32) for _ in range(3))
    for no, (rtype, r) in enumerate(events[80:], start=81):
        for e in (cpu, gpu, fresh):
            e.apply(no, rtype, r)
        cpu.answer_into(no, want)
        gpu.answer_into(no, got)
        fresh.answer_into(no, again)
        np.testing.assert_allclose(got, want, **TOL)
        np.testing.assert_allclose(again, want, **TOL)
