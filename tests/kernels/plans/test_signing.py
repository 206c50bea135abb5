"""Plan signatures: sign, verify, and every way a plan fails them."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

from redline import kernels
from redline.kernels.plans.numpy_loader import load_numpy_plan
from redline.kernels.plans.signing import (
    PlanSignatureError,
    Trust,
    generate_key,
    sign_plan,
)


@pytest.fixture
def signed(tmp_path):
    """(plan dir signed by key 'a', trust in 'a', public key of an untrusted key 'b')."""
    torch.manual_seed(0)
    d = tmp_path / "plan"
    kernels.compile(torch.nn.Sequential(torch.nn.Linear(4, 2)), device="cpu").save(d)
    pub_a = generate_key(tmp_path / "a.key")
    pub_b = generate_key(tmp_path / "b.key")
    assert sign_plan(d, tmp_path / "a.key") == pub_a
    return d, Trust(True, (pub_a,)), pub_b


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path):
    public = generate_key(tmp_path / "k")
    assert stat.S_IMODE(os.stat(tmp_path / "k").st_mode) == 0o600
    assert (tmp_path / "k.pub").read_text() == public + "\n" and len(public) == 64
    with pytest.raises(ValueError, match="already exists"):
        generate_key(tmp_path / "k")


def test_a_signed_plan_loads_through_both_loaders(signed):
    d, trust, _ = signed
    assert load_numpy_plan(d, trust=trust).out_features == 2
    assert kernels.load(d, backend="cpu", trust=trust).out_features == 2


def test_a_changed_manifest_fails_the_signature(signed):
    d, trust, _ = signed
    mp = d / "manifest.json"
    mp.write_text(mp.read_text().replace('"version": "', '"version": "evil-'))
    with pytest.raises(PlanSignatureError, match="signature does not match"):
        load_numpy_plan(d, trust=trust)


def test_weights_rewritten_with_their_hash_fail_the_signature(signed):
    d, trust, _ = signed
    torch.manual_seed(9)
    other = kernels.compile(torch.nn.Sequential(torch.nn.Linear(4, 2)), device="cpu")
    (d / "weights.safetensors").write_bytes(other.weights_blob())
    mp = d / "manifest.json"
    manifest = json.loads(mp.read_text())
    manifest["sha256"] = other.checksum  # the attacker rewrites both files
    mp.write_text(json.dumps(manifest, indent=2) + "\n")
    assert load_numpy_plan(d) is not None  # without trust the checksum alone passes it
    with pytest.raises(PlanSignatureError, match="signature does not match"):
        load_numpy_plan(d, trust=trust)


def test_a_forged_signature_and_a_wrong_key_are_refused(signed, tmp_path):
    d, trust, pub_b = signed
    sp = d / "signature.json"
    record = json.loads(sp.read_text())
    record["signature"] = "00" * 64
    sp.write_text(json.dumps(record))
    with pytest.raises(PlanSignatureError, match="signature does not match"):
        load_numpy_plan(d, trust=trust)
    sign_plan(d, tmp_path / "b.key")  # a valid signature, by a key nobody trusts
    with pytest.raises(PlanSignatureError, match=f"signed by key {pub_b[:16]}.*not in trusted"):
        kernels.load(d, backend="cpu", trust=trust)


def test_require_signed_refuses_an_unsigned_plan(signed):
    d, trust, _ = signed
    (d / "signature.json").unlink()
    with pytest.raises(PlanSignatureError, match=r"plan is not signed .* require_signed is set"):
        load_numpy_plan(d, trust=trust)
    assert load_numpy_plan(d, trust=Trust(False, trust.trusted_keys)) is not None


def test_trust_is_checked_when_built_and_keys_readable_by_others_are_refused(tmp_path):
    with pytest.raises(ValueError, match="trusted_keys is empty"):
        Trust(require_signed=True)
    with pytest.raises(ValueError, match="not 64 lowercase hex"):
        Trust(trusted_keys=("abc",))
    generate_key(tmp_path / "k")
    os.chmod(tmp_path / "k", 0o644)
    with pytest.raises(ValueError, match=r"readable by others \(mode 0644\); run `chmod 600"):
        sign_plan(tmp_path, tmp_path / "k")
