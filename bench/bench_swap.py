"""Hot swap benchmark: time from command to flip, and decision latency in the swap window.

    .venv/bin/python bench/bench_swap.py [--rate 400] [--seconds 8] [--budget-ms 20]
        [--window-s 1] [--shadow-every 1] [--runs 3] [--json PATH]

Each run: an Arbiter (race) with two CPU worker processes and the in-process fallback serving
demo@1 (kernels/plans/demo_versions.py) on a live clock, fed recorded quotes of instrument 1 at
--rate events/s, each asking for a decision, for --seconds. Halfway, `SwapCoordinator.swap
("demo", "2")` runs on the same asyncio loop as the stream (as in the graph: load beside, warm,
canary, flip between two requests; pipeline/arbiter/swap.py).

Figures per run:
- command -> flip (ms), the canary's own time excluded (the swap's reply), and the canary (ms);
- decision latency, request -> decision (the arbiter's stamps): p50/p99 of the steady state
  (decisions asked from 1 s after the start to the command; the same run's baseline) and of
  the swap window (asked from the command to --window-s after the flip), and the ratio of the
  p99s. Targets: flip <= 100 ms on CPU workers, window p99 within 1.5x of steady state;
- lost decisions (requests without exactly one decision: must be 0), safe defaults in the
  window and in the steady state.
The window includes the watch's cost: during it each worker also times demo@1 beside demo@2 on
one model call in --shadow-every (pipeline/arbiter/watch.py); a huge value leaves it out.
Every figure is the median (min-max) of --runs runs, each run with fresh worker processes.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

import numpy as np
from timing import Runs, add_runs_arg, fmt, percentiles, ratio

from redline.feeds.clock import LiveClock
from redline.feeds.events import Origin
from redline.feeds.replay.reader import replay
from redline.kernels.plans.demo_versions import demo_registry
from redline.kernels.plans.numpy_loader import load_cpu_plan
from redline.pipeline.arbiter.arbiter import Arbiter
from redline.pipeline.arbiter.config import ArbiterConfig
from redline.pipeline.arbiter.fallback import CpuFallback, safe_default
from redline.pipeline.arbiter.swap import SwapCoordinator
from redline.pipeline.arbiter.watch import WatchRules
from redline.pipeline.workers.engines import CpuEngine
from redline.pipeline.workers.link import close_all, spawn_pair
from redline.replay_data import DIR

MS = 1_000_000


def quotes(n: int) -> np.ndarray:
    for _rtype, recs in replay([str(DIR / "market_quotes.parquet")], batch_rows=1 << 17):
        q = recs[recs["instrument_id"] == 1][:n].copy()
        q["ts_recv"] = 0  # old stamps: each deadline starts at its submit
        q["seq"] = np.arange(len(q))
        return q
    raise SystemExit("no quotes in the bundled recording")


async def one_run(
    registry, q: np.ndarray, rate: float, budget_ms: float, window_s: float, shadow_every: int
):
    clock = LiveClock()
    v1 = registry.resolve("demo@1")
    fallback = CpuFallback(CpuEngine(load_cpu_plan(v1, features="auto")), clock)
    links = spawn_pair(v1)
    cfg = ArbiterConfig(policy="race", budget_ns=int(budget_ms * MS))
    arb = Arbiter(links, cfg, clock, safe_default(1), fallback)
    try:
        arb.wait_ready(timeout_s=60)
        # Watch for 2 windows; a rollback would show in the reply's history, not here.
        swapper = SwapCoordinator(arb, registry, base_label="demo@1",
                                  watch=WatchRules(window_s=2 * window_s,
                                                   shadow_every=shadow_every))  # fmt: skip
        recs = []
        reply: dict = {}
        marks: dict[str, int] = {}

        async def swap():
            end = time.monotonic() + 10
            while True:  # a worker out (the host's load) refuses a swap: again once both serve
                marks["command"] = clock.now_ns()
                reply.update(await swapper.swap("demo", "2"))
                if "not in service" not in reply.get("error", "") or time.monotonic() > end:
                    break
                await asyncio.sleep(0.05)
            marks["flip"] = clock.now_ns()
            if not reply.get("flipped"):
                print(f"swap refused: {reply.get('reason') or reply.get('error')}")

        def take():
            batch = arb.poll()
            if len(batch.records):
                recs.append(batch.records.copy())

        t0 = time.monotonic()
        half = len(q) // 2
        for i in range(len(q)):
            while time.monotonic() < t0 + i / rate:
                take()
                await asyncio.sleep(0.0002)
            arb.submit(q[i : i + 1])
            if i == half:
                task = asyncio.get_running_loop().create_task(swap())
            take()
            await asyncio.sleep(0)  # the loop's other tasks (the swap) run between requests
        end = time.monotonic() + 30
        while sum(map(len, recs)) < len(q) and time.monotonic() < end:
            take()
            await asyncio.sleep(0.001)
        await task
        swapper.close()
    finally:
        arb.close()
        close_all(links)
    d = np.concatenate(recs)
    lost = len(q) - len(np.unique(d["input_seq"])) + (len(d) - len(q))
    lat = d["ts_decision"] - d["ts_request"]
    asked = d["ts_request"]
    steady = (asked >= asked.min() + MS * 1000) & (asked < marks["command"])
    window = (asked >= marks["command"]) & (asked < marks["flip"] + int(window_s * 1e9))
    default = d["origin"] == Origin.DEFAULT
    if not reply.get("flipped"):
        window &= False  # no swap window in this run: its figures are left out
    s, w = percentiles(lat[steady], 1e3), percentiles(lat[window], 1e3)
    return {
        "flipped": bool(reply.get("flipped")),
        "command_to_flip_ms": reply.get("command_to_flip_ms"),
        "canary_ms": reply.get("canary_ms"),
        "steady_p50_us": s["p50"], "steady_p99_us": s["p99"], "steady_n": s["n"],
        "window_p50_us": w["p50"], "window_p99_us": w["p99"], "window_n": w["n"],
        "lost": int(lost),
        "defaults_steady": int(default[steady].sum()),
        "defaults_window": int(default[window].sum()),
        "rollbacks": sum(1 for h in swapper.history if h.get("action") == "rollback"),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=400.0, help="events/s, each asking a decision")
    ap.add_argument("--seconds", type=float, default=8.0, help="stream length per run")
    ap.add_argument("--budget-ms", type=float, default=20.0, help="decision budget (the demo's)")
    ap.add_argument("--window-s", type=float, default=1.0, help="swap window after the flip")
    ap.add_argument("--shadow-every", type=int, default=1,
                    help="the watch times the old version on one model call in N")  # fmt: skip
    ap.add_argument("--json", default=None)
    add_runs_arg(ap)
    args = ap.parse_args()
    registry = demo_registry(tempfile.mkdtemp(prefix="redline-bench-swap-"))
    q = quotes(int(args.rate * args.seconds))
    session = Runs(args.runs)
    print(f"load: {len(q):,} recorded quotes at {args.rate:g}/s, budget {args.budget_ms:g} ms, "
          f"race, 2 CPU workers + fallback; swap demo@1 -> demo@2 at the midpoint")  # fmt: skip
    for _ in session:
        fig = asyncio.run(
            one_run(registry, q, args.rate, args.budget_ms, args.window_s, args.shadow_every)
        )
        session.add(fig)
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in fig.items()}, flush=True)
    runs = session.runs
    p99_ratio = ratio([r["window_p99_us"] for r in runs], [r["steady_p99_us"] for r in runs])
    a = session.finish(args.json, extra={"p99_window_over_steady": p99_ratio})
    from timing import agg

    print(f"command -> flip (canary excluded): {fmt(a['command_to_flip_ms'], '.1f')} ms "
          "(target <= 100 ms)")  # fmt: skip
    print(f"canary: {fmt(a['canary_ms'], '.1f')} ms")
    print(f"steady state p50 / p99: {fmt(a['steady_p50_us'], ',.0f')} / "
          f"{fmt(a['steady_p99_us'], ',.0f')} µs (n {fmt(a['steady_n'])})")  # fmt: skip
    print(f"swap window  p50 / p99: {fmt(a['window_p50_us'], ',.0f')} / "
          f"{fmt(a['window_p99_us'], ',.0f')} µs (n {fmt(a['window_n'])})")  # fmt: skip
    print(f"window p99 / steady p99: {fmt(agg(p99_ratio), '.2f')}x (target <= 1.5x)")
    print(f"lost {fmt(a['lost'])}, safe defaults steady {fmt(a['defaults_steady'])}, "
          f"window {fmt(a['defaults_window'])}, rollbacks {fmt(a['rollbacks'])}")  # fmt: skip


if __name__ == "__main__":
    main()
