"""CURVE key files: `redline keys` writes a pair (secret 0600), never over an existing one
without --force; a secret file others can read, or a file that is not a key, is refused."""

import stat

import pytest
import zmq

from redline.pipeline.cli.main import main
from redline.pipeline.transport.curve import (
    is_z85_key,
    key_id,
    read_public,
    read_secret,
    write_keypair,
)


def test_redline_keys_writes_a_pair_with_a_private_secret(tmp_path, capsys):
    assert main(["keys", str(tmp_path / "k"), "--name", "ops"]) == 0
    public_path, secret_path = tmp_path / "k" / "ops.public", tmp_path / "k" / "ops.secret"
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
    public, secret = read_secret(secret_path)
    assert read_public(public_path) == public == zmq.curve_public(secret)
    assert is_z85_key(public.decode()) and is_z85_key(secret.decode())
    out = capsys.readouterr().out
    assert f'allowed_client_keys = ["{public.decode()}"]' in out
    assert secret.decode() not in out  # the secret is never printed


def test_redline_keys_never_overwrites_without_force(tmp_path, capsys):
    assert main(["keys", str(tmp_path)]) == 0
    first = (tmp_path / "redline.secret").read_text()
    capsys.readouterr()
    assert main(["keys", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "redline.public, " in err and "exists; keep it, or pass --force" in err
    assert err.count("\n") == 1
    assert (tmp_path / "redline.secret").read_text() == first  # untouched
    assert main(["keys", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "redline.secret").read_text() != first
    assert stat.S_IMODE((tmp_path / "redline.secret").stat().st_mode) == 0o600


def test_a_secret_file_others_can_read_is_refused(tmp_path):
    _, secret_path = write_keypair(tmp_path, "g")
    secret_path.chmod(0o644)
    with pytest.raises(ValueError, match=r"mode -rw-r--r-- lets other users read it; chmod 600"):
        read_secret(secret_path)


def test_files_that_are_not_keys_say_what_was_expected(tmp_path):
    bad = tmp_path / "bad.public"
    bad.write_text("hello\n")
    with pytest.raises(ValueError, match="expected one line of 40 Z85 characters"):
        read_public(bad)
    with pytest.raises(FileNotFoundError, match="make a pair with `redline keys DIR`"):
        read_secret(tmp_path / "missing.secret")
    with pytest.raises(ValueError, match=r"--name '\.\./x': give a plain file stem"):
        write_keypair(tmp_path, "../x")


def test_a_public_key_may_be_given_as_its_text_and_is_named_by_its_start():
    public, _ = zmq.curve_keypair()
    assert read_public(public.decode()) == public
    assert key_id(public) == public.decode()[:8]
