"""Fault specs: parsed strictly, armed at a request count, corrupting answers as told."""

from __future__ import annotations

import numpy as np
import pytest

from redline.pipeline.workers.faults import FaultKind, FaultPlan, FaultSpec


def test_parse_several_with_defaults_and_args():
    specs = FaultSpec.parse("nan@5, delay@10:0.02,wrong@3")
    assert specs == [
        FaultSpec(FaultKind.NAN, 5),
        FaultSpec(FaultKind.DELAY, 10, 0.02),
        FaultSpec(FaultKind.WRONG, 3, 1.0),
    ]


@pytest.mark.parametrize("bad", ["boom@1", "nan@x", "delay@1:fast", "nan@-1"])
def test_bad_spec_names_itself(bad):
    with pytest.raises(ValueError, match="fault spec"):
        FaultSpec.parse(bad)


def test_corruption_starts_at_the_armed_answer_relative_to_now():
    plan = FaultPlan()
    out = np.ones(2, np.float32)
    plan.before_answer()
    plan.before_answer()  # two answers so far
    plan.arm("wrong@2:0.5,nan@4")
    seen = []
    for _ in range(5):
        plan.before_answer()
        out[:] = 1.0
        plan.after_answer(out)
        seen.append(out[0])
    # answers 3..7: "wrong@2" counts from 2 -> from the 4th; "nan@4" -> from the 6th
    assert seen[:3] == [1.0, 1.5, 1.5]
    assert np.isnan(seen[3]) and np.isnan(seen[4])


def test_a_batch_counts_each_answer_so_a_fault_starts_mid_batch():
    plan = FaultPlan(FaultSpec.parse("wrong@3:0.5,nan@5"))
    out = np.ones((4, 2), np.float32)
    plan.before_answers(4)  # answers 1..4
    plan.after_answers(out)
    assert out[:, 0].tolist() == [1.0, 1.0, 1.5, 1.5]
    out[:] = 1.0
    plan.before_answers(2)  # answers 5, 6
    plan.after_answers(out[:2])
    assert np.isnan(out[:2]).all() and plan.answers == 6
    clean = FaultPlan()
    clean.before_answers(3)
    assert clean.answers == 3


def test_model_call_faults_are_kept_apart_and_slow_only_the_versions_they_name(monkeypatch):
    from types import SimpleNamespace

    from redline.pipeline.workers import faults

    slept: list[float] = []
    monkeypatch.setattr(faults, "time", SimpleNamespace(sleep=slept.append))
    plan = FaultPlan()
    plan.arm("slow_new@2:0.03,slow@3:0.01")
    assert plan.specs == [] and [s.kind for s in plan.slow] == ["slow_new", "slow"]
    plan.before_answers(1)  # answer 1: neither yet
    plan.model_call(new=True)
    assert slept == []
    plan.before_answers(1)  # answer 2: a hot swap's new version is slow
    plan.model_call(new=False)
    plan.model_call(new=True)
    assert slept == [0.03]
    plan.before_answers(1)  # answer 3: every version is slow too
    plan.model_call(new=False)
    assert slept == [0.03, 0.01]
