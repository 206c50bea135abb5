"""`redline sign DIR --key KEYFILE`: a signature the workers accept; bad plans never signed."""

import shutil

from redline.kernels.plans.numpy_loader import load_numpy_plan
from redline.kernels.plans.signing import Trust
from redline.pipeline.cli.main import main
from redline.replay_data import DIR


def test_signs_a_copy_of_the_bundled_model(tmp_path, capsys):
    assert main(["keygen", str(tmp_path / "k")]) == 0
    public = (tmp_path / "k.pub").read_text().strip()
    plan = tmp_path / "model"
    shutil.copytree(DIR / "model", plan)
    assert main(["sign", str(plan), "--key", str(tmp_path / "k")]) == 0
    assert f"with key {public}" in capsys.readouterr().out
    assert load_numpy_plan(plan, features="auto", trust=Trust(True, (public,))) is not None


def test_refuses_a_plan_that_would_not_load_and_a_missing_key(tmp_path, capsys):
    assert main(["keygen", str(tmp_path / "k")]) == 0
    (tmp_path / "bad").mkdir()
    assert main(["sign", str(tmp_path / "bad"), "--key", str(tmp_path / "k")]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    plan = tmp_path / "model"
    shutil.copytree(DIR / "model", plan)
    assert main(["sign", str(plan), "--key", str(tmp_path / "nokey")]) == 2
    assert "make one with `redline keygen" in capsys.readouterr().err
    assert not (plan / "signature.json").exists()
