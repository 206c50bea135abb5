"""`redline plan DIR`: the bundled model compiled, gated, saved, signed; never overwrites."""

import json
import os

import numpy as np
import torch

import redline.kernels as rk
from redline.kernels.feature_names import FEATURE_NAMES
from redline.kernels.fused_mlp import PRECISIONS
from redline.kernels.plans.calibration import calibration_features, recorded_features
from redline.kernels.plans.demo_model import bundled_model
from redline.kernels.plans.numpy_loader import load_numpy_plan
from redline.kernels.plans.signing import Trust, generate_key
from redline.pipeline.cli.main import main
from redline.pipeline.cli.plan import PRECISION_CHOICES
from redline.replay_data import DIR


def test_saves_the_bundled_model_gated_at_the_precision(tmp_path, capsys):
    """Before: an untrained seeded 14-64-64-1 model, not the trained one the demo runs."""
    out = tmp_path / "plan"
    args = ["plan", str(out), "--precision", "bf16", "--rows", "256"]
    assert main([*args, "--json", str(tmp_path / "r.json")]) == 0
    plan = rk.load(out)
    bundled = rk.load(DIR / "model", backend="cpu")
    assert plan.precision == "bf16" and plan.input_features == FEATURE_NAMES
    assert plan.architecture() == bundled.architecture()  # 14-32-32-1 ReLU, the trained shape
    x = torch.from_numpy(recorded_features(16, seed=9))  # the gate's domain
    with torch.no_grad():
        torch.testing.assert_close(plan(x), bundled(x), atol=0.05, rtol=0.05)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["saved"] and [g["precision"] for g in report["gate"]] == ["fp16", "bf16", "int8"]
    assert "bundled demo model" in capsys.readouterr().out


def test_fp32_is_the_bundled_model_bit_for_bit(tmp_path):
    assert main(["plan", str(tmp_path / "p"), "--rows", "64"]) == 0
    same = rk.load(tmp_path / "p", backend="cpu").tensors()
    for name, t in rk.load(DIR / "model", backend="cpu").tensors().items():
        assert torch.equal(same[name], t)
    x = np.ascontiguousarray(calibration_features(4, seed=3))
    with torch.no_grad():
        want = bundled_model()(torch.from_numpy(x)).numpy()
    got = np.zeros_like(want)
    load_numpy_plan(tmp_path / "p", features="auto").run_into(x, got)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_over_the_bound_nothing_is_written(tmp_path, capsys):
    out = tmp_path / "plan"
    rc = main(["plan", str(out), "--precision", "int8", "--rows", "256", "--max-abs-error", "1e-9"])
    assert rc == 2 and not out.exists()
    assert "int8 plan refused" in capsys.readouterr().err


def test_never_overwrites_without_force(tmp_path, capsys):
    out = tmp_path / "plan"
    out.mkdir()
    (out / "manifest.json").write_text("mine")
    assert main(["plan", str(out), "--rows", "64"]) == 2
    err = capsys.readouterr().err
    assert "is not empty (holds manifest.json)" in err and "--force" in err and err.count("\n") == 1
    assert (out / "manifest.json").read_text() == "mine"
    assert main(["plan", str(out), "--rows", "64", "--force"]) == 0
    assert rk.load(out).input_features == FEATURE_NAMES


def test_never_writes_into_the_bundled_model_without_force(capsys):
    """Before: `redline plan replay_data/model` silently replaced the bundled model."""
    before = {p.name: p.read_bytes() for p in (DIR / "model").iterdir()}
    assert main(["plan", str(DIR / "model"), "--rows", "64"]) == 2
    assert "is the bundled demo model" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (DIR / "model").iterdir()} == before


def test_dir_that_is_a_file(tmp_path, capsys):
    """Before: a FileExistsError traceback."""
    (tmp_path / "f").write_text("x")
    assert main(["plan", str(tmp_path / "f"), "--rows", "64"]) == 2
    err = capsys.readouterr().err
    assert "f is a file; give a directory" in err and err.count("\n") == 1


def test_sign_key_signs_and_a_replaced_plan_loses_its_old_signature(tmp_path, capsys):
    public = generate_key(tmp_path / "k")
    out = tmp_path / "plan"
    assert main(["plan", str(out), "--rows", "64", "--sign-key", str(tmp_path / "k")]) == 0
    assert f"signed with key {public}" in capsys.readouterr().out
    assert load_numpy_plan(out, trust=Trust(True, (public,))) is not None
    assert main(["plan", str(out), "--rows", "64", "--force"]) == 0
    assert not (out / "signature.json").exists()  # it signed the replaced plan
    os.chmod(tmp_path / "k", 0o640)
    assert main(["plan", str(tmp_path / "p2"), "--sign-key", str(tmp_path / "k")]) == 2
    assert "readable by others" in capsys.readouterr().err and not (tmp_path / "p2").exists()


def test_choices_match_the_kernel():
    assert PRECISION_CHOICES == PRECISIONS
