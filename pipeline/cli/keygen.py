"""`redline keygen KEYFILE`: make an ed25519 key pair for signing model plans.

Writes the private key to KEYFILE (PEM, mode 0600: keep it out of the repository) and the
public key to KEYFILE.pub (one line of hex), and prints the public key: list it in a graph's
arbiter node as `trusted_keys = ["..."]` (with `require_signed = true` to refuse unsigned
plans). Sign with `redline plan DIR --sign-key KEYFILE` or `redline sign DIR --key KEYFILE`.
Never overwrites an existing key.
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("keygen", help="make a key pair for signing model plans")
    p.add_argument("keyfile", metavar="KEYFILE", help="private key to write (KEYFILE.pub too)")
    p.set_defaults(run=run)


def run(args) -> int:
    from redline.kernels.plans.signing import generate_key

    public = generate_key(args.keyfile)
    print(f"private key: {args.keyfile} (mode 0600; keep it secret and out of the repository)")
    print(f"public key:  {args.keyfile}.pub")
    print(f'trust it in a graph: trusted_keys = ["{public}"]')
    return 0
