"""Failover benchmark: decision latency through the arbiter, and what killing a worker costs.

    .venv/bin/python bench/bench_failover.py [--backend cpu|cuda] [--n 2000] [--rate 10000]
        [--seconds 3] [--budget-us 5000] [--max-batch 16] [--policies race,hedge,compare]
        [--open-loop-only] [--pin] [--runs 3] [--json PATH]

Part 1, latency (closed loop, one event in flight): one worker called directly over its socket
(the baseline, same run) against two workers behind the arbiter, per policy. Latency is request
sent -> decision in hand, on the monotonic clock; p50/p99/p99.9 and ratios to the baseline. Here
the budget is 10x --budget-us and the breaker lenient, so host noise does not turn the
measurement into one of the fallback; the origins of the decisions are printed.

Part 2, open loop at --rate events/s, as a feed delivers them: batches of 1..--max-batch records
of one type, each due when its last event would have arrived, every event asking for a
decision; the arbiter gets each batch with `submit_batch` (one EVENTS message per worker).
Latency is feed delivery (the batch's due time) -> decision, so an arbiter that falls behind
shows; the baseline is one worker sent the same batches directly at the same rate. Per policy:
a kill-free run (latency, rate reached, origins, where the time went per stage) and a run where
worker A is killed with SIGKILL a third of the way in: detection time (kill -> A taken out),
safe defaults among the same first events in both runs (the difference is what the kill caused;
the target under race is 0), and restart-to-readmission time (restart -> A back in service).
The kill run goes on past --seconds (up to 30 s) until A is readmitted, since readmission checks
ride on live requests. `--pin` puts the arbiter on CPU 0 and the workers on the others.

Both parts, baselines included, are measured in each of --runs runs (fresh worker processes
each time); every figure is printed as the median (min-max) over the runs, each ratio taken
against the baseline of its own run.

`--backend cuda` runs both workers on GPU 0 (two on one GPU); without a GPU it says so and exits.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import zmq
from timing import Runs, add_runs_arg, fmt, percentiles, table

from redline import kernels
from redline.feeds.clock import LiveClock
from redline.feeds.events import DECISION_DTYPE, QUOTE_DTYPE, TRADE_DTYPE, Origin, RecordType
from redline.feeds.wire.frames import SLOT
from redline.kernels.features import N_FEATURES
from redline.pipeline.arbiter.arbiter import Arbiter
from redline.pipeline.arbiter.config import ArbiterConfig, BreakerConfig, Policy
from redline.pipeline.arbiter.fallback import CpuFallback, safe_default
from redline.pipeline.workers.engines import CpuEngine
from redline.pipeline.workers.link import ProcessLink, close_all, ipc_endpoints, spawn_pair
from redline.pipeline.workers.protocol import ASK_FLAG, Kind, header, pack_events, unpack_answers

N_OUT = 4
MS = 1_000_000


def events(n: int) -> list[tuple[int, np.ndarray]]:
    """A valid synthetic stream: quotes and every third event a trade, 8 instruments."""
    out = []
    rng = np.random.default_rng(7)
    for i in range(n):
        if i % 3 == 2:
            r = np.zeros(1, TRADE_DTYPE)
            r["px"], r["sz"], r["aggressor"] = 10_000 + rng.integers(-20, 21), 1 + i % 9, 1
            rtype = RecordType.TRADE
        else:
            r = np.zeros(1, QUOTE_DTYPE)
            bid = 10_000 + rng.integers(-20, 21)
            r["bid_px"], r["ask_px"], r["bid_sz"], r["ask_sz"] = bid, bid + 1, 1 + i % 5, 3
            rtype = RecordType.QUOTE
        r["instrument_id"], r["seq"] = i % 8, i
        r["ts_event"] = r["ts_recv"] = 10**18 + i * 100_000
        out.append((rtype, r))
    return out


def ready_worker(model_dir: Path, backend: str) -> tuple[ProcessLink, zmq.Poller]:
    """One worker for the direct baselines, started and READY, with a poller on its socket."""
    link = pinned(ProcessLink("D", ipc_endpoints(1)[0], model_dir, backend))
    link.start()
    poller = zmq.Poller()
    poller.register(link.channel.sock, zmq.POLLIN)
    while not any(m.kind == Kind.READY for m in link.recv()):
        poller.poll(100)
    return link, poller


def direct(model_dir: Path, backend: str, n: int, warm: int) -> np.ndarray:
    """Baseline: one worker, EVENT+ASK, block for the ANSWER; round trips in ns."""
    link, poller = ready_worker(model_dir, backend)
    stream = events(n + warm)
    rtts = np.zeros(n, np.int64)
    for i, (rtype, r) in enumerate(stream, start=1):
        t0 = time.monotonic_ns()
        link.send([header(Kind.EVENT, i, rtype=rtype, flags=ASK_FLAG), r])
        got = False
        while not got:
            poller.poll(1000)
            got = any(m.kind == Kind.ANSWER and m.id == i for m in link.recv())
        if i > warm:
            rtts[i - warm - 1] = time.monotonic_ns() - t0
    close_all([link])
    return rtts


WORKER_CPUS: str | None = None  # --pin: the workers' CPU list (taskset), the arbiter on CPU 0


def pinned(link: ProcessLink) -> ProcessLink:
    """With --pin, the worker (and every restart of it) runs under taskset on WORKER_CPUS."""
    if WORKER_CPUS:
        link.cmd = ["taskset", "-c", WORKER_CPUS, *link.cmd]  # taskset execs: same pid
    return link


def make_arbiter(model_dir: Path, backend: str, policy: str, budget_ns: int, lenient=False):
    clock = LiveClock()
    plan = kernels.load(model_dir, device="cpu")
    fallback = CpuFallback(CpuEngine(plan), clock)
    links = tuple(pinned(link) for link in spawn_pair(model_dir, backend=backend))
    if lenient:  # part 1 measures the worker path, not failovers caused by a noisy host
        breaker = BreakerConfig(heartbeat_timeout_ns=5000 * MS, slow_max_misses=32)
    else:
        # SLOW over 128 requests: in feed batches of up to 16 a single late batch is 16
        # misses at once, and a host hiccup must not read as a slow worker
        breaker = BreakerConfig(
            heartbeat_timeout_ns=200 * MS,
            slow_window=128,
            slow_max_misses=64,
            verify_count=16,
            backoff_ns=0,
        )
    cfg = ArbiterConfig(policy=policy, budget_ns=budget_ns, breaker=breaker)
    arb = Arbiter(links, cfg, clock, safe_default(N_OUT), fallback)
    arb.wait_ready(timeout_s=120)
    return arb, links


def through_arbiter(model_dir, backend, policy, n, warm, budget_ns) -> np.ndarray:
    arb, links = make_arbiter(model_dir, backend, policy, 10 * budget_ns, lenient=True)
    lat, origins = [], []
    for i, (_, r) in enumerate(events(n + warm)):
        r["ts_recv"] = time.time_ns()  # seen now: the deadline starts here
        arb.submit(r)
        while True:
            recs = arb.poll().records
            if len(recs):
                break
            arb.wait(budget_ns)
        if i >= warm:
            lat.append(int(recs["ts_decision"][0] - recs["ts_request"][0]))
            origins.append(int(recs["origin"][0]))
    arb.close()
    close_all(links)
    by_origin = {o.name.lower(): origins.count(o) for o in Origin}
    return np.array(lat, np.int64), by_origin


def feed(n: int, max_batch: int, seed: int = 11) -> list[tuple[int, np.ndarray]]:
    """About n events as a feed delivers them: batches of one record type, 1 to `max_batch`
    records each (uniform), every third batch trades, 8 instruments; seq counts from 0."""
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < n:
        k = int(rng.integers(1, max_batch + 1))
        px = 10_000 + rng.integers(-20, 21, k)
        if len(out) % 3 == 2:
            r = np.zeros(k, TRADE_DTYPE)
            r["px"], r["sz"], r["aggressor"] = px, 1 + np.arange(k) % 9, 1
            rtype = RecordType.TRADE
        else:
            r = np.zeros(k, QUOTE_DTYPE)
            r["bid_px"], r["ask_px"], r["bid_sz"], r["ask_sz"] = px, px + 1, 1 + np.arange(k) % 5, 3
            rtype = RecordType.QUOTE
        seq = np.arange(i, i + k)
        r["instrument_id"], r["seq"] = seq % 8, seq
        r["ts_event"] = r["ts_recv"] = 10**18 + seq * 100_000
        out.append((rtype, r))
        i += k
    return out


def _paced(batches, rate: float, until, on_batch, poll) -> tuple[float, int]:
    """Deliver `batches` open loop at `rate` events/s (a batch is due when its last event
    would have arrived), cycling past the end until `until()` is false. on_batch(k, rtype,
    records, due_ns) submits; poll() is called while waiting. Returns (events/s reached, n)."""
    t0 = time.monotonic_ns()
    sent = k = 0
    n0 = sum(len(r) for _, r in batches)
    while sent < n0 or until():
        rtype, recs = batches[k % len(batches)]
        due = t0 + int((sent + len(recs)) * 1e9 / rate)
        while (left := due - time.monotonic_ns()) > 0:
            poll(left)
        if k >= len(batches):  # past the stream's end: fresh seqs
            recs = recs.copy()
            recs["seq"] = np.arange(sent, sent + len(recs))
        on_batch(k, rtype, recs, due)
        sent += len(recs)
        k += 1
    return sent / ((time.monotonic_ns() - t0) / 1e9), sent


def direct_open(model_dir: Path, backend: str, rate: float, batches) -> np.ndarray:
    """Baseline at rate: one worker sent the same batches (EVENTS, all asked) directly;
    latency = batch due -> its answer in hand, ns."""
    link, poller = ready_worker(model_dir, backend)
    due_of = {}
    lat = []
    no = 0

    def recv() -> None:
        t = time.monotonic_ns()
        for m in link.recv():
            if m.kind == Kind.ANSWER:
                lat.append(t - due_of.pop(m.id))
            elif m.kind == Kind.ANSWERS:
                for i in unpack_answers(m, N_OUT)["id"].tolist():
                    lat.append(t - due_of.pop(i))

    def on_batch(k, rtype, recs, due) -> None:
        nonlocal no
        n = len(recs)
        nos = np.arange(no + 1, no + n + 1, dtype=np.uint64)
        for i in nos.tolist():
            due_of[i] = due
        if n == 1:
            link.send([header(Kind.EVENT, no + 1, rtype=rtype, flags=ASK_FLAG), recs])
        else:
            slots = np.zeros((n, SLOT), np.uint8)
            slots[:, : recs.dtype.itemsize] = recs.view(np.uint8).reshape(n, -1)
            flags = np.full(n, ASK_FLAG, np.uint8)
            link.send(pack_events(np.full(n, rtype, np.uint8), nos, slots, flags))
        no += n
        recv()

    def poll(left_ns: int) -> None:
        if left_ns > 1_000_000:
            poller.poll(left_ns // 1_000_000)
        recv()

    _paced(batches, rate, lambda: False, on_batch, poll)
    end = time.monotonic() + 1.0
    while due_of and time.monotonic() < end:
        poll(2_000_000)
    close_all([link])
    return np.array(lat, np.int64)


class Decisions:
    """Every decision polled, copied as raw bytes into one growing buffer: a structured
    `.copy()` per poll costs ~7 µs here, in the arbiter's own process."""

    def __init__(self) -> None:
        self.buf = np.zeros(1 << 16, DECISION_DTYPE)
        self.n = 0

    def add(self, recs: np.ndarray) -> None:
        k = len(recs)
        if not k:
            return
        if self.n + k > len(self.buf):
            self.buf = np.concatenate([self.buf, np.zeros(len(self.buf), DECISION_DTYPE)])
        dst = self.buf.view(np.uint8).reshape(len(self.buf), -1)
        dst[self.n : self.n + k] = np.ascontiguousarray(recs).view(np.uint8).reshape(k, -1)
        self.n += k

    def all(self) -> np.ndarray:
        return self.buf[: self.n]


