"""Calibration inputs: valid synthetic markets; recorded features are finite and seeded."""

import numpy as np
import pytest

from redline.kernels.features import N_FEATURES
from redline.kernels.plans.calibration import (
    calibration_features,
    recorded_features,
    synthetic_market,
)


def test_synthetic_market_is_valid_and_seeded():
    quotes, qrows, trades, trows = synthetic_market(400, 100, n_instruments=3, seed=5)
    assert len(quotes) == 400 and len(trades) == 100
    assert (quotes["bid_px"] < quotes["ask_px"]).all() and (quotes["bid_px"] > 0).all()
    assert (np.diff(quotes["ts_recv"]) >= 0).all() and (np.diff(trades["ts_recv"]) >= 0).all()
    assert set(qrows) == {0, 1, 2} and trows.max() <= 2
    again = synthetic_market(400, 100, n_instruments=3, seed=5)
    assert np.array_equal(again[0], quotes) and np.array_equal(again[2], trades)
    assert not np.array_equal(synthetic_market(400, 100, n_instruments=3, seed=6)[0], quotes)


def test_calibration_features_shape():
    x = calibration_features(100, seed=1)
    assert x.shape == (100, N_FEATURES) and x.dtype == np.float32 and np.isfinite(x).all()


def test_recorded_features_are_finite_varied_and_seeded():
    x = recorded_features(300, seed=2)
    assert x.shape == (300, N_FEATURES) and np.isfinite(x).all()
    assert (x.std(axis=0) > 0).all()  # every feature moves on the recordings
    assert np.array_equal(recorded_features(300, seed=2), x)
    with pytest.raises(ValueError, match="asked for"):
        recorded_features(10**9)
