"""Precision gate: reports per precision; a plan over its bound is refused."""

import math

import pytest
import torch
from torch import nn

import redline.kernels as rk
from redline.kernels.features import N_FEATURES
from redline.kernels.plans.calibration import recorded_features
from redline.kernels.plans.demo_model import demo_model
from redline.kernels.plans.precision_gate import (
    PrecisionBound,
    PrecisionRefusedError,
    measure,
    precision_report,
)


@pytest.fixture(scope="module")
def calib():
    # Features of the bundled recordings: what the demo graph feeds the model.
    return recorded_features(512, seed=3)


def test_demo_model_passes_every_preset(calib):
    model = demo_model()
    reports = precision_report(model, calib)
    assert [r.precision for r in reports] == ["fp16", "bf16", "int8"]
    for r in reports:
        assert r.passed and r.rows == 512 and 0 < r.max_abs_error < r.bound.max_abs_error
    # Errors grow as precision shrinks: fp16 < bf16 < int8 on this model.
    assert reports[0].max_abs_error < reports[1].max_abs_error < reports[2].max_abs_error


def test_compile_with_calibration_keeps_the_report(calib):
    plan = rk.compile(demo_model(), precision="bf16", calibration=calib)
    assert plan.gate_report.passed and plan.gate_report.precision == "bf16"
    assert rk.compile(demo_model()).gate_report is None


def test_plan_over_the_bound_is_refused(calib):
    with pytest.raises(PrecisionRefusedError, match="int8 plan refused") as info:
        rk.compile(demo_model(), precision="int8", calibration=calib, bound=PrecisionBound(1e-4))
    report = info.value.report
    assert not report.passed and report.max_abs_error > 1e-4


def test_int8_refused_on_weights_it_cannot_represent(calib):
    # One large weight on a feature that is quiet in this sample sets the int8
    # scale; the small weights that carry the signal round to a few levels.
    quiet = calib.copy()
    quiet[:, 0] = 0.0
    g = torch.Generator().manual_seed(0)
    model = nn.Linear(N_FEATURES, 1)
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, N_FEATURES, generator=g) * 0.01)
        model.weight[0, 0] = 1.0
        model.bias.zero_()
        model.bias.fill_(-float(model(torch.from_numpy(quiet)).median()))
    fp16 = rk.compile(model, precision="fp16", calibration=quiet)
    assert fp16.gate_report.agreement > 0.99
    with pytest.raises(PrecisionRefusedError, match="int8 plan refused") as info:
        rk.compile(model, precision="int8", calibration=quiet)
    assert info.value.report.agreement < 0.98


def test_gru_gets_fp16_and_bf16_reports(calib):
    reports = precision_report(nn.GRU(N_FEATURES, 8), calib)
    assert [r.precision for r in reports] == ["fp16", "bf16"]


def test_nan_output_counts_as_infinite_error():
    ref = torch.zeros(4, 1)
    cand = ref.clone()
    cand[2, 0] = float("nan")
    report = measure(cand, ref, "fp16", PrecisionBound(1.0, 0.0))
    assert math.isinf(report.max_abs_error) and not report.passed


def test_bounds_are_checked():
    with pytest.raises(ValueError, match="max_abs_error"):
        PrecisionBound(float("nan"))
    with pytest.raises(ValueError, match="min_agreement"):
        PrecisionBound(0.1, 1.5)
    with pytest.raises(ValueError, match="calibration must be"):
        rk.compile(demo_model(), precision="fp16", calibration=torch.zeros(3, 5))
