"""Live feed ingest: the ZeroMQ feed against a bare pyzmq PUSH/PULL loop, same run.

    .venv/bin/python bench/bench_feeds.py [--quick] [--runs 3] [--json PATH]

1. Throughput: a sender process pushes the same pre-encoded frames (1 or 64
   quote records each) as fast as it can over ipc and tcp; the receiver is
   either a bare `sock.recv()` loop or `ZmqFeed.recv_batch` (PULL; decode,
   stamp ts_recv, and with `+seq` the sequence tracker). Events/s from the
   first message to the END frame; bare, feed and feed+seq back to back in each run.
2. Receive-path CPU cost per frame: inproc, frames queued before timing, the
   median over 60 short runs (what the code costs, without wake-ups).
3. One-way latency at 10k events/s, paired: one paced sender sends every
   event to two receiver processes, a bare pyzmq loop and the feed, back to
   back (alternating which goes first), each copy stamped with `time.time_ns()`
   just before its own send; each receiver takes ts_recv - ts_event (bare: a
   clock read after `recv`). Host noise on this class comes in bursts of
   seconds, so receivers measured one after the other differ by whichever
   caught a burst; measured together they see the same bursts. Both loops
   only keep what they need and do the arithmetic at the end. Reported:
   pooled p50/p99/p99.9 over `--latency-rounds` rounds, the per-round p99
   ratios, and each receive loop's CPU and involuntary context switches per event.

Each of --runs runs (`--rounds` is the older name) measures all three, baselines included;
every figure is printed as the median (min-max) over the runs, each ratio taken within its run.

Target (issue 4): feed >= 0.8x the bare loop's events/s; one-way p99 within 1.5x.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import struct
import sys
import tempfile
import time

import numpy as np
import zmq
from timing import Runs, add_runs_arg, fmt, percentiles, table

from redline.feeds import events as ev
from redline.feeds.clock import LiveClock
from redline.feeds.live.pacer import Pacer
from redline.feeds.live.zmq_feed import ZmqFeed
from redline.feeds.sequence import SequenceTracker
from redline.feeds.wire import frames as wire

END = wire.encode_end()


def _frame(n: int) -> bytes:
    recs = ev.empty(ev.RecordType.QUOTE, n)
    recs["seq"] = np.arange(n)
    recs["bid_px"] = 100
    return wire.encode(recs)


# -- sender processes (spawned: module-level functions) --------------------------


def _blast(endpoint: str, batch: int, messages: int) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    # Unbounded queues on both ends: libzmq drops what waits when a PUSH closes on a reader
    # whose queue is full (the END frame with it), which hangs a receive-until-END loop.
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.connect(endpoint)
    recs = ev.empty(ev.RecordType.QUOTE, batch * messages)
    recs["seq"] = np.arange(len(recs))  # gap-free, so the sequence tracker takes its fast path
    recs["bid_px"] = 100
    frames = [wire.encode(recs[i * batch : (i + 1) * batch]) for i in range(messages)]
    copy = batch <= 16  # zero-copy sends only pay off for larger frames
    for f in frames:
        sock.send(f, copy=copy)
    sock.send(END)
    sock.close(linger=10_000)
    ctx.term()


def _paced_pair(endpoints: tuple[str, str], total: int, rate: float, spin_ns: int) -> None:
    """Send every event to both receivers back to back, each copy stamped just before
    its own send; which goes first alternates, so neither side is always second."""
    ctx = zmq.Context()
    socks = []
    for ep in endpoints:
        sock = ctx.socket(zmq.PUSH)
        # Unbounded queues on both ends: libzmq drops what waits when a PUSH closes on a
        # reader whose queue is full (the END frame with it; libzmq#4660 for ipc).
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.connect(ep)
        socks.append(sock)
    buf = bytearray(_frame(1))
    clock = LiveClock()
    pacer = Pacer(clock, spin_ns=spin_ns)
    period = int(1e9 / rate)
    start = clock.monotonic_ns() + 50_000_000
    seq_at = wire.HEADER_SIZE + ev.QUOTE_DTYPE.fields["seq"][1]
    orders = (socks, socks[::-1])
    for i in range(total):
        pacer.wait_until(start + i * period)
        struct.pack_into("<Q", buf, seq_at, i)
        for sock in orders[i & 1]:
            struct.pack_into("<q", buf, wire.HEADER_SIZE, time.time_ns())  # ts_event
            sock.send(bytes(buf))
    for sock in socks:
        sock.send(END)
        sock.close(linger=10_000)
    ctx.term()


def _await_sender(sock: zmq.Socket, proc: mp.Process, timeout_s: float = 60.0) -> None:
    """Wait for the sender's first message; a clear error (not a hang) if it died first."""
    end = time.monotonic() + timeout_s
    while not sock.poll(500):
        if not proc.is_alive() or time.monotonic() > end:
            raise RuntimeError(f"sender process gone or silent (exit code {proc.exitcode})")


