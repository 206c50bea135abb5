"""Live feed ingest: the ZeroMQ feed against a bare pyzmq PUSH/PULL loop, same run.

    .venv/bin/python bench/bench_feeds.py [--quick] [--json PATH]

1. Throughput: a sender process pushes the same pre-encoded frames (1 or 64
   quote records each) as fast as it can over ipc and tcp; the receiver is
   either a bare `sock.recv()` loop or `ZmqFeed.recv_batch` (PULL; decode,
   stamp ts_recv, and with `+seq` the sequence tracker). Events/s from the
   first message to the END frame; median of `--rounds` alternating rounds.
2. Receive-path CPU cost per frame: inproc, frames queued before timing, the
   minimum over many short runs (what the code costs, without wake-ups).
3. One-way latency at 10k events/s: a paced sender (Pacer: sleep then spin)
   writes `time.time_ns()` into each frame's ts_event just before sending;
   the receiver takes ts_recv - ts_event (bare: a clock read after `recv`).
   p50/p99/p99.9 over `--samples` events after a warm-up.

Target (issue 4): feed >= 0.8x the bare loop's events/s; one-way p99 within 1.5x.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import struct
import sys
import tempfile
import time

import numpy as np
import zmq
from timing import percentiles

from redline.feeds import events as ev
from redline.feeds import wire
from redline.feeds.pacer import Pacer
from redline.feeds.sequence import SequenceTracker
from redline.feeds.zmq_feed import ZmqFeed
from redline.pipeline.clock import LiveClock
from redline.pipeline.report_json import write_json

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


def _paced(endpoint: str, total: int, rate: float) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    # Unbounded queues on both ends: libzmq drops what waits when a PUSH closes on a reader
    # whose queue is full (the END frame with it), which hangs a receive-until-END loop.
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.connect(endpoint)
    buf = bytearray(_frame(1))
    clock = LiveClock()
    pacer = Pacer(clock)
    period = int(1e9 / rate)
    start = clock.monotonic_ns() + 50_000_000
    seq_at = wire.HEADER_SIZE + ev.QUOTE_DTYPE.fields["seq"][1]
    for i in range(total):
        pacer.wait_until(start + i * period)
        struct.pack_into("<q", buf, wire.HEADER_SIZE, time.time_ns())  # ts_event: first field
        struct.pack_into("<Q", buf, seq_at, i)
        sock.send(bytes(buf))
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


def _bare_latency(endpoint: str, total: int, rate: float) -> np.ndarray:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 0)  # as the feed's default
    sock.bind(endpoint)
    proc = _spawn(_paced, endpoint, total, rate)
    _await_sender(sock, proc)
    out = np.empty(total, np.int64)
    unpack = struct.Struct("<q").unpack_from
    i = 0
    while (msg := sock.recv()) != END:
        now = time.time_ns()
        out[i] = now - unpack(msg, wire.HEADER_SIZE)[0]
        i += 1
    proc.join(30)
    ctx.destroy(0)
    return out[:i]


def _feed_latency(endpoint: str, total: int, rate: float) -> np.ndarray:
    ctx = zmq.Context()
    feed = ZmqFeed(endpoint, kind="pull", bind=True, context=ctx, tracker=SequenceTracker())
    proc = _spawn(_paced, endpoint, total, rate)
    _await_sender(feed.socket, proc)
    out = np.empty(total, np.int64)
    i = 0
    while (b := feed.recv_batch(None)) is not None:  # a batch holds every frame waiting
        r = b.records
        out[i : i + len(r)] = r["ts_recv"] - r["ts_event"]
        i += len(r)
    proc.join(30)
    feed.close()
    ctx.destroy(0)
    return out[:i]


def _cpu_cost(batch: int, frames: int, repeats: int) -> dict[str, float]:
    """Receive-path CPU cost per frame (ns), inproc, messages queued up front, so no
    wake-ups or sender are timed; the minimum over `repeats` drops preempted runs."""
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
        best = np.inf
        for r in range(repeats):
            for f in frames_bytes[r * frames : (r + 1) * frames]:
                push.send(f)
            t0 = time.perf_counter_ns()
            take(frames)
            best = min(best, (time.perf_counter_ns() - t0) / frames)
        out[name] = best
    ctx.destroy(0)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=20_000, help="latency events measured")
    ap.add_argument("--rate", type=float, default=10_000.0, help="latency events/s")
    ap.add_argument(
        "--only", choices=("throughput", "cpu", "latency"), help="run one section (default: all)"
    )
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    scale = 0.05 if args.quick else 1.0
    rounds = 1 if args.quick else args.rounds
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

    results: dict = {"throughput": {}, "latency_ns": {}, "loadavg_start": os.getloadavg()}
    print(f"load average at start: {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} CPUs")

    def want(section: str) -> bool:
        return args.only in (None, section)

    if want("throughput"):
        print(f"throughput: events/s, median of {rounds} rounds (bare PUSH/PULL loop = 1.0x)")
        print(
            f"{'transport':>9} {'batch':>5} {'bare':>12} {'feed':>12} {'feed+seq':>12} {'ratio':>6} {'+seq':>6}"
        )
    for kind in ("ipc", "tcp") if want("throughput") else ():
        for batch in (1, 64):
            messages = int((100_000 if batch == 1 else 10_000) * scale)
            _bare_throughput(ep(kind), batch, max(messages // 10, 100))  # warm-up
            bare, feed, feed_seq = [], [], []
            for _ in range(rounds):
                bare.append(_bare_throughput(ep(kind), batch, messages))
                feed.append(_feed_throughput(ep(kind), batch, messages, seq=False))
                feed_seq.append(_feed_throughput(ep(kind), batch, messages, seq=True))
            b, f, fs = (float(np.median(x)) for x in (bare, feed, feed_seq))
            results["throughput"][f"{kind}_batch{batch}"] = {
                "bare_events_per_s": b,
                "feed_events_per_s": f,
                "feed_seq_events_per_s": fs,
                "ratio": f / b,
                "ratio_seq": fs / b,
            }
            print(
                f"{kind:>9} {batch:>5} {b:>12,.0f} {f:>12,.0f} {fs:>12,.0f} {f / b:>5.2f}x {fs / b:>5.2f}x"
            )

    if want("cpu"):
        print("\nreceive-path CPU cost per frame, inproc, pre-queued; min over 60 runs of 200 (µs)")
        print(f"{'batch':>5} {'bare recv':>10} {'feed':>8} {'feed+seq':>9} {'feed/bare':>10}")
    results["cpu_ns_per_frame"] = {}
    for batch in (1, 64) if want("cpu") else ():
        c = _cpu_cost(batch, 200, 60 if not args.quick else 5)  # short runs dodge preemption
        results["cpu_ns_per_frame"][f"batch{batch}"] = c
        print(
            f"{batch:>5} {c['bare_recv'] / 1e3:>10.2f} {c['feed'] / 1e3:>8.2f} "
            f"{c['feed_seq'] / 1e3:>9.2f} {c['feed'] / c['bare_recv']:>9.1f}x"
        )

    samples = int(args.samples * scale)
    warm = max(samples // 10, 200)
    if want("latency"):
        print(
            f"\none-way latency at {args.rate:,.0f} events/s, {samples} events after {warm} warm-up (µs)"
        )
        print(f"{'transport':>9} {'who':>5} {'p50':>8} {'p99':>8} {'p99.9':>8} {'max':>8}")
    for kind in ("ipc", "tcp") if want("latency") else ():
        bare = _bare_latency(ep(kind), samples + warm, args.rate)[warm:]
        feed = _feed_latency(ep(kind), samples + warm, args.rate)[warm:]
        pb, pf = percentiles(bare), percentiles(feed)
        results["latency_ns"][kind] = {"bare": pb, "feed": pf, "p99_ratio": pf["p99"] / pb["p99"]}
        for who, p in (("bare", pb), ("feed", pf)):
            print(
                f"{kind:>9} {who:>5} {p['p50'] / 1e3:>8.1f} {p['p99'] / 1e3:>8.1f} "
                f"{p['p999'] / 1e3:>8.1f} {p['max'] / 1e3:>8.1f}"
            )
        print(f"{kind:>9} p99 feed/bare = {pf['p99'] / pb['p99']:.2f}x")
    results["loadavg_end"] = os.getloadavg()
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
