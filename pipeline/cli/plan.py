"""`redline plan DIR`: compile the bundled demo model, gate it, save it for the workers.

The model is the trained one the demo graph runs (`replay_data/model`, written by
strategies/train_demo_model.py; `kernels/plans/demo_model.bundled_model`). Prints the precision
gate for every reduced precision (max abs error and decision agreement vs the fp32 model on
features of the bundled recordings), then compiles the requested precision with the gate and
writes the plan directory, its manifest naming the inputs (FEATURE_NAMES). A precision over its
bound is refused: nothing is written and the command fails.

DIR must be new or empty: an existing plan (and the package's own replay_data/model) is replaced
only with `--force`. `--sign-key KEYFILE` signs the plan (`redline keygen` makes a key).
"""

from __future__ import annotations

from pathlib import Path

from redline.pipeline.cli.json_out import add_json_arg, write_json

# fused_mlp.PRECISIONS, spelled out so that building the CLI parser does not
# import torch and triton (seconds) for every command; a test keeps them equal.
PRECISION_CHOICES = ("fp32", "fp16", "bf16", "int8")


def register(sub) -> None:
    p = sub.add_parser("plan", help="compile, gate and save the demo model's kernel plan")
    p.add_argument("dir", help="plan directory to write (weights.safetensors + manifest.json)")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32")
    p.add_argument("--rows", type=int, default=2048, help="calibration rows for the gate")
    p.add_argument("--version", default=None, help="version string (default: from checksum)")
    p.add_argument(
        "--max-abs-error",
        type=float,
        default=None,
        help="gate bound for --precision (default: the precision's preset)",
    )
    p.add_argument(
        "--sign-key", metavar="KEYFILE", default=None, help="sign the plan with this private key"
    )
    p.add_argument("--force", action="store_true", help="replace the plan already in DIR")
    add_json_arg(p)
    p.set_defaults(run=run)


def check_target(directory: Path, force: bool) -> None:
    """Refuse a DIR that is a file, or (without --force) a non-empty folder or the bundled
    model's own folder."""
    from redline.kernels.plans.demo_model import bundled_model_dir

    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory} is a file; give a directory to write the plan into")
    if force:
        return
    if directory.resolve() == bundled_model_dir().resolve():
        raise ValueError(
            f"{directory} is the bundled demo model (replay_data/model); write elsewhere, or "
            "pass --force to replace it"
        )
    if directory.is_dir() and any(directory.iterdir()):
        held = ", ".join(sorted(p.name for p in directory.iterdir())[:4])
        raise ValueError(
            f"{directory} is not empty (holds {held}); choose a new DIR, or pass --force to "
            "replace its plan"
        )


def run(args) -> int:
    from redline.kernels.feature_names import FEATURE_NAMES
    from redline.kernels.plans.calibration import recorded_features
    from redline.kernels.plans.demo_model import bundled_model
    from redline.kernels.plans.from_torch import compile as compile_plan
    from redline.kernels.plans.precision_gate import (
        DEFAULT_BOUNDS,
        PrecisionBound,
        PrecisionRefusedError,
        precision_report,
    )
    from redline.kernels.plans.signing import SIGNATURE, load_private_key, sign_plan

    if args.rows < 1:
        raise ValueError(f"--rows must be >= 1, got {args.rows}")
    out = Path(args.dir)
    check_target(out, args.force)
    if args.sign_key:
        load_private_key(args.sign_key)  # a bad key fails before anything is written
    model = bundled_model()
    calib = recorded_features(args.rows, seed=1)
    reports = precision_report(model, calib)
    print(f"precision gate, bundled demo model, {args.rows} calibration rows:")
    for r in reports:
        print(
            f"  {r.precision:5s} max abs err {r.max_abs_error:.3g} (bound "
            f"{r.bound.max_abs_error:.3g}), agreement {r.agreement:.4f} (bound "
            f"{r.bound.min_agreement:.2f}): {'pass' if r.passed else 'REFUSED'}"
        )
    figures = {"gate": [r.as_dict() for r in reports], "precision": args.precision}
    bound = DEFAULT_BOUNDS[args.precision]
    if args.max_abs_error is not None:
        bound = PrecisionBound(args.max_abs_error, bound.min_agreement, bound.decision_threshold)
    try:
        plan = compile_plan(
            model,
            precision=args.precision,
            backend="cpu",
            version=args.version,
            calibration=calib,
            bound=bound,
            input_features=FEATURE_NAMES,
        )
    except PrecisionRefusedError as exc:
        write_json(args.json, figures | {"saved": False, "error": str(exc)})
        raise
    plan.save(out)
    stale = out / SIGNATURE
    signed_by = sign_plan(out, args.sign_key) if args.sign_key else None
    if signed_by is None and stale.exists():  # it signed the plan this one replaced
        stale.unlink()
        print(f"removed {stale}: it signed the replaced plan (sign this one with --sign-key)")
    print(f"saved {plan!r} to {out} (sha256 {plan.checksum[:16]}...)")
    if signed_by:
        print(f"signed with key {signed_by}")
    write_json(
        args.json,
        figures | {"saved": True, "version": plan.version, "dir": str(out), "signed_by": signed_by},
    )
    return 0
