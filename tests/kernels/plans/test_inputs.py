"""A plan's inputs against what the workers feed: the cases that used to run silently."""

from __future__ import annotations

import pytest

from redline.kernels.feature_names import FEATURE_NAMES, N_FEATURES, window_feature_names
from redline.kernels.plans.inputs import resolve_features
from redline.kernels.plans.plan_file import PlanFileError


def test_named_kernel_features_and_windows_pick_their_state():
    assert resolve_features("p", N_FEATURES, list(FEATURE_NAMES), "auto") == "kernels"
    assert resolve_features("p", 16, list(window_feature_names(16)), "auto") == "window"
    assert resolve_features("p", N_FEATURES, None, "auto") == "kernels"  # width only
    assert resolve_features("p", 16, None, "window") == "window"


def test_a_16_input_model_without_names_is_refused_under_auto():
    """Before: "auto" fed it a 4-event window, so a model trained on other features ran."""
    with pytest.raises(PlanFileError) as err:
        resolve_features("models/x", 16, None, "auto")
    msg = str(err.value)
    assert "models/x: the plan takes 16 inputs but the workers feed the kernel features, 14" in msg
    assert 'features = "window"' in msg and "\n" not in msg


def test_a_10_input_model_says_what_fits_not_multiple_of_4():
    """Before: "engine: model in_features must be a multiple of 4, got 10"."""
    with pytest.raises(PlanFileError, match="takes 10 inputs but the workers feed the kernel"):
        resolve_features("p", 10, None, "auto")
    with pytest.raises(PlanFileError, match="an event window is a multiple of 4 wide"):
        resolve_features("p", 10, None, "window")


def test_other_names_are_refused_naming_the_first_difference():
    names = list(FEATURE_NAMES)
    names[3] = "mid_vs_ema_5m_bp"
    with pytest.raises(PlanFileError, match=r"input 3: 'mid_vs_ema_5m_bp' vs 'mid_vs_ema_60s_bp'"):
        resolve_features("p", N_FEATURES, names, "auto")
    with pytest.raises(PlanFileError, match="features 'nope'"):
        resolve_features("p", N_FEATURES, None, "nope")
