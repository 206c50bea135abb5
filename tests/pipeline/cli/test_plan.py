"""`redline plan DIR`: gate, save, refuse."""

import json

import torch

import redline.kernels as rk
from redline.kernels.fused_mlp import PRECISIONS
from redline.kernels.plans.calibration import calibration_features
from redline.kernels.plans.demo_model import demo_model
from redline.pipeline.cli.main import main
from redline.pipeline.cli.plan import PRECISION_CHOICES


def test_saves_a_loadable_gated_plan(tmp_path, capsys):
    out = tmp_path / "plan"
    assert (
        main(
            [
                "plan",
                str(out),
                "--precision",
                "bf16",
                "--rows",
                "256",
                "--json",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    plan = rk.load(out)
    assert plan.precision == "bf16" and plan.in_features == 14 and plan.out_features == 1
    x = torch.from_numpy(calibration_features(16, seed=9))
    with torch.no_grad():
        torch.testing.assert_close(plan(x), demo_model()(x), atol=0.05, rtol=0.05)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["saved"] and [g["precision"] for g in report["gate"]] == ["fp16", "bf16", "int8"]
    assert "bf16" in capsys.readouterr().out


def test_over_the_bound_nothing_is_written(tmp_path, capsys):
    out = tmp_path / "plan"
    rc = main(["plan", str(out), "--precision", "int8", "--rows", "256", "--max-abs-error", "1e-6"])
    assert rc == 2 and not out.exists()
    assert "int8 plan refused" in capsys.readouterr().err


def test_choices_match_the_kernel():
    assert PRECISION_CHOICES == PRECISIONS