def _spawn(target, *args) -> mp.Process:
    p = mp.get_context("spawn").Process(target=target, args=args, daemon=True)
    p.start()
    return p


# -- receivers ----------------------------------------------------------------


def _bare_throughput(endpoint: str, batch: int, messages: int) -> float:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 0)  # as the feed's default
    sock.bind(endpoint)
    proc = _spawn(_blast, endpoint, batch, messages)
    _await_sender(sock, proc)
    sock.recv()
    t0 = time.perf_counter()
    n = 1
    while sock.recv() != END:
        n += 1
    dt = time.perf_counter() - t0
    proc.join(30)
    ctx.destroy(0)
    assert n == messages, (n, messages)
    return (n - 1) * batch / dt


def _feed_throughput(endpoint: str, batch: int, messages: int, seq: bool) -> float:
    ctx = zmq.Context()
    tracker = SequenceTracker() if seq else None
    feed = ZmqFeed(endpoint, kind="pull", bind=True, context=ctx, tracker=tracker)
    proc = _spawn(_blast, endpoint, batch, messages)
    _await_sender(feed.socket, proc)
    recv = feed.recv_batch
    first = len(recv(None).records)  # the clock starts once the sender is going
    t0 = time.perf_counter()
    events = 0
    while (b := recv(None)) is not None:
        events += len(b.records)
    dt = time.perf_counter() - t0
    proc.join(30)
    feed.close()
    ctx.destroy(0)
    assert events + first == messages * batch, (events + first, messages * batch)
    return events / dt


def _thread_cost() -> tuple[int, int]:
    """This thread's CPU time (ns) and involuntary context switches so far."""
    return time.thread_time_ns(), resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw


