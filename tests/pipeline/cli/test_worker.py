"""`redline worker`: every plan a user can get wrong is one line and exit 2, never a traceback."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
import torch

from redline import kernels
from redline.kernels.plans.signing import generate_key
from redline.pipeline.cli.main import main
from redline.replay_data import DIR


def _worker(tmp_path, model, *extra):
    return main(["worker", "--model", str(model), "--endpoint", f"ipc://{tmp_path}/w", *extra])


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.skipif(torch.cuda.is_available(), reason="the case is a host without a GPU")
def test_cuda_backend_without_a_gpu(tmp_path, capsys):
    """Before: a torch AssertionError traceback ("Torch not compiled with CUDA enabled")."""
    assert _worker(tmp_path, DIR / "model", "--backend", "cuda") == 2
    err = _one_line(capsys)
    assert "--backend cuda: this host has no usable CUDA device" in err and "--backend cpu" in err


def test_a_pickle_named_weights_safetensors_with_its_hash(tmp_path, capsys):
    """Before: a SafetensorError traceback from the CPU worker's loader."""
    model = tmp_path / "plan"
    kernels.compile(torch.nn.Sequential(torch.nn.Linear(14, 1)), device="cpu").save(model)
    weights, mp = model / "weights.safetensors", model / "manifest.json"
    torch.save({"w": torch.zeros(3)}, weights)
    manifest = json.loads(mp.read_text())
    manifest["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    mp.write_text(json.dumps(manifest))
    assert _worker(tmp_path, model) == 2
    assert f"{weights}: pickled weights are refused" in _one_line(capsys)


def test_a_model_path_that_is_a_file(tmp_path, capsys):
    """Before: NotADirectoryError traceback."""
    torch.save(torch.nn.Linear(14, 1), tmp_path / "model.pt")
    assert _worker(tmp_path, tmp_path / "model.pt") == 2
    assert "model.pt: pickled weights are refused" in _one_line(capsys)
    (tmp_path / "model.json").write_text("{}")
    assert _worker(tmp_path, tmp_path / "model.json") == 2
    assert "is a file; a plan is a directory" in _one_line(capsys)


@pytest.mark.parametrize(("k", "n"), [(16, 1), (10, 1)])
def test_a_model_of_another_width_is_refused(tmp_path, capsys, k, n):
    """Before: 16 inputs ran on a 4-event window; 10 said "must be a multiple of 4"."""
    kernels.compile(torch.nn.Sequential(torch.nn.Linear(k, n)), device="cpu").save(tmp_path / "m")
    assert _worker(tmp_path, tmp_path / "m") == 2
    assert f"the plan takes {k} inputs but the workers feed the kernel features, 14" in _one_line(
        capsys
    )


def test_require_signed_refuses_an_unsigned_plan(tmp_path, capsys):
    public = generate_key(tmp_path / "k")
    rc = _worker(tmp_path, DIR / "model", "--trusted-key", public, "--require-signed")
    assert rc == 2
    assert "plan is not signed (no signature.json) and require_signed is set" in _one_line(capsys)


def test_the_spawned_entry_point_prints_one_line_too(tmp_path):
    torch.save({"w": torch.zeros(1)}, tmp_path / "weights.bin")
    proc = subprocess.run(
        [sys.executable, "-m", "redline.pipeline.cli.worker", "--model", str(tmp_path / "weights.bin"),
         "--endpoint", f"ipc://{tmp_path}/w"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith("redline worker: error: ") and proc.stderr.count("\n") == 1
    assert "pickled weights are refused" in proc.stderr
