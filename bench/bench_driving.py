"""The driving graph: sensor-frame-to-command latency, alignment throughput, closed-loop rate.

    python bench/bench_driving.py [--seconds 10] [--runs 3] [--json PATH]

Per run, each with its baseline measured in the same run:

- graph: `redline demo --driving`'s closed loop (pipeline/cli/demo_driving.py, no chaos) on
  `--seconds` of the bundled drive at real time (50 frames/s); latency = ts_decision - ts_recv
  of each command (the fused frame's last input seen by the feed -> command emitted: sync,
  frame arbiter, a worker round trip, planner). Floor: bench_latency.py's bare pyzmq relay
  (publisher -> SUB -> stamp, one process, no work) at the drive's sensor rate (~200 events/s),
  the same floor the trading graph is held against; ratio = graph / floor.
- alignment: `LatestSync` (the preset's policy) and `ApproximateSync` over the whole recording's
  radar and wheel-speed records, fed in the replay's 4,096-record batches and one record at a
  time (live); fused frames per second. Baseline: the per-stream split every policy starts with
  (one `np.flatnonzero` per stream), records per second.
- closed loop: the Euro NCAP grid (24 cases, 20 s each, venue/driving_loop.py) with the IDM
  term and with the learned term, in scenarios per second and simulated seconds per wall second
  (real time = 1).

Figures are the median (min-max) of the runs, with the command, date and load (timing.py).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_latency import run_floor
from timing import Runs, add_runs_arg, fmt, table

from redline.feeds.events import RecordType
from redline.feeds.replay.reader import replay
from redline.feeds.sync import ApproximateSync, LatestSync
from redline.feeds.synthetic.driving import RADAR_ID, WHEEL_ID
from redline.pipeline.cli.demo_driving import Faults, recording_path, run_driving
from redline.venue.driving_loop import DURATION_S, euro_ncap_grid, run_grid

SENSOR_RATE = 200  # events/s of the drive's four sensors (20 + 30 + 100 + 50)


def graph_latency(seconds: float, model: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="redline-bench-driving-") as tmp:
        f, _, _ = run_driving(seconds, 1.0, Path(tmp), Faults(), model=model, log=lambda _: None)
        d = tmp
        floor = run_floor(False, SENSOR_RATE, seconds, Path(d))
    lat = {k: (v or 0) / 1e3 for k, v in f["latency_ns"].items()}  # µs
    return {"graph_us": lat, "floor_us": floor, "frames": f["frames"], "lost": f["lost"],
            "deadline_misses": f["deadline_misses"],
            "ratio_p50": lat["p50"] / floor["p50"], "ratio_p99": lat["p99"] / floor["p99"]}  # fmt: skip


def sensor_records() -> np.ndarray:
    recs = np.concatenate([r for t, r in replay([recording_path()]) if t == RecordType.SENSOR])
    return recs[np.isin(recs["sensor_id"], (RADAR_ID, WHEEL_ID))]


def alignment(recs: np.ndarray) -> dict:
    ids = (RADAR_ID, WHEEL_ID)
    out = {}
    for batch in (4096, 1):
        for name, make in (
            ("latest", lambda: LatestSync(ids, WHEEL_ID, (150_000_000, 60_000_000))),
            ("approximate", lambda: ApproximateSync(ids, 25_000_000)),
        ):
            sync = make()
            sync.feed(recs[:64])  # compile and warm (numba) before timing
            sync = make()
            t0 = time.perf_counter()
            frames = sum(len(sync.feed(recs[i : i + batch]).ts_ns)
                         for i in range(0, len(recs), batch))  # fmt: skip
            out[f"{name}/{batch}"] = frames / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(20):
        for sid in ids:
            np.flatnonzero(recs["sensor_id"] == sid)
    out["split_records_per_s"] = 20 * len(recs) / (time.perf_counter() - t0)
    return out


def closed_loop(weights) -> dict:
    cases = euro_ncap_grid()
    out = {}
    for path, model in (("reference", None), ("model", weights)):
        run_grid(cases[:1], model=model)  # compile
        t0 = time.perf_counter()
        outcomes = run_grid(cases, model=model)
        wall = time.perf_counter() - t0
        assert not any(o.collision for o in outcomes)
        out[path] = {"scenarios_per_s": len(cases) / wall,
                     "sim_s_per_s": len(cases) * DURATION_S / wall}  # fmt: skip
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of the drive per run")
    add_runs_arg(ap)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    from redline.kernels.plans import driving_model

    session = Runs(args.runs)
    recs = sensor_records()
    model = driving_model.bundled_dir()
    for _ in session:
        run = {"graph": graph_latency(args.seconds, model), "align": alignment(recs),
               "loop": closed_loop(driving_model.fixed())}  # fmt: skip
        g = run["graph"]
        print(f"graph p50 {g['graph_us']['p50']:,.0f} p99 {g['graph_us']['p99']:,.0f} µs "
              f"(floor p50 {g['floor_us']['p50']:,.0f} p99 {g['floor_us']['p99']:,.0f}), "
              f"{g['frames']} frames, lost {g['lost']}, deadline misses "
              f"{g['deadline_misses']}", flush=True)  # fmt: skip
        session.add(run)
    a = session.finish(args.json, extra={"seconds": args.seconds})
    g, al, lp = a["graph"], a["align"], a["loop"]
    table(
        f"sensor frame -> command, µs, median (min-max) of {args.runs} runs, {args.seconds:g} s "
        "of the drive at real time",
        ["", "p50", "p99", "p99.9", "max"],
        [["graph", *(fmt(g["graph_us"][k]) for k in ("p50", "p99", "p999", "max"))],
         ["floor (bare pyzmq relay)", *(fmt(g["floor_us"][k]) for k in ("p50", "p99", "p999",
                                                                        "max"))],
         ["ratio graph / floor", fmt(g["ratio_p50"], ".1f"), fmt(g["ratio_p99"], ".1f"), "", ""]],
    )  # fmt: skip
    table(
        f"alignment, fused frames/s, median (min-max) of {args.runs} runs "
        f"({len(recs):,} radar + wheel records)",
        ["policy", "batches of 4,096", "one record at a time"],
        [[p, fmt(al[f"{p}/4096"]), fmt(al[f"{p}/1"])] for p in ("latest", "approximate")]
        + [["baseline: split by stream (records/s)", fmt(al["split_records_per_s"]), ""]],
    )  # fmt: skip
    table(
        f"closed loop, Euro NCAP grid (24 cases x 20 s), median (min-max) of {args.runs} runs",
        ["planner term", "scenarios/s", "simulated s per wall s"],
        [[k, fmt(lp[k]["scenarios_per_s"], ",.1f"), fmt(lp[k]["sim_s_per_s"], ",.0f")]
         for k in ("reference", "model")],
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
