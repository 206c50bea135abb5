"""Input names: the kernels' features are what features.py computes; windows name each slot."""

import pytest

from redline.kernels import feature_names, features
from redline.kernels.feature_names import window_feature_names


def test_the_kernels_compute_the_named_features():
    assert features.FEATURE_NAMES is feature_names.FEATURE_NAMES
    assert features.N_FEATURES == len(feature_names.FEATURE_NAMES) == 14


def test_window_names_newest_event_first():
    assert window_feature_names(8) == (
        "event0_value0", "event0_value1", "event0_value2", "event0_value3",
        "event1_value0", "event1_value1", "event1_value2", "event1_value3",
    )  # fmt: skip
    with pytest.raises(ValueError, match="multiple of 4 wide, not 10"):
        window_feature_names(10)
