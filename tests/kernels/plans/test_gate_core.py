"""The gate's comparison without torch: what the hot swap's canary judges by."""

import math

import numpy as np
import pytest

from redline.kernels.plans.gate_core import PrecisionBound, decisions_np, measure_arrays


def test_nan_is_an_infinite_error_and_a_disagreement():
    ref = np.array([[1.0], [-1.0], [0.5], [0.0]], np.float32)
    cand = ref.copy()
    cand[0, 0] = np.nan
    r = measure_arrays(cand, ref, "canary", PrecisionBound(10.0, 0.5))
    assert r.max_abs_error == math.inf and r.agreement == 0.75 and not r.passed


def test_decisions_use_the_dead_zone_and_argmax():
    ref = np.array([[0.3], [0.1], [-0.3]], np.float32)
    cand = np.array([[0.25], [-0.1], [0.3]], np.float32)  # 2nd flips sign inside the dead zone
    r = measure_arrays(cand, ref, "canary", PrecisionBound(1.0, 0.6, decision_threshold=0.2))
    assert r.agreement == pytest.approx(2 / 3) and r.passed
    many = measure_arrays(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32)[::-1],
                          "canary", PrecisionBound(2.0, 0.0))  # fmt: skip
    assert many.agreement == pytest.approx(1 / 3)


def test_shapes_must_match():
    with pytest.raises(ValueError, match="equal non-empty"):
        measure_arrays(np.zeros((2, 1)), np.zeros((3, 1)), "canary", PrecisionBound(1.0))


def test_decisions_sign_with_dead_zone_and_argmax():
    y = np.array([[0.5], [-0.2], [0.05], [-0.05]], np.float32)
    assert decisions_np(y, 0.1).tolist() == [1, -1, 0, 0]
    assert decisions_np(np.array([[0.1, 0.9, 0.0], [2.0, 1.0, 3.0]])).tolist() == [1, 2]
