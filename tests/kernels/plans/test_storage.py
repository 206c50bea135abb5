"""Plan files: safetensors + manifest round trip; corrupt, pickled, inconsistent refused."""

import json

import pytest
import torch
from torch import nn

import redline.kernels as rk
from redline.kernels import PlanFileError


@pytest.fixture
def module() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 20), nn.GELU(), nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 2)
    )


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16", "int8"])
def test_round_trip_gives_identical_outputs(module, tmp_path, precision):
    plan = rk.compile(module, precision=precision, version="v1")
    plan.save(tmp_path)
    loaded = rk.load(tmp_path)
    x = torch.randn(5, 6)
    torch.testing.assert_close(loaded(x), plan(x), atol=0, rtol=0)
    assert (loaded.version, loaded.checksum, loaded.precision) == ("v1", plan.checksum, precision)
    for name, t in plan.tensors().items():
        assert torch.equal(loaded.tensors()[name], t) and loaded.tensors()[name].dtype == t.dtype


def test_manifest_describes_the_plan(module, tmp_path):
    rk.compile(module, precision="int8").save(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["kind"] == "mlp" and manifest["precision"] == "int8"
    assert (manifest["in_features"], manifest["out_features"]) == (6, 2)
    assert [ly["activation"] for ly in manifest["architecture"]["layers"]] == [
        "gelu",
        "relu",
        "none",
    ]
    assert manifest["tensors"]["layer0.weight"] == {"dtype": "int8", "shape": [20, 6]}
    assert manifest["tensors"]["layer0.scale"] == {"dtype": "float32", "shape": [20]}
    assert len(manifest["sha256"]) == 64


def test_gru_round_trip(tmp_path):
    torch.manual_seed(1)
    plan = rk.compile(nn.GRU(5, 9), precision="bf16")
    plan.save(tmp_path)
    loaded = rk.load(tmp_path)
    x, h = torch.randn(2, 5), torch.randn(2, 9)
    torch.testing.assert_close(loaded(x, h), plan(x, h), atol=0, rtol=0)
    assert loaded.kind == "gru" and loaded.hidden_size == 9


def test_tampered_weights_fail_the_checksum(module, tmp_path):
    rk.compile(module).save(tmp_path)
    blob = bytearray((tmp_path / "weights.safetensors").read_bytes())
    blob[-1] ^= 0x01
    (tmp_path / "weights.safetensors").write_bytes(bytes(blob))
    with pytest.raises(PlanFileError, match="sha256"):
        rk.load(tmp_path)


def test_pickled_weights_are_refused(module, tmp_path):
    rk.compile(module).save(tmp_path)
    torch.save(module.state_dict(), tmp_path / "weights.safetensors")  # a zip of pickles
    with pytest.raises(PlanFileError, match="pickled weights are refused"):
        rk.load(tmp_path)
    torch.save(module, tmp_path / "model.pt")
    with pytest.raises(PlanFileError, match="pickled weights are refused"):
        rk.load(tmp_path / "model.pt")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(format="other"), "'format' is not"),
        (lambda m: m.update(format_version=99), "format_version 99"),
        (lambda m: m.pop("sha256"), "missing field 'sha256'"),
        (lambda m: m.update(weights="../elsewhere.bin"), "'weights' must be"),
        (lambda m: m.update(kind="transformer"), "unknown kind 'transformer'"),
        (lambda m: m["tensors"]["layer0.weight"].update(dtype="float16"), "tensor layer0.weight"),
        (lambda m: m.update(in_features=7), "disagree"),
        (lambda m: m["architecture"]["layers"][0].update(activation="tanh"), "activation 'tanh'"),
    ],
)
def test_inconsistent_manifest_is_refused(module, tmp_path, edit, message):
    rk.compile(module).save(tmp_path)
    path = tmp_path / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=message):
        rk.load(tmp_path)


def test_missing_directory_and_manifest(tmp_path):
    with pytest.raises(PlanFileError, match="no such plan directory"):
        rk.load(tmp_path / "absent")
    with pytest.raises(PlanFileError, match=r"no manifest\.json"):
        rk.load(tmp_path)


def test_input_names_are_saved_and_loaded(module, tmp_path):
    names = tuple(f"x{i}" for i in range(6))
    rk.compile(module, input_features=names).save(tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text())["input_features"] == list(names)
    assert rk.load(tmp_path).input_features == names
    with pytest.raises(ValueError, match="input_features names 2 inputs, the model takes 6"):
        rk.compile(module, input_features=("a", "b"))
