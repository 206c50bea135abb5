"""`redline worker`: one inference worker process (the arbiter starts two).

    redline worker --backend cpu|cuda --device N --model DIR --endpoint ADDR [--fault SPEC]
                   [--trusted-key HEX ... [--require-signed]]

The arbiter spawns `python -m redline.pipeline.cli.worker ARGS`, which imports only this module
and the worker (pipeline/workers/process.py), not every other command: a restart is on the
failover's clock.
"""

from __future__ import annotations

import argparse
import sys

from redline.kernels.plans.inputs import FEATURE_KINDS
from redline.pipeline.workers.engines import warm_up
from redline.pipeline.workers.faults import FaultPlan, FaultSpec
from redline.pipeline.workers.process import BACKENDS, build_engine, serve


def register(sub) -> None:
    p = sub.add_parser("worker", help="run one inference worker process (used by the arbiter)")
    p.add_argument("--backend", choices=BACKENDS, default="cpu")
    p.add_argument("--device", type=int, default=0, help="CUDA device index (cuda backend)")
    p.add_argument("--model", required=True, metavar="DIR", help="model plan directory")
    p.add_argument("--endpoint", required=True, metavar="ADDR", help="e.g. ipc:///tmp/w0")
    p.add_argument("--fault", default="", metavar="SPEC", help="e.g. crash@100 (faults.py)")
    p.add_argument("--heartbeat-ms", type=float, default=5.0)
    p.add_argument("--max-instruments", type=int, default=1024)
    p.add_argument("--scale", type=float, default=1.0, help="multiplies window feature values")
    p.add_argument(
        "--features",
        choices=FEATURE_KINDS,
        default="auto",
        help="what feeds the model; auto: what the plan's input_features name, else the kernel "
        "features (kernels/plans/inputs.py)",
    )
    p.add_argument(
        "--trusted-key",
        action="append",
        default=[],
        metavar="HEX",
        help="public key whose plan signatures are accepted (repeatable; redline keygen)",
    )
    p.add_argument(
        "--require-signed", action="store_true", help="refuse a plan not signed by a trusted key"
    )
    p.add_argument(
        "--parent-pid", type=int, default=0, help="exit when this process is no longer the parent"
    )
    p.set_defaults(run=run)


def run(args) -> int:
    if args.heartbeat_ms <= 0:
        raise ValueError(f"--heartbeat-ms must be > 0, got {args.heartbeat_ms}")
    from redline.kernels.plans.signing import Trust

    faults = FaultPlan(FaultSpec.parse(args.fault))
    trust = Trust(args.require_signed, tuple(args.trusted_key))
    engine = build_engine(
        args.backend, args.model, args.device, args.max_instruments, args.scale, args.features,
        trust,
    )  # fmt: skip
    warm_up(engine)  # before READY: the first real request must not pay for it
    return serve(engine, args.endpoint, faults, int(args.heartbeat_ms * 1e6), args.parent_pid)


def main(argv: list[str] | None = None) -> int:
    """`python -m redline.pipeline.cli.worker ARGS`: what the arbiter spawns. Same arguments and
    errors as `redline worker`, without importing every other command (a restart is on the
    failover's clock)."""
    parser = argparse.ArgumentParser(prog="redline")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["worker", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError) as exc:
        print(f"redline worker: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
