"""The torch-free CPU worker plan gives the kernels' plan answers on the same plan files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from redline import kernels
from redline.kernels.plans.numpy_loader import load_numpy_plan


@pytest.mark.parametrize(
    ("precision", "act", "atol"),
    [
        ("fp32", torch.nn.ReLU, 1e-5),
        ("fp32", torch.nn.SiLU, 1e-5),
        ("fp32", torch.nn.GELU, 1e-5),
        ("int8", torch.nn.ReLU, 1e-3),
    ],
)
def test_same_answers_as_kernels_plan(tmp_path, precision, act, atol):
    torch.manual_seed(1)
    m = torch.nn.Sequential(torch.nn.Linear(12, 20), act(), torch.nn.Linear(20, 5))
    kernels.compile(m, precision=precision, device="cpu").save(tmp_path)
    ref = kernels.load(tmp_path, device="cpu", backend="cpu")
    mine = load_numpy_plan(tmp_path)
    assert mine is not None and mine.version_id == ref.version_id
    assert (mine.in_features, mine.out_features) == (12, 5)
    x = 3 * np.random.default_rng(2).standard_normal((7, 1, 12)).astype(np.float32)
    a, b = np.zeros((1, 5), np.float32), np.zeros((1, 5), np.float32)
    for row in x:
        ref.run_into(row, a)
        mine.run_into(row, b)
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=atol)


@pytest.mark.parametrize("act", [torch.nn.ReLU, torch.nn.SiLU, torch.nn.GELU])
def test_a_batch_gives_each_row_as_alone_and_a_too_big_one_is_refused(tmp_path, act):
    torch.manual_seed(3)
    m = torch.nn.Sequential(torch.nn.Linear(12, 20), act(), torch.nn.Linear(20, 5))
    kernels.compile(m, precision="fp32", device="cpu").save(tmp_path)
    plan = load_numpy_plan(tmp_path)
    x = 3 * np.random.default_rng(4).standard_normal((plan.max_batch, 12)).astype(np.float32)
    alone = np.zeros((len(x), 5), np.float32)
    for i in range(len(x)):
        plan.run_into(x[i : i + 1], alone[i : i + 1])
    for k in (2, 7, 16, plan.max_batch):
        out = np.full((k, 5), np.nan, np.float32)
        plan.run_into(x[:k], out)
        # BLAS may take another kernel per batch size: last bits only
        np.testing.assert_allclose(out, alone[:k], rtol=1e-5, atol=1e-6)
        again = np.zeros_like(out)
        plan.run_into(x[:k], again)
        np.testing.assert_array_equal(again, out)  # same batch, same bits
    with pytest.raises(ValueError, match="batch of"):
        plan.run_into(np.zeros((plan.max_batch + 1, 12), np.float32), np.zeros((1, 5)))


def test_unsupported_plans_go_to_kernels_and_corrupt_ones_fail(tmp_path):
    m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    kernels.compile(m, precision="bf16", device="cpu").save(tmp_path)
    assert load_numpy_plan(tmp_path) is None  # bf16: the worker loads through kernels
    m = torch.nn.Sequential(torch.nn.Linear(4, 2))
    kernels.compile(m, precision="fp32", device="cpu").save(tmp_path / "p")
    w = tmp_path / "p" / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:-1] + b"\x01")
    with pytest.raises(ValueError, match="sha256"):
        load_numpy_plan(tmp_path / "p")
    with pytest.raises(ValueError, match="no such plan directory"):
        load_numpy_plan(tmp_path / "nothing")
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match=r"'format' is not 'redline\.plan'"):  # was: None, silently
        load_numpy_plan(tmp_path / "q")


def test_refuses_what_the_library_loader_refuses_with_the_same_message(tmp_path):
    """Before: a pickle named weights.safetensors with a matching sha256 gave a SafetensorError
    traceback here while `kernels.load` refused it cleanly."""
    import hashlib

    m = torch.nn.Sequential(torch.nn.Linear(4, 2))
    kernels.compile(m, device="cpu").save(tmp_path)
    w, mp = tmp_path / "weights.safetensors", tmp_path / "manifest.json"
    torch.save(m.state_dict(), w)
    manifest = json.loads(mp.read_text())
    manifest["sha256"] = hashlib.sha256(w.read_bytes()).hexdigest()
    mp.write_text(json.dumps(manifest))
    messages = []
    for load in (load_numpy_plan, kernels.load):
        with pytest.raises(ValueError, match="pickled weights are refused") as err:
            load(tmp_path)
        messages.append(str(err.value))
    assert messages[0] == messages[1]


def test_checks_inputs_against_the_features_the_worker_feeds(tmp_path):
    m = torch.nn.Sequential(torch.nn.Linear(16, 2))
    kernels.compile(m, device="cpu").save(tmp_path)
    with pytest.raises(ValueError, match="takes 16 inputs but the workers feed the kernel"):
        load_numpy_plan(tmp_path, features="auto")
    assert load_numpy_plan(tmp_path, features="window").in_features == 16
