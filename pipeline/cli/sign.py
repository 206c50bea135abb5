"""`redline sign DIR --key KEYFILE`: sign an existing model plan (`redline keygen` makes keys).

The plan is checked first (as a worker would load it), then `signature.json` is written beside
its manifest: an ed25519 signature of the manifest, which holds the weights' sha256. A graph
whose arbiter lists the key in `trusted_keys` accepts the plan; see kernels/plans/signing.py.
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("sign", help="sign a model plan directory with a private key")
    p.add_argument("dir", help="plan directory (manifest.json + weights.safetensors)")
    p.add_argument("--key", required=True, metavar="KEYFILE", help="private key (redline keygen)")
    p.set_defaults(run=run)


def run(args) -> int:
    from redline.kernels.plans.plan_file import read_plan
    from redline.kernels.plans.signing import sign_plan

    read_plan(args.dir)  # never sign a plan that would not load
    public = sign_plan(args.dir, args.key)
    print(f"signed {args.dir} with key {public}")
    return 0
