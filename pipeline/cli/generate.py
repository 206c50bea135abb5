"""`redline generate`: (re)write the bundled recordings from the seeded generator.

`redline generate --out replay_data` with the defaults reproduces the
committed files; other seeds and lengths make fresh data for tests and
benchmarks.
"""

from __future__ import annotations

import argparse

from redline.feeds.synthetic.generator import DEFAULT_MINUTES, DEFAULT_SEED, generate
from redline.pipeline.cli.folders import output_folder
from redline.pipeline.cli.json_out import add_json_arg, write_json


def register(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="write the synthetic market and driving recordings (seeded, deterministic)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default="replay_data", metavar="DIR", help="folder to write into")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    p.add_argument(
        "--minutes", type=float, default=DEFAULT_MINUTES, help="recording length (>= 1/6)"
    )
    add_json_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    out = output_folder(args.out)
    counts = generate(out, seed=args.seed, minutes=args.minutes)
    files = {}
    for name, n in counts.items():
        size = (out / name).stat().st_size
        files[name] = {"records": n, "bytes": size}
        print(f"{name:32s} {n:>9,d} records {size / 1e6:8.2f} MB")
    events = sum(n for name, n in counts.items() if name != "market_instruments.parquet")
    print(f"{'total':32s} {events:>9,d} events  -> {out}")
    write_json(
        args.json, {"events": events, "seed": args.seed, "minutes": args.minutes, "files": files}
    )
    return 0
