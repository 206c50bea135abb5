"""Tick-to-decision latency of the graph against a bare pyzmq floor, same run.

    python bench/bench_latency.py [--rates 1000,10000,50000] [--seconds 3] [--runs 3]
        [--json PATH]

The bench process is the publisher: an XPUB socket sending wire frames of
QUOTE records (instruments 1-4 round robin) at a fixed event rate, each
frame's `ts_event` set to the send time just before the send. Decisions are
asked for instrument 1's quotes (a quarter of the events).

- graph, one process: `redline run GRAPH` (feed, arbiter + its 2 CPU worker
  processes, strategy, journal); latency = ts_decision - ts_event of each
  journaled decision (publisher send to decision emitted, one host clock).
- graph, multi-process: the same TOML as two processes, `--node feed --node
  arbiter` and `--node strategy --node journal` (ipc edges).
- floor: the same publisher into bare pyzmq relays in the same process layout
  doing no work (one process: SUB -> stamp; two: SUB -> PUSH -> PULL ->
  stamp), latency = receive stamp - ts_event.

At rates the graph cannot take decision by decision, the ticks edge keeps
the latest quote per instrument (conflation, counted); `max_backlog` shows
the queues stayed bounded. Prints p50/p99/p99.9 in µs and graph/floor ratios.

Queue growth over time (`--seconds` sets each point's length): a queue
anywhere in front of a decision shows as lag, so per second of the run the
bench reports the ingress lag (publisher send -> feed receive: what waits in
the sockets in front of the feed; x rate = events waiting there) and the
tick-to-decision lag, first second vs last second and the worst second's max.
An unbounded queue grows second by second; a bounded one does not.

Each of --runs runs measures every point, floor and graph back to back; each figure is
printed as the median (min-max) over the runs, each graph/floor ratio taken within its run.
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

import numpy as np
import zmq
from timing import Runs, add_runs_arg, fmt, percentiles, table

from redline.feeds.events import QUOTE_DTYPE, RecordType
from redline.feeds.wire.frames import encode, encode_end
from redline.pipeline.observe.journal import read_journal

GRAPH = """
[graph]
name = "bench"
budget_us = 20000

[edges.ticks]
address = "ipc://{d}/ticks"
policy = "conflate"
hwm = 64

[edges.answers]
address = "ipc://{d}/answers"
hwm = 10000

[edges.decisions]
address = "ipc://{d}/decisions"
hwm = 10000

[nodes.feed]
kind = "feed"
wait = "{wait}"
source = "ipc://{d}/pub"
out = "ticks"

[nodes.arbiter]
kind = "arbiter"
wait = "{wait}"
in = "ticks"
out = "answers"
instruments = [1]

[nodes.strategy]
kind = "strategy"
wait = "{wait}"
in = "answers"
out = "decisions"

[nodes.journal]
kind = "journal"
wait = "{wait}"
in = "decisions"
path = "{d}/journal.arrow"
"""

# Floor relays: the same sockets and process layout, no work.
RELAY = r"""
import sys, time, numpy as np, zmq
role, src, dst, out = sys.argv[1:5]
ctx = zmq.Context()
if role == "first":
    s = ctx.socket(zmq.SUB); s.setsockopt(zmq.SUBSCRIBE, b""); s.connect(src)
else:
    s = ctx.socket(zmq.PULL); s.bind(src)
fwd = None
if dst != "-":
    fwd = ctx.socket(zmq.PUSH); fwd.connect(dst)
lat = []
while True:
    msg = s.recv()
    now = time.time_ns()
    if msg == b"END":
        if fwd is not None:
            fwd.send(b"END")
        break
    if fwd is not None:
        fwd.send(msg)
    else:
        lat.append(now - int.from_bytes(msg[:8], "little"))
if out != "-":
    np.save(out, np.array(lat, np.int64))