def stages(recs: np.ndarray) -> dict:
    """Where the time went, for decisions a worker made: (p50, p99) µs per span."""
    w = recs[(recs["origin"] == Origin.WORKER_A) | (recs["origin"] == Origin.WORKER_B)]
    spans = {
        "feed->submitted": w["ts_request"] - w["ts_feed"],
        "submitted->worker start": w["ts_worker_start"] - w["ts_request"],
        "worker compute": w["ts_worker_end"] - w["ts_worker_start"],
        "worker end->answer in": w["ts_answer"] - w["ts_worker_end"],
        "answer in->decision": w["ts_decision"] - w["ts_answer"],
    }
    out = {}
    for name, x in spans.items():
        p = percentiles(x.astype(np.int64), scale=1e3)
        out[name] = (round(p["p50"], 1), round(p["p99"], 1))
    return out


def _cpu_s(links) -> list[float]:
    """CPU seconds (user + system) so far: this process, then each worker's (0 if gone)."""
    t = os.times()
    out = [t.user + t.system]
    for link in links:
        try:
            with open(f"/proc/{link.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out.append((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
        except (OSError, TypeError):
            out.append(0.0)
    return out


def failover(model_dir, backend, policy, rate, batches, budget_ns, kill: bool) -> dict:
    """Open loop at `rate` in the feed's batches (submit_batch: one EVENTS per worker each);
    with `kill`, SIGKILL worker A a third of the way in and go on until it is readmitted."""
    arb, links = make_arbiter(model_dir, backend, policy, budget_ns)
    n0 = sum(len(r) for _, r in batches)
    kill_k = len(batches) // 3
    kill_seq = sum(len(r) for _, r in batches[:kill_k])
    t_kill = None
    recs = Decisions()
    off = arb.clock.now_ns() - arb.clock.monotonic_ns()  # monotonic -> wall, as the arbiter

    def on_batch(k, rtype, r, due) -> None:
        nonlocal t_kill
        if kill and k == kill_k:
            t_kill = time.monotonic_ns()
            os.kill(links[0].pid, signal.SIGKILL)
        r["ts_recv"] = due + off  # when it was due to arrive: queueing counts against the budget
        arb.submit_batch(r, rtype=rtype, ts_feed=due + off)
        recs.add(arb.poll().records)

    def poll(left_ns: int) -> None:
        recs.add(arb.poll().records)
        arb.wait(left_ns)

    cpu0, pids0 = _cpu_s(links), [link.pid for link in links]
    t_end = time.monotonic() + 30
    # After the stream, keep it going (up to 30 s) until A is back: readmission checks ride on
    # live requests.
    achieved, n = _paced(
        batches,
        rate,
        lambda: kill and arb.breakers[0].readmissions < 2 and time.monotonic() < t_end,
        on_batch,
        poll,
    )
    # CPU per event against the 2-core budget (200 µs at 10k/s), read before the 50 ms drain;
    # a killed worker's counters restart with its new process, so only without `kill`
    cpu = [b - a for a, b in zip(cpu0, _cpu_s(links), strict=True)]
    # a worker restarted mid-run (tripped) is a new process: its figure would be meaningless
    cpu[1:] = [
        c if link.pid == p else None for c, link, p in zip(cpu[1:], links, pids0, strict=True)
    ]
    end = time.monotonic() + 0.05
    while time.monotonic() < end:
        recs.add(arb.poll().records)
    recs = recs.all()
    st = arb.stats()
    arb.close()
    close_all(links)
    first = recs["input_seq"] < n0
    out = {
        "events": n,
        "decisions": len(recs),
        "lost_decisions": n - len(np.unique(recs["input_seq"])),
        "deadline_misses": int((recs["ts_decision"] > recs["deadline"]).sum()),
        "unanswered": st["unanswered"],
        "late_decisions": st["late_decisions"],
        "decisions_by_origin": st["decisions_by_origin"],
        "events_per_s": achieved,
        # feed delivery -> decision, over the stream's first n0 events
        "latency_us": percentiles((recs["ts_decision"] - recs["ts_feed"])[first], scale=1e3),
        "stages_p50_p99_us": stages(recs[first]),
        # safe defaults among the first n0 events: comparable between kill and no-kill runs
        "misses_first_n": int((recs["origin"][first] == Origin.DEFAULT).sum()),
        "failovers": st["failovers"],
    }
    if not kill:  # arbiter process (the feed's pacing included), then each worker process
        out["cpu_us_per_event"] = [None if c is None else round(c * 1e6 / n, 1) for c in cpu]
    if kill:
        log = [(t, w, what) for t, w, what, _ in arb.events_log() if w == "A"]
        t_out = next((t for t, _, what in log if what == "out" and t >= t_kill), None)
        t_restart = next((t for t, _, what in log if what == "restart" and t >= t_kill), None)
        t_back = next((t for t, _, what in log if what == "readmitted" and t >= t_kill), None)
        out["detection_us"] = None if t_out is None else (t_out - t_kill) / 1e3
        out["restart_to_readmission_ms"] = (
            None if t_back is None or t_restart is None else (t_back - t_restart) / 1e6
        )
        out["origin_default_after_kill"] = int(
            (recs["origin"][recs["input_seq"] >= kill_seq] == Origin.DEFAULT).sum()
        )
    return out


def one_run(model_dir: Path, args, policies, budget: int) -> dict:
    """Every figure of one run, each beside its baseline from this run."""
    figures: dict = {"latency_us": {}, "failover": {}}
    if not args.open_loop_only:
        base = percentiles(direct(model_dir, args.backend, args.n, args.warm), scale=1e3)
        figures["latency_us"]["direct"] = base
        for policy in policies:
            lat, by_origin = through_arbiter(
                model_dir, args.backend, policy, args.n, args.warm, budget
            )
            p = percentiles(lat, scale=1e3)
            p["x_direct_p50"] = p["p50"] / base["p50"]
            figures["latency_us"][str(policy)] = {**p, "decisions_by_origin": by_origin}
    batches = feed(int(args.rate * args.seconds), args.max_batch)
    d = percentiles(direct_open(model_dir, args.backend, args.rate, batches), scale=1e3)
    figures["open_loop_direct_us"] = d
    for policy in policies:
        calm = failover(model_dir, args.backend, policy, args.rate, batches, budget, False)
        hit = failover(model_dir, args.backend, policy, args.rate, batches, budget, True)
        calm["x_direct_p50"] = calm["latency_us"]["p50"] / d["p50"]
        caused = hit["misses_first_n"] - calm["misses_first_n"]
        figures["failover"][str(policy)] = {"kill": hit, "no_kill": calm, "misses_caused": caused}
        p = calm["latency_us"]
        print(
            f"  {policy}: direct p50 {d['p50']:.0f} µs; arbiter p50 {p['p50']:.0f} p99 "
            f"{p['p99']:.0f} p99.9 {p['p999']:.0f} µs ({calm['x_direct_p50']:.2f}x), reached "
            f"{calm['events_per_s']:.0f}/s, defaults {calm['misses_first_n']}; kill: lost "
            f"{hit['lost_decisions']}, detection {hit['detection_us']} µs, defaults "
            f"{hit['misses_first_n']} (caused {caused}), restart->readmission "
            f"{hit['restart_to_readmission_ms']} ms, cpu µs/event {calm['cpu_us_per_event']}",
            flush=True,
        )
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--n", type=int, default=2000, help="latency samples per configuration")
    ap.add_argument("--warm", type=int, default=200)
    ap.add_argument("--rate", type=float, default=10_000.0)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--budget-us", type=int, default=5000)
    ap.add_argument("--max-batch", type=int, default=16, help="feed batch sizes are 1..this")
    ap.add_argument("--policies", default="race,hedge,compare", help="comma-separated")
    ap.add_argument("--open-loop-only", action="store_true", help="skip part 1 (closed loop)")
    ap.add_argument(
        "--pin",
        action="store_true",
        help="arbiter on CPU 0, workers on the other CPUs (no preemption of the arbiter)",
    )
    add_runs_arg(ap)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    policies = [Policy(p) for p in args.policies.split(",")]
    if args.pin:
        global WORKER_CPUS
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise SystemExit("bench_failover: --pin needs at least 2 CPUs")
        os.sched_setaffinity(0, {cpus[0]})
        WORKER_CPUS = ",".join(map(str, cpus[1:]))
    if args.backend == "cuda" and not torch.cuda.is_available():
        print("bench_failover: no CUDA device here; GPU figures pending")
        return 0
    budget = args.budget_us * 1000
    tmp = Path(tempfile.mkdtemp(prefix="redline-bench-"))
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(N_FEATURES, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
        torch.nn.ReLU(), torch.nn.Linear(64, N_OUT),
    )  # fmt: skip
    kernels.compile(model, precision="fp32", device="cpu").save(tmp / "model")
    model_dir = tmp / "model"
    session = Runs(args.runs)
    print(
        f"bench_failover: backend={args.backend} n={args.n} budget={args.budget_us} µs "
        f"pin={'arbiter 0, workers ' + WORKER_CPUS if WORKER_CPUS else 'no'}; open loop at "
        f"{args.rate:.0f} events/s in feed batches of 1..{args.max_batch}, {args.seconds} s "
        f"per run; latency = feed delivery -> decision (µs)",
        flush=True,
    )
    for _ in session:
        session.add(one_run(model_dir, args, policies, budget))
    a = session.finish(args.json)
    report(a, policies, args.runs)
    return 0


def report(a: dict, policies, n: int) -> None:
    lat = a["latency_us"]
    if lat:
        rows = [["one worker, direct", fmt(lat["direct"]["p50"], ",.1f"),
                 fmt(lat["direct"]["p99"], ",.1f"), fmt(lat["direct"]["p999"], ",.1f"), "1.00"]]  # fmt: skip
        for policy in policies:
            p = lat[str(policy)]
            rows.append([f"arbiter, 2 workers, {policy}", fmt(p["p50"], ",.1f"), fmt(p["p99"], ",.1f"),
                         fmt(p["p999"], ",.1f"), fmt(p["x_direct_p50"], ".2f")])  # fmt: skip
        table(f"closed loop, µs, median (min-max) of {n} runs",
              ["configuration", "p50", "p99", "p99.9", "p50 / direct"], rows)  # fmt: skip
    d = a["open_loop_direct_us"]
    rows = [["one worker, direct (baseline)", "–", f"{fmt(d['p50'])} / {fmt(d['p99'])} / "
             f"{fmt(d['p999'])}", "1.00", "–", "–"]]  # fmt: skip
    for policy in policies:
        f = a["failover"][str(policy)]
        calm, hit = f["no_kill"], f["kill"]
        p = calm["latency_us"]
        rows.append([
            f"arbiter, {policy}", fmt(calm["events_per_s"]),
            f"{fmt(p['p50'])} / {fmt(p['p99'])} / {fmt(p['p999'])}", fmt(calm["x_direct_p50"], ".2f"),
            fmt(calm["misses_first_n"]),
            f"lost {fmt(hit['lost_decisions'])}; detection {fmt(hit['detection_us'], '.1f', 1e3)} ms; "
            f"defaults {fmt(hit['misses_first_n'])}, caused {fmt(f['misses_caused'])}; "
            f"restart -> readmission {fmt(hit['restart_to_readmission_ms'], '.2f', 1e3)} s",
        ])  # fmt: skip
    table(
        f"open loop, µs, median (min-max) of {n} runs",
        ["configuration", "reached /s", "p50 / p99 / p99.9", "p50 / direct", "defaults, kill-free",
         "kill run"],
        rows,
    )  # fmt: skip
    for policy in policies:
        c = a["failover"][str(policy)]["no_kill"].get("cpu_us_per_event")
        if c:
            print(f"cpu µs/event, {policy}: arbiter+feed {fmt(c[0], '.1f')}, workers "
                  f"{', '.join(fmt(x, '.1f') for x in c[1:])}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
