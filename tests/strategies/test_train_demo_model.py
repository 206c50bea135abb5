import numpy as np
import torch

from redline import kernels
from redline.feeds.events import QUOTE_DTYPE
from redline.kernels.features import N_FEATURES
from redline.replay_data import DIR
from redline.strategies import train_demo_model as tdm


def test_targets_are_the_mid_move_one_horizon_ahead_in_spreads():
    q = np.zeros(6, QUOTE_DTYPE)
    q["instrument_id"] = [1, 2, 1, 1, 2, 1]
    s = tdm.HORIZON_NS
    q["ts_event"] = [0, 0, s // 2, s, s, 3 * s]
    q["bid_px"] = [100, 50, 101, 101, 40, 90]
    q["ask_px"] = [102, 51, 103, 103, 41, 92]
    y = tdm.targets(q)
    # inst 1 at t=0: mid 101 -> 102 at t=s (first quote at/after t+s), spread 2 -> 0.5
    assert y[0] == 0.5
    assert y[1] == -1.0  # inst 2: 50.5 -> 40.5 over a 1-tick spread, clipped
    assert y[2] == -1.0  # 102 -> 91 at t=3s
    assert y[3] == -1.0
    assert np.isnan(y[4]) and np.isnan(y[5])  # nothing a horizon later


def test_training_is_deterministic_and_takes_raw_features(monkeypatch):
    monkeypatch.setattr(tdm, "EPOCHS", 5)
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(200, N_FEATURES)) * 50 + 10).astype(np.float32)
    y = np.tanh(x[:, 0] / 50).astype(np.float32)
    a, b = tdm.train(x, y), tdm.train(x, y)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    plan = kernels.compile(a, precision="fp32", device="cpu")
    out = np.zeros((1, 1), np.float32)
    plan.run_into(x[:1], out)
    with torch.no_grad():
        want = a(torch.from_numpy(x[:1])).numpy()
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


def test_bundled_model_is_a_plan_over_the_feature_vector():
    plan = kernels.load(DIR / "model", backend="cpu")
    assert (plan.in_features, plan.out_features) == (N_FEATURES, 1)
    out = np.zeros((1, 1), np.float32)
    plan.run_into(np.zeros((1, N_FEATURES), np.float32), out)
    assert np.isfinite(out).all()