"""


def frames_for(rate: int, seconds: float) -> tuple[int, int]:
    """(events per frame, frames): one frame per 100 µs at most, so 50k/s is 5-event frames."""
    per = max(1, rate // 10_000)
    return per, int(rate * seconds / per)


def publish(endpoint: str, rate: int, seconds: float, wire: bool) -> int:
    """Bind XPUB, wait for one subscriber, send at `rate` events/s. Returns events sent."""
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.SNDHWM, 0)
    pub.bind(endpoint)
    if not pub.poll(120_000):
        raise TimeoutError(f"no subscriber on {endpoint} after 120 s")
    pub.recv()
    time.sleep(0.2)  # let the subscription settle
    per, n_frames = frames_for(rate, seconds)
    q = np.zeros(per, QUOTE_DTYPE)
    q["bid_px"], q["ask_px"], q["bid_sz"], q["ask_sz"] = 10_000, 10_002, 5, 5
    period = per / rate * 1e9
    t0 = time.monotonic_ns()
    seq = 0
    for k in range(n_frames):
        due = t0 + int(k * period)
        while time.monotonic_ns() < due:  # spin the last stretch; sleep the rest
            left = due - time.monotonic_ns()
            if left > 300_000:
                time.sleep((left - 200_000) / 1e9)
        q["seq"] = np.arange(seq, seq + per)
        q["instrument_id"] = 1 + (q["seq"] % 4)
        seq += per
        now = time.time_ns()
        q["ts_event"] = now
        if wire:
            pub.send(encode(q, RecordType.QUOTE), copy=False)
        else:
            pub.send(now.to_bytes(8, "little") + bytes(40 * per))
    pub.send(encode_end() if wire else b"END")
    time.sleep(0.5)
    pub.close(linger=2000)
    ctx.term()
    return seq


def run_floor(multi: bool, rate: int, seconds: float, d: Path) -> dict:
    out = d / "floor.npy"
    procs = []
    if multi:
        procs.append(_py(RELAY, "last", f"ipc://{d}/hop", "-", str(out)))
        procs.append(_py(RELAY, "first", f"ipc://{d}/fpub", f"ipc://{d}/hop", "-"))
    else:
        procs.append(_py(RELAY, "first", f"ipc://{d}/fpub", "-", str(out)))
    publish(f"ipc://{d}/fpub", rate, seconds, wire=False)
    for p in procs:
        p.wait(60)
    lat = np.load(out)
    return percentiles(
        lat[len(lat) // 8 :], scale=1e3
    )  # the first eighth is warm-up, as for the graph


def run_graph(multi: bool, rate: int, seconds: float, d: Path, wait: str = "await") -> dict:
    graph = d / "graph.toml"
    graph.write_text(GRAPH.format(d=d, wait=wait))
    cmd = [sys.executable, "-m", "redline.pipeline.cli.main", "run", str(graph)]
    splits = [["strategy", "journal"], ["feed", "arbiter"]] if multi else [[]]
    procs = []
    for i, nodes in enumerate(splits):
        args = [*cmd, "--json", str(d / f"run{i}.json")]
        for n in nodes:
            args += ["--node", n]
        procs.append(subprocess.Popen(args, stderr=subprocess.DEVNULL))
    sent = publish(f"ipc://{d}/pub", rate, seconds, wire=True)
    for p in procs:
        p.wait(120)
    dec = read_journal(d / "journal.arrow")
    lat = (dec["ts_decision"] - dec["ts_event"])[len(dec) // 8 :]  # drop warm-up
    figs = [json.loads((d / f"run{i}.json").read_text()) for i in range(len(splits))]
    edges = {k: v for f in figs for k, v in f["edge_stats"].items() if "sent" in v}
    res = percentiles(lat, scale=1e3)
    res["growth"] = queue_growth(dec, rate)
    res.update(
        events=sent,
        decisions=len(dec),
        conflated=sum(f["drops"] for f in figs),
        max_backlog=max(e["max_backlog"] for e in edges.values()),
        origins={k: v for f in figs for k, v in f.get("decisions_by_origin", {}).items()},
    )
    return res


def queue_growth(dec: np.ndarray, rate: int) -> dict:
    """Per second of the run: p50 and max of the ingress lag (ts_recv - ts_event) and the
    tick-to-decision lag, in µs; the ingress lag x rate estimates the events queued in front
    of the feed. Returns the first and last whole second and the worst second's max."""
    t = dec["ts_event"]
    sec = (t - t.min()) // 1_000_000_000
    ingress = (dec["ts_recv"] - t) / 1e3
    t2d = (dec["ts_decision"] - t) / 1e3
    rows = []
    for s in range(int(sec.max()) + 1 if len(sec) else 0):
        m = sec == s
        if m.sum() < 10:
            continue
        rows.append(
            {
                "second": s,
                "ingress_p50_us": float(np.median(ingress[m])),
                "ingress_max_us": float(ingress[m].max()),
                "t2d_p50_us": float(np.median(t2d[m])),
                "t2d_max_us": float(t2d[m].max()),
                "queued_events_p50": float(np.median(ingress[m]) * rate / 1e6),
            }
        )
    if not rows:
        return {}
    return {
        "seconds": rows,
        "first": rows[0],
        "last": rows[-1],
        "max_ingress_us": max(r["ingress_max_us"] for r in rows),
        "max_t2d_us": max(r["t2d_max_us"] for r in rows),
    }


