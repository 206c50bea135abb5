"""The arbiter node's plan is checked before any worker starts: one line, not two crashes."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch

from redline import kernels
from redline.feeds.clock import ReplayClock
from redline.kernels.feature_names import FEATURE_NAMES
from redline.kernels.plans.signing import PlanSignatureError, generate_key, sign_plan
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.arbiter_build import _worker_args, build_arbiter
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
