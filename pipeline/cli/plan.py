"""`redline plan DIR`: compile the demo model, gate it, save it for the workers.

Prints the precision gate for every reduced precision (max abs error and
decision agreement vs fp32 on features of the bundled recordings), then compiles the
requested precision with the gate and writes the plan directory. A precision
over its bound is refused: nothing is written and the command fails.
"""

from __future__ import annotations

from redline.pipeline.cli.json_out import add_json_arg, write_json

# fused_mlp.PRECISIONS, spelled out so that building the CLI parser does not
# import torch and triton (seconds) for every command; a test keeps them equal.
PRECISION_CHOICES = ("fp32", "fp16", "bf16", "int8")


def register(sub) -> None:
    p = sub.add_parser("plan", help="compile, gate and save the demo model's kernel plan")
    p.add_argument("dir", help="plan directory to write (weights.safetensors + manifest.json)")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32")
    p.add_argument("--seed", type=int, default=0, help="demo model seed")
    p.add_argument("--rows", type=int, default=2048, help="calibration rows for the gate")
    p.add_argument("--version", default=None, help="version string (default: from checksum)")
    p.add_argument(
        "--max-abs-error",
        type=float,
        default=None,
        help="gate bound for --precision (default: the precision's preset)",
    )
    add_json_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from redline.kernels.plans.calibration import recorded_features
    from redline.kernels.plans.demo_model import demo_model
    from redline.kernels.plans.from_torch import compile as compile_plan
    from redline.kernels.plans.precision_gate import (
        DEFAULT_BOUNDS,
        PrecisionBound,
        PrecisionRefusedError,
        precision_report,
    )

    if args.rows < 1:
        raise ValueError(f"--rows must be >= 1, got {args.rows}")
    model = demo_model(args.seed)
    calib = recorded_features(args.rows, seed=args.seed + 1)  # not the scaling sample
    reports = precision_report(model, calib)
    print(f"precision gate, demo model seed {args.seed}, {args.rows} calibration rows:")
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
        )
    except PrecisionRefusedError as exc:
        write_json(args.json, figures | {"saved": False, "error": str(exc)})
        raise
    plan.save(args.dir)
    print(f"saved {plan!r} to {args.dir} (sha256 {plan.checksum[:16]}...)")
    write_json(args.json, figures | {"saved": True, "version": plan.version, "dir": args.dir})
    return 0
