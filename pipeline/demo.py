"""`redline demo`: the main job on bundled data, no arguments needed.

Interim, until the graph exists: replays every recording bundled in
`redline.replay_data` (merged by `ts_recv`) and prints what it saw: events by record
type and instrument, the time span, the replay rate and the `ts_recv - ts_event`
percentiles. `--json PATH` writes the figures with the contract keys (`events`,
`events_per_s`, `peak_rss_mb`, `latency_ns`) plus those of `redline inspect`.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

from redline.feeds.replay import Replay
from redline.pipeline.inspect import Inspection
from redline.pipeline.report_json import add_json_arg, write_json
from redline.replay_data import DIR


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the main job on the bundled recordings")
    p.add_argument("--data", type=Path, default=DIR, help=f"recordings folder (default {DIR})")
    add_json_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    rep = Replay(args.data)
    if not rep.files:
        print(
            f"redline demo: no recordings in {args.data} (no Parquet event files there; "
            "the bundled ones are written by the replay_data generator)",
            file=sys.stderr,
        )
        return 1
    ins = Inspection()
    in_replay = 0  # ns spent inside the replay iterator, not in the summary
    it = iter(rep)
    while True:
        t0 = time.perf_counter_ns()
        batch = next(it, None)
        in_replay += time.perf_counter_ns() - t0
        if batch is None:
            break
        ins.add(*batch)
    report = ins.report()
    events = report["events"]["total"]
    figures = {
        "events": report["events"],
        "events_per_s": events / (in_replay / 1e9) if in_replay else 0.0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "latency_ns": report["latency_ns"],
        "span": report["span"],
        "gaps": report["gaps"],
        "out_of_order": report["out_of_order"],
        "files": [f.path.name for f in rep.files],
    }
    _print(figures, args.data)
    write_json(args.json, figures)
    return 0


def _print(f: dict, data: Path) -> None:
    ev = f["events"]
    print(f"redline demo: replayed {len(f['files'])} recordings from {data}")
    print(f"  events          {ev['total']:,}")
    for name, n in ev["by_record_type"].items():
        print(f"    {name:14}{n:,}")
    print("  by instrument   " + ", ".join(f"{k}: {v:,}" for k, v in ev["by_instrument"].items()))
    if f["span"]["seconds"] is not None:
        print(f"  span            {f['span']['seconds']:.3f} s of ts_recv")
    print(f"  replay rate     {f['events_per_s'] / 1e6:.1f} M events/s")
    print(f"  gaps            {f['gaps']['total']:,} ({f['gaps']['missing']:,} seq missing)")
    oo = f["out_of_order"]
    print(f"  out of order    {oo['seq']:,} by seq, {oo['ts_event']:,} by ts_event")
    lat = f["latency_ns"]
    if lat["count"]:
        print(
            f"  ts_recv - ts_event  p50 {lat['p50'] / 1e3:,.1f} µs  p99 {lat['p99'] / 1e3:,.1f} µs"
            f"  p99.9 {lat['p999'] / 1e3:,.1f} µs  max {lat['max'] / 1e3:,.1f} µs"
        )
    print(f"  peak RSS        {f['peak_rss_mb']:.0f} MB")
