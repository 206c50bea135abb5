"""Fault specs: parsed strictly, armed at a request count, corrupting answers as told."""

from __future__ import annotations

import numpy as np
import pytest

from redline.pipeline.faults import FaultKind, FaultPlan, FaultSpec


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
