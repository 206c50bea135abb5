"""`redline keys OUT_DIR [--name NAME] [--force]`: make a CURVE key pair for the control and
data planes.

Writes OUT_DIR/NAME.public (one line of Z85: share it) and OUT_DIR/NAME.secret (mode 0600: keep
it out of the repository). A graph names its own secret file in `[security]` (tcp edges and
worker links) and `[control] curve_secret_key_file` (a tcp control endpoint), and lets a client
in by listing its public key in `[control] allowed_client_keys`. Never replaces an existing
file without --force.
"""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("keys", help="make a CURVE key pair (control endpoint, tcp edges)")
    p.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="folder for the two key files")
    p.add_argument("--name", default="redline", help="file stem (default: redline)")
    p.add_argument("--force", action="store_true", help="replace existing key files")
    p.set_defaults(run=run)


def run(args) -> int:
    from redline.pipeline.transport.curve import write_keypair

    try:
        public_path, secret_path = write_keypair(args.out_dir, args.name, args.force)
    except FileExistsError as exc:
        raise ValueError(str(exc)) from None
    public = public_path.read_text().strip()
    print(f"public key: {public_path} ({public})")
    print(f"secret key: {secret_path} (mode 0600; keep it secret and out of the repository)")
    print(f'let this client in: allowed_client_keys = ["{public}"]')
    return 0
