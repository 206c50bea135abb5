"""Ed25519 signatures of plan directories: who made this plan, checked before it runs.

A manifest's sha256 proves the weights match the manifest, not who wrote either: someone who
rewrites both files passes it. A signature over the manifest's exact bytes (which hold the
weights' sha256, so it covers the weights too) proves the plan comes from the holder of a key
the graph trusts. It lives beside the manifest in `signature.json`:

    {"algorithm": "ed25519", "public_key": "<64 hex>", "signature": "<128 hex>"}

Keys: `redline keygen KEYFILE` writes the private key (PEM, mode 0600, keep it out of the
repo) and KEYFILE.pub, one line of hex: the public key a graph lists in `trusted_keys`.
`redline plan DIR --sign-key KEYFILE` and `redline sign DIR --key KEYFILE` sign.

Checking (`check_signature`) runs only when the loader is given a `Trust` with keys or
`require_signed`: a signature from an untrusted key, one that does not match the manifest, or
(with `require_signed`) none at all refuses the plan. `cryptography` is imported only then.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

SIGNATURE = "signature.json"
ALGORITHM = "ed25519"
PUBLIC_KEY_PATTERN = "^[0-9a-f]{64}$"  # the raw 32-byte ed25519 public key, lowercase hex


class PlanSignatureError(ValueError):
    """A plan's signature is missing, from an untrusted key or does not match."""


@dataclass(frozen=True)
class Trust:
    """Which plans may run: signed by one of `trusted_keys` (hex), and whether unsigned ones
    are refused. The default trusts everything and checks nothing."""

    require_signed: bool = False
    trusted_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for key in self.trusted_keys:
            if not re.match(PUBLIC_KEY_PATTERN, key):
                raise ValueError(
                    f"trusted key {key!r} is not 64 lowercase hex digits; copy the line of "
                    "the .pub file that `redline keygen` wrote"
                )
        if self.require_signed and not self.trusted_keys:
            raise ValueError(
                "require_signed is set but trusted_keys is empty; list the public key(s) "
                "(the .pub file of `redline keygen`) whose signatures you accept"
            )

    @property
    def active(self) -> bool:
        return self.require_signed or bool(self.trusted_keys)


def generate_key(path: str | Path) -> str:
    """Write a new private key to `path` (PEM, 0600) and its public key to `path`.pub; returns
    the public key (hex). Refuses to overwrite either file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    pub_path = path.with_name(path.name + ".pub")
    for p in (path, pub_path):
        if p.exists():
            raise ValueError(f"{p} already exists; pick another KEYFILE or remove it first")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = _public_hex(key.public_key())
    # O_EXCL + 0600 at creation: the key is never readable by others, not even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub_path.write_text(public + "\n")
    return public


def load_private_key(key_path: str | Path):
    """The ed25519 private key in `key_path`, refused when others can read the file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key_path = Path(key_path)
    try:
        mode = key_path.stat().st_mode & 0o777
        pem = key_path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"signing key {key_path} not found; make one with `redline keygen {key_path}`"
        ) from None
    except IsADirectoryError:
        raise ValueError(f"signing key {key_path} is a directory; give the key file") from None
    if mode & 0o077:
        raise ValueError(
            f"signing key {key_path} is readable by others (mode {mode:04o}); "
            f"run `chmod 600 {key_path}`"
        )
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"{key_path}: not an unencrypted PEM private key ({exc}); make one with "
            "`redline keygen KEYFILE`"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{key_path}: a {type(key).__name__}, not an ed25519 key")
    return key


def sign_plan(directory: str | Path, key_path: str | Path) -> str:
    """Sign the manifest of the plan in `directory` with the private key in `key_path`;
    writes `signature.json` and returns the public key (hex)."""
    from redline.kernels.plans.plan_file import MANIFEST

    key = load_private_key(key_path)
    directory = Path(directory)
    try:
        manifest = (directory / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{directory}: no {MANIFEST}; not a plan directory") from None
    public = _public_hex(key.public_key())
    record = {"algorithm": ALGORITHM, "public_key": public, "signature": key.sign(manifest).hex()}
    (directory / SIGNATURE).write_text(json.dumps(record, indent=2) + "\n")
    return public


def check_signature(directory: Path, manifest: bytes, trust: Trust) -> None:
    """Refuse the plan unless `trust` accepts its signature of `manifest` (the manifest's
    bytes as read); nothing is checked when `trust` is not active."""
    if not trust.active:
        return
    path = directory / SIGNATURE
    fix = f"sign it with `redline sign {directory} --key KEYFILE` using a trusted key"
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        if trust.require_signed:
            raise PlanSignatureError(
                f"{directory}: plan is not signed (no {SIGNATURE}) and require_signed is set; {fix}"
            ) from None
        return
    except json.JSONDecodeError as exc:
        raise PlanSignatureError(f"{path}: not valid JSON ({exc}); {fix}") from None
    if not isinstance(record, dict) or record.get("algorithm") != ALGORITHM:
        raise PlanSignatureError(f"{path}: 'algorithm' is not {ALGORITHM!r}; {fix}")
    public, signature = record.get("public_key"), record.get("signature")
    if public not in trust.trusted_keys:
        raise PlanSignatureError(
            f"{path}: signed by key {str(public)[:16]}..., which is not in trusted_keys "
            f"({', '.join(k[:16] + '...' for k in trust.trusted_keys)}); {fix}"
        )
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public)).verify(
            bytes.fromhex(str(signature)), manifest
        )
    except (InvalidSignature, ValueError):
        raise PlanSignatureError(
            f"{path}: the signature does not match {directory / 'manifest.json'} (changed "
            f"after signing, or not signed by key {public[:16]}...); {fix}"
        ) from None


def _public_hex(public_key) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()