def _bare_receiver(endpoint: str, conn) -> None:
    """Receiver process: latencies (ns) and the loop's (CPU ns, preemptions) to `conn`."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 0)  # as the feed's default
    sock.bind(endpoint)
    conn.send("ready")
    # The loop only keeps what it needs (the stamp, the message); the arithmetic
    # waits until the end, as in the feed's loop, so neither times its consumer.
    stamps, msgs = [], []
    stamp, keep, clock, recv = stamps.append, msgs.append, time.time_ns, sock.recv
    c0, s0 = _thread_cost()
    while (msg := recv()) != END:
        stamp(clock())
        keep(msg)
    c1, s1 = _thread_cost()
    ctx.destroy(0)
    unpack = struct.Struct("<q").unpack_from
    sent = np.array([unpack(m, wire.HEADER_SIZE)[0] for m in msgs], np.int64)
    conn.send((np.array(stamps, np.int64) - sent, c1 - c0, s1 - s0))


def _feed_receiver(endpoint: str, conn) -> None:
    ctx = zmq.Context()
    feed = ZmqFeed(endpoint, kind="pull", bind=True, context=ctx, tracker=SequenceTracker())
    conn.send("ready")
    kept: list[np.ndarray] = []
    keep, recv = kept.append, feed.recv_batch
    c0, s0 = _thread_cost()
    while (b := recv(None)) is not None:  # a batch holds every frame waiting
        keep(b.records)
    c1, s1 = _thread_cost()
    feed.close()
    ctx.destroy(0)
    r = np.concatenate(kept)
    conn.send((r["ts_recv"] - r["ts_event"], c1 - c0, s1 - s0))


def _latency_round(ep, events: int, rate: float, spin_ns: int) -> dict[str, tuple]:
    """One paired round: the bare loop and the feed, each in its own process, receive
    the same events at the same moments, so host noise lands on both alike."""
    sides = {"bare": _bare_receiver, "feed": _feed_receiver}
    endpoints = {who: ep() for who in sides}
    procs, conns = [], {}
    for who, receiver in sides.items():
        parent, child = mp.get_context("spawn").Pipe()
        procs.append(_spawn(receiver, endpoints[who], child))
        conns[who] = parent
    for who, conn in conns.items():
        if not conn.poll(60) or conn.recv() != "ready":
            raise RuntimeError(f"{who} receiver did not start")
    procs.append(_spawn(_paced_pair, (endpoints["bare"], endpoints["feed"]), events, rate, spin_ns))
    out = {}
    for who, conn in conns.items():
        if not conn.poll(120):
            raise RuntimeError(
                f"{who} receiver silent for 120 s (sender exit code {procs[-1].exitcode})"
            )
        out[who] = conn.recv()
    for p in procs:
        p.join(30)
    return out


def _latency_rounds(ep, rounds: int, per_round: int, warm: int, rate: float, spin_ns: int) -> dict:
    got: dict[str, list] = {"bare": [], "feed": []}
    cost = {"bare": np.zeros(2), "feed": np.zeros(2)}
    ratios = []
    for _ in range(rounds):
        res = _latency_round(ep, per_round + warm, rate, spin_ns)
        p99 = {}
        for who, (lat, cpu_ns, preempted) in res.items():
            got[who].append(lat[warm:])
            cost[who] += (cpu_ns, preempted)
            p99[who] = float(np.percentile(lat[warm:], 99))
        ratios.append(p99["feed"] / p99["bare"])
    out = {}
    for who, parts in got.items():
        lat = np.concatenate(parts)
        out[who] = {
            **percentiles(lat),
            "cpu_us_per_event": cost[who][0] / len(lat) / 1e3,
            "preemptions_per_1k_events": cost[who][1] / len(lat) * 1e3,
        }
    out["round_p99_ratios"] = ratios
    out["p99_ratio_median_of_rounds"] = float(np.median(ratios))
    out["p99_ratio_pooled"] = out["feed"]["p99"] / out["bare"]["p99"]
    return out


def _cpu_cost(batch: int, frames: int, repeats: int) -> dict[str, float]:
    """Receive-path CPU cost per frame (ns), inproc, messages queued up front, so no
    wake-ups or sender are timed; the median over `repeats` short runs leaves out the
    preempted ones without taking the best."""
    ctx = zmq.Context()

    def pair(name: str, feed_kwargs: dict | None):
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.SNDHWM, 0)
        if feed_kwargs is None:
            rx = ctx.socket(zmq.PULL)
            rx.setsockopt(zmq.RCVHWM, 0)
            rx.bind(f"inproc://{name}")

            def take(n: int) -> None:
                for _ in range(n):
                    rx.recv()
        else:
            rx = ZmqFeed(f"inproc://{name}", kind="pull", bind=True, context=ctx, **feed_kwargs)

            def take(n: int) -> None:  # a receive takes every frame waiting
                events = 0
                while events < n * batch:
                    events += len(rx.recv_batch(None).records)

        push.connect(f"inproc://{name}")
        return push, take

    recs = ev.empty(ev.RecordType.QUOTE, batch * frames * repeats)
    recs["seq"] = np.arange(len(recs))  # gap-free: the tracker's fast path
    frames_bytes = [wire.encode(recs[i * batch : (i + 1) * batch]) for i in range(frames * repeats)]
    out = {}
    for name, kw in (
        ("bare_recv", None),
        ("feed", {}),
        ("feed_seq", {"tracker": SequenceTracker()}),
    ):
        push, take = pair(name, kw)
        per_frame = []
        for r in range(repeats):
            for f in frames_bytes[r * frames : (r + 1) * frames]:
                push.send(f)
            t0 = time.perf_counter_ns()
            take(frames)
            per_frame.append((time.perf_counter_ns() - t0) / frames)
        out[name] = float(np.median(per_frame))
    ctx.destroy(0)
    return out


def one_run(args, ep, scale: float) -> dict:
    """One run: every section asked for, each with its bare-loop baseline."""
    res: dict = {}

    def want(section: str) -> bool:
        return args.only in (None, section)

    if want("throughput"):
        res["throughput"] = {}
    for kind in ("ipc", "tcp") if want("throughput") else ():
        for batch in (1, 64):
            messages = int((100_000 if batch == 1 else 10_000) * scale)
            _bare_throughput(ep(kind), batch, max(messages // 10, 100))  # warm-up
            b = _bare_throughput(ep(kind), batch, messages)
            f = _feed_throughput(ep(kind), batch, messages, seq=False)
            fs = _feed_throughput(ep(kind), batch, messages, seq=True)
            res["throughput"][f"{kind}_batch{batch}"] = {
                "bare_events_per_s": b,
                "feed_events_per_s": f,
                "feed_seq_events_per_s": fs,
                "ratio": f / b,
                "ratio_seq": fs / b,
            }
    if want("cpu"):
        res["cpu_ns_per_frame"] = {}
    for batch in (1, 64) if want("cpu") else ():
        c = _cpu_cost(batch, 200, 60 if not args.quick else 5)  # short runs dodge preemption
        c["ratio"] = c["feed"] / c["bare_recv"]
        res["cpu_ns_per_frame"][f"batch{batch}"] = c
    samples = int(args.samples * scale)
    rounds_lat = 2 if args.quick else args.latency_rounds
    per_round = max(samples // rounds_lat, 100)
    warm = max(per_round // 10, 100)
    if want("latency"):
        res["latency_ns"] = {}
    for kind in ("ipc", "tcp") if want("latency") else ():
        r = _latency_rounds(
            lambda k=kind: ep(k), rounds_lat, per_round, warm, args.rate, args.sender_spin_us * 1000
        )
        r["p99_ratio_round_min"] = min(r["round_p99_ratios"])
        r["p99_ratio_round_max"] = max(r["round_p99_ratios"])
        del r["round_p99_ratios"]
        res["latency_ns"][kind] = r
    res["latency_setup"] = {"rounds": rounds_lat, "per_round": per_round, "warm": warm}
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    add_runs_arg(ap, aliases=("--rounds",))
    ap.add_argument("--samples", type=int, default=20_000, help="latency events measured per run")
    ap.add_argument("--rate", type=float, default=10_000.0, help="latency events/s")
    ap.add_argument(
        "--sender-spin-us",
        type=int,
        default=0,
        help="latency sender: spin this long before each send (default 0: sleep only, so the"
        " sender leaves a core to the receiving side; 200 = `redline publish`'s pacing)",
    )
    ap.add_argument(
        "--latency-rounds", type=int, default=4, help="latency rounds per run (samples split)"
    )
    ap.add_argument(
        "--only", choices=("throughput", "cpu", "latency"), help="run one section (default: all)"
    )
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    scale = 0.05 if args.quick else 1.0
    tmp = tempfile.mkdtemp(prefix="bench_feeds")
    endpoints = {"ipc": f"ipc://{tmp}/b", "tcp": "tcp://127.0.0.1:{port}"}
    port = [47000]

    def ep(kind: str) -> str:
        port[0] += 1
        return (
            endpoints[kind].format(port=port[0])
            if kind == "tcp"
            else endpoints[kind] + str(port[0])
        )

    session = Runs(args.runs, argv=None if argv is None else [sys.argv[0], *argv])
    for _ in session:
        session.add(one_run(args, ep, scale))
    report(session.finish(args.json), args)
    return 0


def report(a: dict, args) -> None:
    n = args.runs
    if "throughput" in a:
        rows = []
        for key, t in a["throughput"].items():
            kind, batch = key.split("_batch")
            rows.append([kind, batch, fmt(t["bare_events_per_s"]), fmt(t["feed_events_per_s"]),
                         fmt(t["feed_seq_events_per_s"]), fmt(t["ratio"], ".2f", unit="x"),
                         fmt(t["ratio_seq"], ".2f", unit="x")])  # fmt: skip
        table(
            f"throughput, events/s, median (min-max) of {n} runs (bare PUSH/PULL loop = 1.0x)",
            ["transport", "batch", "bare", "feed", "feed+seq", "feed / bare", "+seq / bare"],
            rows,
        )
    if "cpu_ns_per_frame" in a:
        rows = [[b.removeprefix("batch"), fmt(c["bare_recv"], ".2f", 1e3), fmt(c["feed"], ".2f", 1e3),
                 fmt(c["feed_seq"], ".2f", 1e3), fmt(c["ratio"], ".1f", unit="x")]
                for b, c in a["cpu_ns_per_frame"].items()]  # fmt: skip
        table(
            f"receive-path CPU per frame, inproc, pre-queued, median of 60 runs of 200 (µs); "
            f"median (min-max) of {n} runs",
            ["batch", "bare recv", "feed", "feed+seq", "feed / bare"],
            rows,
        )
    if "latency_ns" in a:
        s = a["latency_setup"]
        rows = []
        for kind, r in a["latency_ns"].items():
            for who in ("bare", "feed"):
                p = r[who]
                rows.append([kind, who, fmt(p["p50"], ",.0f", 1e3), fmt(p["p99"], ",.0f", 1e3),
                             fmt(p["p999"], ",.0f", 1e3), fmt(p["cpu_us_per_event"], ".1f"),
                             fmt(p["preemptions_per_1k_events"], ".0f")])  # fmt: skip
        table(
            f"one-way latency at {args.rate:,.0f} events/s, paired (bare and feed receive the same "
            f"events at once), {s['rounds']['median']:.0f} rounds of {s['per_round']['median']:,.0f} "
            f"pooled per run (µs; cpu: receive loop µs/event; pre: involuntary context switches "
            f"per 1k events); median (min-max) of {n} runs",
            ["transport", "who", "p50", "p99", "p99.9", "cpu", "pre"],
            rows,
        )
        for kind, r in a["latency_ns"].items():
            print(f"{kind} p99 feed / bare, pooled per run: {fmt(r['p99_ratio_pooled'], '.2f', unit='x')}; "
                  f"per round, over all runs: {r['p99_ratio_round_min']['min']:.2f}-"
                  f"{r['p99_ratio_round_max']['max']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