def _py(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="1000,10000,50000")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each point's run")
    ap.add_argument(
        "--growth-rates",
        default="50000",
        help="rates whose per-second queue growth is printed (comma list; 'all')",
    )
    ap.add_argument("--modes", default="one,multi")
    ap.add_argument(
        "--wait", default="await", help="how every node waits: await, block or busy (comma list)"
    )
    add_runs_arg(ap)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    growth_rates = args.growth_rates.split(",")
    session = Runs(args.runs)
    print(f"tick-to-decision vs bare pyzmq floor, {args.seconds:g} s per point, pid {os.getpid()}")
    points = [(m, w, r) for m in args.modes.split(",") for w in args.wait.split(",") for r in rates]
    for _ in session:
        run: dict = {}
        for mode, wait, rate in points:
            with tempfile.TemporaryDirectory(prefix="redline-bench-") as tmp:
                d = Path(tmp)
                floor = run_floor(mode == "multi", rate, args.seconds, d)
                g = run_graph(mode == "multi", rate, args.seconds, d, wait)
            print(
                f"{mode:5s} {wait:5s} {rate:7d}  | floor {floor['p50']:7.0f} {floor['p99']:7.0f} "
                f"{floor['p999']:7.0f} | graph {g['p50']:8.0f} {g['p99']:8.0f} {g['p999']:8.0f} | "
                f"{g['p50'] / floor['p50']:5.1f} {g['p99'] / floor['p99']:5.1f} | "
                f"{g['decisions']:6d} {g['conflated']:7d} {g['max_backlog']:5d}  {g['origins']}",
                flush=True,
            )
            if g["growth"] and (args.growth_rates == "all" or str(rate) in growth_rates):
                _print_growth(g["growth"])
            g["growth"].pop("seconds", None)  # the first, last and worst second are kept
            run[f"{mode}/{wait}/{rate}"] = {
                "floor_us": floor,
                "graph_us": g,
                "ratio_p50": g["p50"] / floor["p50"],
                "ratio_p99": g["p99"] / floor["p99"],
            }
        session.add(run)
    a = session.finish(args.json, extra={"seconds_per_point": args.seconds})
    rows = []
    for key, r in a.items():
        mode, wait, rate = key.split("/")
        f, g = r["floor_us"], r["graph_us"]
        rows.append([f"{mode} {wait}", f"{int(rate):,}", fmt(f["p50"]), fmt(f["p99"]),
                     fmt(f["p999"]), fmt(g["p50"]), fmt(g["p99"]), fmt(g["p999"]),
                     fmt(r["ratio_p50"], ".1f"), fmt(r["ratio_p99"], ".1f"), fmt(g["decisions"]),
                     fmt(g["conflated"]), fmt(g["max_backlog"])])  # fmt: skip
    table(
        f"µs, median (min-max) of {args.runs} runs, {args.seconds:g} s per point",
        ["mode", "events/s", "floor p50", "p99", "p99.9", "graph p50", "p99", "p99.9",
         "ratio p50", "ratio p99", "decisions", "conflated", "max backlog"],
        rows,
    )  # fmt: skip
    for key, r in a.items():
        g = r["graph_us"]["growth"]
        if g and "first" in g:
            fi, la = g["first"], g["last"]
            print(f"{key}: ingress lag p50 first -> last second {fmt(fi['ingress_p50_us'])} -> "
                  f"{fmt(la['ingress_p50_us'])} µs, tick-to-decision p50 {fmt(fi['t2d_p50_us'])} -> "
                  f"{fmt(la['t2d_p50_us'])} µs, worst second's max ingress "
                  f"{fmt(g['max_ingress_us'])} µs")  # fmt: skip
    return 0


def _print_growth(g: dict) -> None:
    def row(r: dict) -> str:
        return (
            f"ingress lag p50 {r['ingress_p50_us']:8.0f} max {r['ingress_max_us']:8.0f} µs "
            f"(~{r['queued_events_p50']:.0f} events queued), "
            f"tick-to-decision p50 {r['t2d_p50_us']:8.0f} max {r['t2d_max_us']:8.0f} µs"
        )

    print(f"    queue growth: first second {row(g['first'])}")
    print(f"                  last second  {row(g['last'])}")
    print(
        f"                  worst second max: ingress {g['max_ingress_us']:.0f} µs, "
        f"tick-to-decision {g['max_t2d_us']:.0f} µs over {len(g['seconds'])} s",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
