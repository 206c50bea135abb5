"""Overload soak: a graph flooded past what it can decide, for a minute. Memory must stay
flat, every drop must be counted, and no healthy worker may be restarted.

    python bench/bench_soak.py [--seconds 60] [--rate 44000] [--runs 3] [--json PATH]

The bench process publishes (XPUB, as a market feed does) quotes of 8 instruments and trades, one trade per two quotes, at `--rate` events/s, into `redline run GRAPH` with real
CPU workers, a conflating ticks edge (trades past its bounds dropped and counted) and
decisions asked for every quote of instrument 1. Every second it samples the graph process's
RSS (/proc, the whole process: the workers are children with their own) and at the end
reads the run's --json: events in, records dropped per edge, sequence gaps before the feed,
decisions, worker restarts. The baseline is the first 10 s of the same run: RSS at 10 s vs at
the end (a leak grows with time; a bound does not).

Before the bounded conflation (2026-12-03) this load grew the feed->arbiter queue to 395,137
messages and the graph to 1,358 MB in 63 s.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zmq
from timing import Runs, add_runs_arg, agg, fmt

from redline.feeds.events import QUOTE_DTYPE, TRADE_DTYPE
from redline.feeds.wire.frames import encode, encode_end

GRAPH = """
[graph]
name = "soak"
budget_us = 20000
drain_timeout_ms = 5000

[edges.ticks]
address = "ipc://{d}/ticks"
policy = "conflate"
hwm = 64

[edges.answers]
address = "inproc://soak/answers"
hwm = 10000

[edges.decisions]
address = "inproc://soak/decisions"
hwm = 10000

[nodes.feed]
kind = "feed"
source = "tcp://127.0.0.1:{port}"
out = "ticks"

[nodes.arbiter]
kind = "arbiter"
in = "ticks"
out = "answers"
instruments = [1]

[nodes.strategy]
kind = "strategy"
in = "answers"
out = "decisions"

[nodes.journal]
kind = "journal"
in = "decisions"
"""

N_INST = 8
FRAME = 32  # records per wire frame


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def frames(seq0: int, now_ns: int) -> tuple[list[bytes], int]:
    """One quote frame and one trade frame (2:1), stamped now."""
    q = np.zeros(FRAME, QUOTE_DTYPE)
    q["instrument_id"] = 1 + np.arange(FRAME) % N_INST
    q["source_id"] = 1
    q["seq"] = seq0 + np.arange(FRAME)
    q["bid_px"], q["ask_px"], q["bid_sz"], q["ask_sz"] = 1000, 1001, 5, 5
    t = np.zeros(FRAME // 2, TRADE_DTYPE)
    t["instrument_id"] = 1 + np.arange(FRAME // 2) % N_INST
    t["source_id"] = 2
    t["seq"] = seq0 // 2 + np.arange(FRAME // 2)
    t["px"], t["sz"], t["aggressor"] = 1000, 1, 1
    for r in (q, t):
        r["ts_event"] = r["ts_recv"] = now_ns
    return [encode(q), encode(t)], FRAME + FRAME // 2


def soak(seconds: float, rate: float, out_dir: Path) -> dict:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    graph = out_dir / "soak.toml"
    graph.write_text(GRAPH.format(d=out_dir, port=port))
    figures = out_dir / "soak.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "redline.pipeline.cli.main", "run", str(graph), "--json",
         str(figures)],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    pub.poll(120_000)  # the feed's subscription: the graph is up
    pub.recv()
    time.sleep(1.0)  # workers warm
    t0 = time.monotonic()
    sent = seq = 0
    rss: list[tuple[float, float]] = []
    next_sample = t0
    while (elapsed := time.monotonic() - t0) < seconds:
        ahead = t0 + sent / rate - time.monotonic()
        if ahead > 0:
            time.sleep(min(ahead, 0.001))
            continue
        parts, n = frames(seq, time.time_ns())
        for part in parts:
            pub.send(part)
        seq += FRAME
        sent += n
        if time.monotonic() >= next_sample:
            rss.append((round(elapsed, 1), rss_mb(proc.pid)))
            next_sample += 1.0
    achieved = sent / (time.monotonic() - t0)
    pub.send(encode_end())
    try:  # the end of the stream drains the graph; SIGTERM only if it does not end by itself
        code = proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(120)
    pub.close(0)
    ctx.term()
    f = json.loads(figures.read_text())
    nodes = f["node_stats"]
    arb = nodes["arbiter"]["arbiter"]
    at10 = next((mb for t, mb in rss if t >= 10), rss[0][1])
    return {
        "exit_code": code,
        "seconds": seconds,
        "rate_asked": rate,
        "events_per_s_sent": round(achieved),
        "events_sent": sent,
        "events_in": f["events"],
        "ingress_drops": nodes["feed"]["ingress_drops"],
        "dropped_by_edge": f["drops_by_edge"],
        "overflow_drops": f["edge_stats"]["ticks"].get("overflow_drops"),
        "max_backlog_ticks": f["edge_stats"]["ticks"].get("max_backlog"),
        "decisions": f.get("decisions"),
        "lost_decisions": f.get("lost_decisions"),
        "lost_at_drain": f["lost"],
        "worker_restarts": arb["restarts"],
        "trips": {w: {k: v for k, v in x["trips"].items() if v} for w, x in arb["workers"].items()},
        "failovers": arb["failovers"],
        "rss_mb_at_10s": at10,
        "rss_mb_end": rss[-1][1],
        "rss_mb_max": max(mb for _, mb in rss),
        "rss_mb_over_time": rss,
    }


def _growth(runs: list[dict]) -> dict:
    return agg([r["rss_mb_end"] - r["rss_mb_at_10s"] for r in runs])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=44_000.0, help="events/s offered")
    add_runs_arg(ap)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    print(f"soak: {args.seconds:g} s at {args.rate:,.0f} events/s per run")
    session = Runs(args.runs)  # the command, the date and the load, at start and end
    for i in session:
        with tempfile.TemporaryDirectory() as d:
            r = soak(args.seconds, args.rate, Path(d))
        session.add(r)
        print(
            f"run {i + 1}: sent {r['events_sent']:,} ({r['events_per_s_sent']:,}/s), in "
            f"{r['events_in']:,}, dropped {sum(r['dropped_by_edge'].values()):,} "
            f"(overflow {r['overflow_drops']:,}), ingress gaps {r['ingress_drops']:,}, "
            f"decisions {r['decisions']:,}, lost {r['lost_decisions']}, restarts "
            f"{r['worker_restarts']} {r['trips']}, RSS {r['rss_mb_at_10s']:.0f} MB at 10 s -> "
            f"{r['rss_mb_end']:.0f} MB at the end (max {r['rss_mb_max']:.0f}), "
            f"max ticks backlog {r['max_backlog_ticks']}, exit {r['exit_code']}"
        )
    agg = session.finish(args.json)
    print(
        f"median (min-max): dropped {fmt(agg['overflow_drops'])} by overflow, decisions "
        f"{fmt(agg['decisions'])}, restarts {fmt(agg['worker_restarts'])}, RSS growth from 10 s "
        f"to the end {fmt(_growth(session.runs), '.0f')} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
