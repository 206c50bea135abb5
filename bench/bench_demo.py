"""`redline demo` N times, as a user runs it: median (min-max) of what it prints.

    .venv/bin/python bench/bench_demo.py [--runs 3] [--save-stdout PATH] [--json PATH]
        [-- DEMO ARGS...]

Each run is the real CLI in a subprocess (`python -m redline.pipeline.cli.main demo
--no-progress --json TMP --out TMPDIR`, plus any arguments after `--`), so it pays what a
user pays: the publisher process, two worker processes, the kill of worker A halfway (unless
`--no-chaos`), the report. Reported over the runs: events/s, decisions, tick-to-decision
p50/p99/p99.9, each stage's p50, lost decisions, deadline misses, failovers, wall time of
the demo (its own `seconds`) and of the whole command. The demo has no baseline of its own;
the same-run baselines of what it is made of are in bench_latency (graph vs bare pyzmq) and
bench_failover (arbiter vs one worker called directly).

The stdout of the median run (by tick-to-decision p50) is saved (`--save-stdout`, default
bench_demo_stdout.txt in the temp folder, path printed) so it can be pasted as is. The
terminal width of the subprocess is `--columns` (rich wraps to it; 80 when piped).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import Runs, add_runs_arg, fmt, table

STAGES = ("feed", "features", "request", "dispatch", "compute", "reply", "decide")


def one_run(demo_args: list[str], columns: int) -> tuple[dict, str]:
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        js, out = Path(tmp) / "demo.json", Path(tmp) / "out"
        cmd = [sys.executable, "-m", "redline.pipeline.cli.main", "demo", "--no-progress",
               "--json", str(js), "--out", str(out), *demo_args]  # fmt: skip
        env = {**os.environ, "COLUMNS": str(columns)}
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"bench_demo: the demo exited {done.returncode}")
        f = json.loads(js.read_text())
    lat = f["latency_ns"]
    by_origin = f["decisions_by_origin"]
    fig = {
        "events": f["events"],
        "events_per_s": f["events_per_s"],
        "decisions": f["decisions"],
        "decisions_by_origin": by_origin,
        "tick_to_decision_us": {k: lat[k] / 1e3 for k in ("p50", "p99", "p999", "max")},
        "stage_p50_us": {s: f["stages"][s]["p50"] / 1e3 for s in STAGES if s in f["stages"]},
        "lost_decisions": f["lost_decisions"],
        "deadline_misses": f["deadline_misses"],
        "failovers": f["failovers"],
        "restarts": f.get("restarts"),
        "dropped_by_backpressure": sum(f.get("drops_by_edge", {}).values()),
        "ingress_gaps": f.get("ingress_drops"),
        "peak_rss_mb": f.get("peak_rss_mb"),
        "demo_seconds": f["seconds"],
        "command_wall_s": wall,
    }
    return fig, done.stdout


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    add_runs_arg(ap)
    ap.add_argument("--columns", type=int, default=100, help="terminal width of the demo")
    ap.add_argument("--save-stdout", metavar="PATH", help="where the median run's stdout goes")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("demo_args", nargs="*", help="after --: passed to `redline demo`")
    args = ap.parse_args()
    session = Runs(args.runs)
    stdouts = []
    for _ in session:
        fig, out = one_run(args.demo_args, args.columns)
        session.add(fig)
        stdouts.append(out)
        t = fig["tick_to_decision_us"]
        print(
            f"events {fig['events']:,} ({fig['events_per_s']:,.0f}/s), decisions "
            f"{fig['decisions']:,} {fig['decisions_by_origin']}, tick-to-decision p50 "
            f"{t['p50']:,.1f} p99 {t['p99']:,.1f} p99.9 {t['p999']:,.1f} µs, lost "
            f"{fig['lost_decisions']}, misses {fig['deadline_misses']}, failovers "
            f"{fig['failovers']}, {fig['demo_seconds']:.1f} s (command {fig['command_wall_s']:.1f} s)",
            flush=True,
        )
    p50s = [r["tick_to_decision_us"]["p50"] for r in session.runs]
    median_run = sorted(range(len(p50s)), key=p50s.__getitem__)[(len(p50s) - 1) // 2]
    save = Path(args.save_stdout or Path(tempfile.gettempdir()) / "bench_demo_stdout.txt")
    save.write_text(stdouts[median_run])
    a = session.finish(args.json, extra={"median_run": median_run + 1, "stdout_saved": str(save)})
    t = a["tick_to_decision_us"]
    rows = [
        ["events/s", fmt(a["events_per_s"])],
        ["events", fmt(a["events"])],
        ["decisions", fmt(a["decisions"])],
        *[[f"  by {k}", fmt(v)] for k, v in a["decisions_by_origin"].items()],
        ["tick-to-decision p50, µs", fmt(t["p50"], ",.1f")],
        ["tick-to-decision p99, µs", fmt(t["p99"], ",.1f")],
        ["tick-to-decision p99.9, µs", fmt(t["p999"], ",.1f")],
        *[[f"{s} p50, µs", fmt(v, ",.1f")] for s, v in a["stage_p50_us"].items()],
        ["lost decisions", fmt(a["lost_decisions"])],
        ["deadline misses", fmt(a["deadline_misses"])],
        ["failovers", fmt(a["failovers"])],
        ["worker restarts", fmt(a["restarts"])],
        ["dropped by backpressure", fmt(a["dropped_by_backpressure"])],
        ["peak RSS, MB", fmt(a["peak_rss_mb"])],
        ["demo wall time, s", fmt(a["demo_seconds"], ".1f")],
        ["command wall time, s", fmt(a["command_wall_s"], ".1f")],
    ]
    table(f"redline demo, median (min-max) of {args.runs} runs", ["figure", "value"], rows)
    print(f"\nstdout of the median run (run {median_run + 1}, by p50) saved to {save}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
