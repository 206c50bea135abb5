"""`redline scenarios [--recording [PATH]] [--json PATH]`: the acc_aeb planner in closed loop over
the Euro NCAP-style rear-end grid (venue/driving_loop.py), one line per case and the totals;
`--recording` adds a case behind the lead of a driving recording (the bundled one by default).

`--json` keys: `cases` (one row per case: `name`, `collision`, `impact_speed_ms`, `min_ttc_s`,
`min_gap_m`, `peak_decel_ms2`, `peak_jerk_ms3`, `commands_by_origin`), `collisions` (count),
`min_ttc_s` (over the grid), `commands_by_origin` (summed), `frames` (planner frames, the sum of
the commands) and `latency_ns` (null: the grid runs the planner inside the simulation, with no
graph to time; `redline demo --driving` has the same keys with a graph). An infinite TTC is
written null.
"""

from __future__ import annotations

import math

from redline.pipeline.cli.json_out import add_json_arg, write_json


def register(sub) -> None:
    p = sub.add_parser("scenarios", help="the driving planner over the rear-end test grid")
    p.add_argument("--recording", nargs="?", const="bundled", metavar="PATH",
                   help="also run behind the lead of a driving recording (bundled by default)")  # fmt: skip
    add_json_arg(p)
    p.set_defaults(run=run)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def run(args) -> int:
    from redline.venue.driving_loop import run_grid, run_recording

    outcomes = run_grid()
    if args.recording:
        from redline.replay_data import DIR

        path = DIR / "driving_sensors.parquet" if args.recording == "bundled" else args.recording
        outcomes.append(run_recording(path))
    rows = []
    totals: dict[str, int] = {}
    for o in outcomes:
        print(
            f"{o.name:<22} {'COLLISION' if o.collision else 'ok':<9} "
            f"impact {o.impact_speed_ms:5.2f} m/s  min TTC {o.min_ttc_s:5.2f} s  "
            f"min gap {o.min_gap_m:5.2f} m  peak decel {o.peak_decel_ms2:4.2f} m/s2  "
            f"peak jerk {o.peak_jerk_ms3:5.1f} m/s3  "
            + " ".join(f"{k} {v}" for k, v in o.commands.items() if v)
        )
        rows.append(
            {
                "name": o.name,
                "collision": o.collision,
                "impact_speed_ms": o.impact_speed_ms,
                "min_ttc_s": _finite(o.min_ttc_s),
                "min_gap_m": o.min_gap_m,
                "peak_decel_ms2": o.peak_decel_ms2,
                "peak_jerk_ms3": o.peak_jerk_ms3,
                "commands_by_origin": o.commands,
            }
        )
        for k, v in o.commands.items():
            totals[k] = totals.get(k, 0) + v
    collisions = sum(r["collision"] for r in rows)
    ttcs = [r["min_ttc_s"] for r in rows if r["min_ttc_s"] is not None]
    print(
        f"{len(rows)} cases, {collisions} collisions, min TTC {min(ttcs, default=math.inf):.2f} s"
    )
    write_json(
        args.json,
        {
            "cases": rows,
            "collisions": collisions,
            "min_ttc_s": min(ttcs) if ttcs else None,
            "commands_by_origin": totals,
            "frames": sum(totals.values()),
            "latency_ns": None,
        },
    )
    return 0
