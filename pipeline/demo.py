"""`redline demo`: the main job on bundled data, no arguments needed.

Placeholder until replay lands: prints what the bundled data folder holds.
"""

from __future__ import annotations

from redline.pipeline.report_json import add_json_arg, write_json
from redline.replay_data import DIR


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the main job on the bundled recordings")
    add_json_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    files = sorted(DIR.glob("*.parquet"))
    print(f"redline demo: {len(files)} bundled recordings in {DIR}")
    write_json(args.json, {"files": [f.name for f in files]})
    return 0
