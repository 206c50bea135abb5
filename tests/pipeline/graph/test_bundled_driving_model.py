"""The bundled driving plan is the code's shipped weights, and a frame arbiter with no model
gets it (so `redline run driving` starts as it is)."""

import numpy as np

from redline.kernels.plans import driving_model
from redline.kernels.plans.numpy_loader import load_numpy_plan
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.arbiter_build import check_model, default_model_dir


def test_the_bundled_driving_plan_answers_as_the_shipped_weights():
    plan = load_numpy_plan(driving_model.bundled_dir(), features="window")
    states = driving_model.sample_states(64, seed=3)
    x = np.concatenate([driving_model.inputs(*s) for s in states]).astype(np.float32)
    want = driving_model.predict(driving_model.fixed(), x)
    got = np.zeros((len(x), 1), np.float32)
    for s in range(0, len(x), plan.max_batch):
        plan.run_into(x[s : s + plan.max_batch], got[s : s + plan.max_batch])
    np.testing.assert_allclose(got[:, 0], want.reshape(-1), rtol=1e-5, atol=1e-5)


def test_the_driving_preset_starts_without_a_model_and_the_trading_one_keeps_its_own():
    spec = gc.load("driving")
    arb = spec.nodes["arbiter"]
    assert arb.model == "" and default_model_dir(arb) == str(driving_model.bundled_dir())
    check_model(arb, default_model_dir(arb))  # the window inputs the driving workers feed
    trading = gc.load("demo").nodes["arbiter"]
    assert default_model_dir(trading).endswith("model") and "driving" not in default_model_dir(
        trading
    )
