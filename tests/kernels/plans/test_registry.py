import json

import pytest

from redline.kernels.plans.registry import Registry, RegistryError
from redline.replay_data import DIR

MODEL = DIR / "model"


def test_publish_resolve_and_natural_version_order(tmp_path):
    reg = Registry(tmp_path / "models")
    for v in ("2", "10", "1"):
        reg.publish(MODEL, "demo", v, data_span_ns=(5, 9))
    assert reg.versions("demo") == ["1", "2", "10"]
    assert reg.resolve("demo") == tmp_path / "models" / "demo" / "10"  # newest by number
    path = reg.resolve("demo@2", features="auto")
    entry = json.loads((path / "entry.json").read_text())
    assert (entry["name"], entry["version"], entry["data_span_ns"]) == ("demo", "2", [5, 9])
    assert not list((tmp_path / "models" / "demo").glob(".*"))  # no partial copy left


def test_a_version_never_changes_and_a_swapped_manifest_is_refused(tmp_path):
    reg = Registry(tmp_path)
    path = reg.publish(MODEL, "demo", "1")
    with pytest.raises(RegistryError, match=r"already in .*: versions never change"):
        reg.publish(MODEL, "demo", "1")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["version"] = "something else"
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RegistryError, match="not the one published as demo@1"):
        reg.resolve("demo@1")


def test_bad_references_are_named(tmp_path):
    reg = Registry(tmp_path)
    reg.publish(MODEL, "demo", "1")
    with pytest.raises(RegistryError, match=r"demo@7: not in .* \(versions: 1\)"):
        reg.resolve("demo@7")
    with pytest.raises(RegistryError, match="model 'nope': not in"):
        reg.resolve("nope")
    with pytest.raises(RegistryError, match=r"model version '\.\./x'"):
        reg.publish(MODEL, "demo", "../x")
    with pytest.raises(ValueError, match="pickle"):  # the plan check runs on publish
        bad = tmp_path / "w.pt"
        bad.write_bytes(b"\x80\x04junk")
        reg.publish(bad, "demo", "2")
