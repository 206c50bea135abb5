"""The demo model: deterministic, takes the features, scores both ways on the demo data."""

import torch

import redline.kernels as rk
from redline.kernels.plans.calibration import recorded_features
from redline.kernels.plans.demo_model import demo_model


def test_same_seed_same_weights_and_compilable():
    a, b, c = demo_model(0), demo_model(0), demo_model(1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a[0].weight, c[0].weight)
    plan = rk.compile(a)
    assert (plan.in_features, plan.out_features) == (rk.N_FEATURES, 1)


def test_scores_are_centred_and_scaled_on_the_recordings():
    x = torch.from_numpy(recorded_features(2048, seed=11))  # not the scaling sample
    with torch.no_grad():
        y = demo_model()(x)[:, 0]
    assert abs(float(y.median())) < 0.2 and 0.7 < float(y.std()) < 1.3
    assert 0.3 < float((y > 0).float().mean()) < 0.7  # buys and sells both occur
