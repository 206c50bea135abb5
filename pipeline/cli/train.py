"""`redline train DATA... --out DIR [--features kernels|book] [--horizon S] [--epochs N] [--seed N]
[--json PATH]`: fit the model_signal MLP on recordings (kernels/training.py) and say whether it
has an edge.

Inputs are the feature kernel's (FEATURE_NAMES) after each quote, with `--features book` also
the book features of each instrument's L2 book (BOOK_INPUT_NAMES; the data must hold book
deltas); the manifest's input_features name them, and workers on "auto" feed the model the
state it names. The label is the mid move over the horizon in spreads. The split is by time:
the model is scored on the last 30% of the data, which it never saw, against the naive
last-move and zero predictors. DIR receives a plan directory (weights.safetensors +
manifest.json, the report under "training") that `redline run`, `redline backtest --strategy
model_signal --param model=DIR` and a model registry take as it is. Deterministic: the same
data and seed give the same weights.
"""

from __future__ import annotations

import argparse
import time

from redline.pipeline.cli.json_out import add_json_arg, write_json

DEFAULT_HORIZON_S = 5.0
DEFAULT_EPOCHS = 200
DEFAULT_SEED = 7


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="fit the model_signal MLP on recordings; report its out-of-sample edge",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("data", nargs="+", metavar="DATA", help="Parquet recordings or folders")
    p.add_argument("--out", required=True, metavar="DIR", help="plan directory to write")
    p.add_argument("--horizon", type=float, default=DEFAULT_HORIZON_S, metavar="S",
                   help="label: the mid move over this many seconds of data time")  # fmt: skip
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS,
                   help="at most this many full-batch epochs (early stop on validation)")  # fmt: skip
    p.add_argument("--features", choices=("kernels", "book"), default="kernels",
                   help="model inputs: the feature kernel's, or those and the L2 book's "
                   "(needs BOOK_DELTA records in DATA)")  # fmt: skip
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    add_json_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    if not args.horizon > 0:
        raise ValueError(f"--horizon {args.horizon}: give seconds > 0, e.g. --horizon 1")
    if args.epochs < 1:
        raise ValueError(f"--epochs {args.epochs}: give at least 1")
    from redline.kernels import training

    t0 = time.perf_counter()
    model, report = training.train(
        args.data, round(args.horizon * 1e9), args.epochs, args.seed, args.features
    )
    version = training.save(model, report, args.out)
    seconds = time.perf_counter() - t0
    m, last = report["model"], report["baseline_last_move"]
    print(
        f"redline train: {version} -> {args.out}: {report['train_rows']:,} train rows, "
        f"{report['test_rows']:,} out-of-sample rows ({args.horizon:g} s horizon, epoch "
        f"{report['epoch_kept']} kept); out of sample: model corr {m['corr']:.3f}, hit rate "
        f"{m['hit_rate']:.1%}; last-move baseline corr {last['corr']:.3f}, hit rate "
        f"{last['hit_rate']:.1%}; zero baseline corr 0, no sign; {seconds:.1f} s"
    )
    write_json(args.json, report | {"version": version, "out": str(args.out), "seconds": seconds})
    return 0
