"""`redline keygen KEYFILE`: a key pair, the private half 0600, never overwritten."""

import os
import stat

from redline.pipeline.cli.main import main


def test_writes_the_pair_and_prints_the_line_for_the_graph(tmp_path, capsys):
    key = tmp_path / "signing.key"
    assert main(["keygen", str(key)]) == 0
    public = (tmp_path / "signing.key.pub").read_text().strip()
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600 and b"PRIVATE KEY" in key.read_bytes()
    assert f'trusted_keys = ["{public}"]' in capsys.readouterr().out


def test_an_existing_key_is_never_overwritten(tmp_path, capsys):
    key = tmp_path / "k"
    key.write_text("precious")
    assert main(["keygen", str(key)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and err.count("\n") == 1 and key.read_text() == "precious"
