"""The arbiter node's plan is checked before any worker starts: one line, not two crashes."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from redline import kernels
from redline.feeds.clock import ReplayClock
from redline.kernels.feature_names import FEATURE_NAMES
from redline.kernels.plans import driving_model
from redline.kernels.plans.demo_model import bundled_model_dir
from redline.kernels.plans.numpy_loader import load_numpy_plan
from redline.kernels.plans.signing import PlanSignatureError, generate_key, sign_plan
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.arbiter_build import (
    _worker_args,
    build_arbiter,
    check_model,
    default_model_dir,
)
from redline.replay_data import DIR


def _node(model, **kw) -> gc.ArbiterSpec:
    return gc.ArbiterSpec(in_="ticks", out="answers", model=str(model), **kw)


def test_a_model_with_three_outputs_is_refused_before_workers_start(tmp_path):
    """Before: a 14->3 model ran the whole demo, the strategy reading output 0 of 3."""
    m = torch.nn.Sequential(torch.nn.Linear(14, 3))
    kernels.compile(m, device="cpu", input_features=FEATURE_NAMES).save(tmp_path)
    with pytest.raises(gc.GraphError, match="gives 3 outputs; the strategy reads one score"):
        build_arbiter(_node(tmp_path), ReplayClock(), None)


def test_an_unsigned_plan_under_require_signed_is_refused_at_start(tmp_path):
    public = generate_key(tmp_path / "k")
    model = tmp_path / "model"
    shutil.copytree(DIR / "model", model)
    node = _node(model, require_signed=True, trusted_keys=(public,))
    with pytest.raises(PlanSignatureError, match="not signed"):
        build_arbiter(node, ReplayClock(), None)
    other = generate_key(tmp_path / "other")
    sign_plan(model, tmp_path / "other")
    with pytest.raises(PlanSignatureError, match=f"signed by key {other[:16]}"):
        build_arbiter(node, ReplayClock(), None)


def test_workers_are_told_the_trusted_keys():
    key = "ab" * 32
    node = _node("", require_signed=True, trusted_keys=(key,))
    args = _worker_args(node.workers[0], node.plan_trust())
    assert args[-3:] == ("--trusted-key", key, "--require-signed")
    assert "--trusted-key" not in _worker_args(node.workers[0], _node("").plan_trust())


GRAPH = """
[graph]
name = "signed"
[edges.ticks]
address = "ipc://{d}/ticks"
[edges.answers]
address = "ipc://{d}/answers"
[nodes.feed]
kind = "feed"
source = "ipc://{d}/pub"
socket = "pull"
out = "ticks"
[nodes.arbiter]
kind = "arbiter"
in = "ticks"
out = "answers"
model = "{model}"
require_signed = true
trusted_keys = ["{key}"]
[nodes.strategy]
kind = "strategy"
in = "answers"
"""


def test_redline_run_refuses_an_unsigned_plan_in_one_line(tmp_path):
    public = generate_key(tmp_path / "k")
    model = tmp_path / "model"
    shutil.copytree(DIR / "model", model)
    graph = tmp_path / "g.toml"
    graph.write_text(GRAPH.format(d=tmp_path, model=model, key=public))
    proc = subprocess.run(
        [sys.executable, "-m", "redline.pipeline.cli.main", "run", str(graph)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "plan is not signed (no signature.json) and require_signed is set" in proc.stderr


# The bundled driving plan is the code's shipped weights, and a frame arbiter with no model gets
# it (so `redline run driving` starts as it is).
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
    assert default_model_dir(trading) == str(bundled_model_dir())
