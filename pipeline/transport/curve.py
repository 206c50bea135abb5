"""CURVE key pairs for the graph's tcp sockets: made, written, read, named.

    public, secret = write_keypair(Path("keys"), "ops")   # keys/ops.public, keys/ops.secret
    public, secret = read_secret("keys/ops.secret")       # the public key is derived from it
    key_id(public)                                        # "mRLRK}56": what journals show

A key is 40 characters of Z85 (ZeroMQ's text form of 32 bytes). The public file holds one line;
the secret file holds the secret key alone (mode 0600), since ZeroMQ derives the public key from
it. A secret file another user could read is refused: the key is as good as published.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import NamedTuple

import zmq

# ZeroMQ's Z85 alphabet; a key is 32 bytes = 40 characters.
Z85_KEY_PATTERN = r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$"
KEY_ID_CHARS = 8  # enough to tell keys apart in a journal, far too few to rebuild one


class Curve(NamedTuple):
    """One process's CURVE identity and whom it lets in."""

    public: bytes  # Z85
    secret: bytes  # Z85
    allowed: frozenset[bytes]  # Z85 public keys of the peers a server accepts


def key_id(public: bytes | str) -> str:
    """The short name of a public key in journals and replies."""
    text = public.decode() if isinstance(public, bytes) else public
    return text[:KEY_ID_CHARS]


def is_z85_key(text: str) -> bool:
    return re.fullmatch(Z85_KEY_PATTERN, text) is not None


def write_keypair(out_dir: Path, name: str, force: bool = False) -> tuple[Path, Path]:
    """A fresh key pair as OUT_DIR/NAME.public and OUT_DIR/NAME.secret (0600); never replaces
    an existing file unless `force`."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"--name {name!r}: give a plain file stem such as 'ops'")
    out_dir.mkdir(parents=True, exist_ok=True)
    public_path, secret_path = out_dir / f"{name}.public", out_dir / f"{name}.secret"
    existing = [str(p) for p in (public_path, secret_path) if p.exists()]
    if existing and not force:
        raise FileExistsError(f"{', '.join(existing)} exists; keep it, or pass --force to replace")
    public, secret = zmq.curve_keypair()
    secret_path.unlink(missing_ok=True)  # O_EXCL below: the mode is set as the file is made
    fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret.decode() + "\n")
    public_path.write_text(public.decode() + "\n")
    return public_path, secret_path


def read_public(path: str | Path) -> bytes:
    """A public key from its file (or the key itself given as text)."""
    text = str(path)
    if not is_z85_key(text):
        text = _read_key_line(Path(path), "public key")
    return text.encode()


def read_secret(path: str | Path) -> tuple[bytes, bytes]:
    """(public, secret) from a secret key file that only its owner can read."""
    p = Path(path)
    mode = _stat(p, "secret key").st_mode
    if mode & 0o077:
        raise ValueError(
            f"secret key file {p}: mode {stat.filemode(mode)} lets other users read it; "
            f"chmod 600 {p}, or make a new pair with `redline keys`"
        )
    secret = _read_key_line(p, "secret key").encode()
    return zmq.curve_public(secret), secret


def _stat(p: Path, what: str) -> os.stat_result:
    try:
        return p.stat()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{what} file {p} not found; make a pair with `redline keys DIR`"
        ) from None


def _read_key_line(p: Path, what: str) -> str:
    _stat(p, what)
    text = p.read_text().strip()
    if not is_z85_key(text):
        raise ValueError(
            f"{what} file {p}: expected one line of 40 Z85 characters (as `redline keys` "
            f"writes), got {len(text)} characters"
        )
    return text
