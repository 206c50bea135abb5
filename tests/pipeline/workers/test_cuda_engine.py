"""The CUDA engine answers what the CPU engine answers, on both feature kinds (GPU only).

The CUDA engine keeps window state in device memory and replays captured CUDA graphs; these
checks run the same market through it and through `CpuEngine` with the same weights, event by
event, late asks included, and across a snapshot into a fresh engine. A hot swap's second
version gets its own weights and captured graph beside the first: the flip picks which replays,
the flip back finds the first still captured. bench/gpu_check.sh runs this file."""

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


def plans(width: int, seed: int = 7):
    """(CPU plan, CUDA plan) of one random model: the same weights, the same version."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(width, 32), nn.GELU(), nn.Linear(32, 2)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return rk.compile(model, device="cpu", backend="cpu"), rk.compile(model, device="cuda")


def engines(width: int):
    from redline.pipeline.workers.cuda_engine import CudaEngine

    cpu, gpu = plans(width)
    return CpuEngine(cpu), CudaEngine(gpu)


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


@pytest.mark.parametrize("width", [N_FEATURES, 8])
def test_a_second_version_has_its_own_graph_and_the_first_stays_captured_for_the_flip_back(width):
    from redline.pipeline.workers.cuda_engine import CudaEngine

    (c1, g1), (c2, g2) = plans(width, seed=7), plans(width, seed=8)
    v1, v2 = g1.version_id, g2.version_id
    assert v1 != v2 and (c1.version_id, c2.version_id) == (v1, v2)
    cpu, gpu = CpuEngine(c1), CudaEngine(g1)
    events = market(240)
    want, got = np.zeros(2, np.float32), np.zeros(2, np.float32)

    def step(no: int) -> None:
        rtype, r = events[no - 1]
        for e in (cpu, gpu):
            e.apply(no, rtype, r)
        cpu.answer_into(no, want)
        gpu.answer_into(no, got)
        np.testing.assert_allclose(got, want, **TOL)

    for no in range(1, 101):
        step(no)
    before = got.copy()
    for e, plan in ((cpu, c2), (gpu, g2)):  # LOAD: beside the serving one, captured (warm)
        e.add_plan(plan)
        e.warm(plan)
    gpu.answer_into(100, got)
    np.testing.assert_array_equal(got, before)  # loading v2 left v1's graph and state alone
    nos, old, new = gpu.canary(g2, 64)
    _, cold, cnew = cpu.canary(c2, 64)
    assert nos.tolist() == list(range(37, 101))
    np.testing.assert_allclose(old, cold, **TOL)
    np.testing.assert_allclose(new, cnew, **TOL)
    assert np.abs(new - old).max() > 1e-3  # two different models, each on its own graph
    for e in (cpu, gpu):
        e.use(101, v2)  # the flip
    for no in range(101, 181):
        step(no)
    assert gpu.version_of(180) == v2 and gpu.version_of(100) == v1
    gpu.answer_into(50, got)  # a late ask from before the flip: v1's graph, v1's answer
    cpu.answer_into(50, want)
    np.testing.assert_allclose(got, want, **TOL)
    gpu.start_shadow(v1, every=1, period_ns=10**12)  # the swap's watch: v1 timed beside v2
    cpu.start_shadow(v1)
    for no in range(181, 201):
        step(no)  # the answer is still v2's
    assert gpu.shadow.n == 20 and (gpu.shadow.pairs[:20, 1:] > 0).all()
    for e in (cpu, gpu):
        e.start_shadow(0)
        e.use(201, v1)  # the flip back: v1's graph was kept, nothing to capture
    for no in range(201, 241):
        step(no)
    for e in (cpu, gpu):
        e.drop(v2)
    with pytest.raises(LookupError, match="unloaded"):
        gpu.answer_into(150, got)


def test_load_through_the_worker_message_builds_the_version_on_the_device(tmp_path):
    from redline.kernels.plans.demo_versions import demo_registry
    from redline.pipeline.workers.engines import on_version_message
    from redline.pipeline.workers.process import build_engine
    from redline.pipeline.workers.protocol import Kind, decode_reply

    reg = demo_registry(tmp_path)
    gpu = build_engine("cuda", str(reg.resolve("demo@1")), 0)
    for no, (rtype, r) in enumerate(market(300), start=1):
        gpu.apply(no, rtype, r)
    frames = on_version_message(gpu, Kind.LOAD, 0, 128, str(reg.resolve("demo@2")).encode())
    msg = decode_reply(frames)
    assert msg.kind == Kind.LOADED and not msg.stamps[3], bytes(msg.payload).decode()
    both = np.frombuffer(msg.payload, np.float32).reshape(2, msg.id, gpu.out_features)
    assert msg.id == 128 and np.isfinite(both).all()
    assert len(gpu.book.entries) == 2 and gpu.version_of(300) != msg.version
    on_version_message(gpu, Kind.USE, msg.version, 301, b"")
    assert gpu.version_of(301) == msg.version
