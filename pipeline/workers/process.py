"""`redline worker`: one inference worker process serving the arbiter over ZeroMQ.

    redline worker --backend cpu|cuda --device N --model DIR --endpoint ADDR [--fault SPEC]

Loads the model plan (`redline.kernels.load`), builds its engine (engine.py: resident feature
state; CUDA graphs captured here, once), warms up, and only then binds its endpoint and reports
READY. Then it serves the protocol of worker_protocol.py on one DEALER socket: applies every
EVENT (or EVENTS batch) to its state, answers the ones flagged ASK (and later ASKs), snapshots
and restores its state, and sends a HEARTBEAT every `--heartbeat-ms` while idle. Each answer
carries the worker's own wall-clock stamps: received, compute start, compute end, sent. A batch's
answers go back as one ANSWERS message: one send instead of k (each ~20 µs here).

A worker is a separate process so that a crashing CUDA context cannot take the pipeline with
it. It blocks in `poll` between messages instead of spinning: on 2 cores a spinning worker
starves libzmq's I/O thread (FLOORS.md: 62 µs p50 but ~3 ms p99).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import struct
import sys
import time

import numpy as np
import zmq

from redline.feeds.events import DTYPES
from redline.feeds.wire.frames import record_runs, unpack_slots
from redline.pipeline.workers.engines import warm_up
from redline.pipeline.workers.faults import FaultPlan, FaultSpec
from redline.pipeline.workers.protocol import (
    ASK_FLAG,
    HEADER,
    Kind,
    answers_dtype,
    header,
    unpack_events,
)

BACKENDS = ("cpu", "cuda")


def register(sub) -> None:
    p = sub.add_parser("worker", help="run one inference worker process (used by the arbiter)")
    p.add_argument("--backend", choices=BACKENDS, default="cpu")
    p.add_argument("--device", type=int, default=0, help="CUDA device index (cuda backend)")
    p.add_argument("--model", required=True, metavar="DIR", help="model plan directory")
    p.add_argument("--endpoint", required=True, metavar="ADDR", help="e.g. ipc:///tmp/w0")
    p.add_argument("--fault", default="", metavar="SPEC", help="e.g. crash@100 (faults.py)")
    p.add_argument("--heartbeat-ms", type=float, default=5.0)
    p.add_argument("--max-instruments", type=int, default=1024)
    p.add_argument("--scale", type=float, default=1.0, help="multiplies window feature values")
    p.add_argument("--features", choices=("auto", "kernels", "window"), default="auto")
    p.add_argument(
        "--parent-pid", type=int, default=0, help="exit when this process is no longer the parent"
    )
    p.set_defaults(run=run)


def build_engine(
    backend: str,
    model_dir: str,
    device: int,
    max_instruments: int = 1024,
    scale: float = 1.0,
    features: str = "auto",
):
    """Load the plan and wrap it in the backend's engine (CUDA graphs captured here)."""
    from redline.kernels.feature_state import make_features
    from redline.kernels.plans.numpy_loader import load_numpy_plan
    from redline.pipeline.workers.engines import CpuEngine, CudaEngine

    if backend == "cpu":  # numpy when it can: no torch import, so a restart takes 0.2 s
        plan = load_numpy_plan(model_dir)
        if plan is None:
            from redline import kernels

            plan = kernels.load(model_dir, device="cpu", backend="cpu")
        return CpuEngine(plan, make_features(plan, features, max_instruments, scale))
    if backend == "cuda":
        from redline import kernels

        plan = kernels.load(model_dir, device=f"cuda:{device}")
        return CudaEngine(plan, make_features(plan, features, max_instruments, scale), device)
    raise ValueError(f"--backend {backend!r}: expected one of {BACKENDS}")


def run(args) -> int:
    if args.heartbeat_ms <= 0:
        raise ValueError(f"--heartbeat-ms must be > 0, got {args.heartbeat_ms}")
    faults = FaultPlan(FaultSpec.parse(args.fault))
    engine = build_engine(
        args.backend, args.model, args.device, args.max_instruments, args.scale, args.features
    )
    warm_up(engine)  # before READY: the first real request must not pay for it
    return serve(engine, args.endpoint, faults, int(args.heartbeat_ms * 1e6), args.parent_pid)


def serve(engine, endpoint: str, faults: FaultPlan, heartbeat_ns: int, parent: int = 0) -> int:
    """The worker loop; returns on STOP, or when `parent` (if given) is no longer our parent:
    an arbiter that died without STOP must not leave its workers running."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.sndhwm = sock.rcvhwm = 0  # no limit: the arbiter decides what is too much
    sock.bind(endpoint)
    out = _Out(engine.out_features)
    version = engine.version
    last = 0  # last event number applied
    now = time.time_ns
    ready = header(Kind.READY, os.getpid(), version=version, s0=engine.out_features)
    while True:  # until the arbiter's connection is up (a DEALER send would block until then)
        try:
            sock.send(ready, zmq.NOBLOCK)
            break
        except zmq.Again:
            if parent and os.getppid() != parent:  # nobody will ever connect
                sock.close(0)
                ctx.term()
                return 0
            time.sleep(0.001)
    next_hb = now() + heartbeat_ns
    replied = False  # an answer went out since the last heartbeat tick
    poll_ms = max(1, heartbeat_ns // 1_000_000)
    try:
        while True:
            if sock.poll(poll_ms):
                # check, then read: a read that raises zmq.Again costs 7.7 µs, the check 3
                while sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    t_recv = now()
                    try:
                        last, sent = _handle(
                            sock, engine, faults, frames, t_recv, out, version, last
                        )
                        replied |= sent
                    except (ValueError, LookupError, struct.error) as exc:  # bad message: say so
                        sock.send_multipart([header(Kind.ERROR, last), str(exc).encode()])
                    if last < 0:
                        return 0
            t = now()
            if t >= next_hb:
                if parent and os.getppid() != parent:  # the arbiter died without STOP
                    return 0
                # Any message tells the arbiter we are alive: under load the answers do, and
                # a heartbeat would cost both sides a message (~20 µs each here) for nothing.
                # So messages are at most two intervals apart (the breaker allows ten).
                # Never block on one: with no arbiter connected, drop it.
                if not replied:
                    with contextlib.suppress(zmq.Again):
                        sock.send(header(Kind.HEARTBEAT, last, s0=t), zmq.NOBLOCK)
                replied = False
                next_hb = t + heartbeat_ns
    finally:
        sock.close(0)
        ctx.term()


class _Out:
    """Answer buffers, reused: one answer [N], and ANSWERS records grown to the largest batch
    seen (pyzmq copies what it sends, so the next message may overwrite them)."""

    __slots__ = ("dtype", "many", "one")

    def __init__(self, out_features: int) -> None:
        self.one = np.zeros(out_features, np.float32)  # [N]
        self.dtype = answers_dtype(out_features)
        self.many = np.zeros(64, self.dtype)

    def batch(self, k: int) -> np.ndarray:
        if k > len(self.many):
            self.many = np.zeros(k, self.dtype)
        return self.many[:k]


def _handle(sock, engine, faults, frames, t_recv: int, out: _Out, version: int, last: int):
    """One arbiter message; returns (last event applied or -1 on STOP, whether it answered)."""
    kind, rtype, flags, _v, no, *_ = HEADER.unpack(frames[0].buffer)
    if kind == Kind.EVENT:
        # a 1-element view: the engine takes it as is, no scalar made per event
        engine.apply(no, rtype, np.frombuffer(frames[1].buffer, DTYPES[rtype], 1))
        if flags & ASK_FLAG:
            _answer(sock, engine, faults, no, t_recv, out.one, version)
            return no, True
        return no, False
    if kind == Kind.EVENTS:
        rtypes, nos, slots, flags_ = unpack_events([f.buffer for f in frames[1:]])
        for rt, nos_, recs in record_runs(rtypes, nos, slots):
            engine.apply_many(nos_, rt, recs)
        asked = nos[(flags_ & ASK_FLAG).astype(bool)]  # uint64 [k]
        if len(asked):
            _answer_batch(sock, engine, faults, asked, t_recv, out.batch(len(asked)), version)
        return int(nos[-1]), bool(len(asked))
    if kind == Kind.ASK:
        _answer(sock, engine, faults, no, t_recv, out.one, version)
        return last, True
    if kind == Kind.SNAPSHOT:
        sock.send_multipart([header(Kind.STATE, last), engine.snapshot()], copy=False)
    elif kind == Kind.RESTORE:
        rtypes, nos, slots = unpack_slots(*(f.buffer for f in frames[2:5]))
        engine.restore(frames[1].buffer)
        for rt, nos_, recs in record_runs(rtypes, nos, slots):
            engine.apply_many(nos_, rt, recs)
        last = int(nos[-1]) if len(nos) else no
    elif kind == Kind.FAULT:
        faults.arm(bytes(frames[1].buffer).decode())
    elif kind == Kind.STOP:
        return -1, False
    else:
        raise ValueError(f"worker: unexpected message kind {kind}")
    return last, False


def _answer(sock, engine, faults: FaultPlan, no: int, t_recv: int, out, version: int) -> None:
    faults.before_answer()
    t_start = time.time_ns()
    try:
        engine.answer_into(no, out)
    except LookupError as exc:
        sock.send_multipart([header(Kind.ERROR, no), str(exc).encode()])
        return
    t_end = time.time_ns()
    faults.after_answer(out)
    t_send = time.time_ns()
    head = header(Kind.ANSWER, no, version=version, s0=t_recv, s1=t_start, s2=t_end, s3=t_send)
    sock.send_multipart([head, out])  # 4 * N bytes: pyzmq copies it, so `out` is reusable


def _answer_batch(sock, engine, faults, nos: np.ndarray, t_recv: int, ans: np.ndarray, version):
    """The asked events of one EVENTS message -> one model call (engine.answer_batch_into) ->
    one ANSWERS message, built in `ans` (answers_dtype [k]). Faults count per answer, as in
    `_answer`: a crash or hang mid-batch means none of the batch's answers is sent."""
    faults.before_answers(len(nos))
    t_start = time.time_ns()
    held = engine.answer_batch_into(nos, ans["out"])  # [k, N]
    t_end = time.time_ns()
    faults.after_answers(ans["out"])
    ans["id"] = nos
    if not held.all():  # rows evicted from the engine's ring: say which, answer the rest
        for no in nos[~held].tolist():
            why = f"engine: features of event {no} are no longer held"
            sock.send_multipart([header(Kind.ERROR, no), why.encode()])
        ans = ans[held]
        if not len(ans):
            return
    stamps = ans["stamps"]  # [k, 4]: received, compute start, compute end, sent
    stamps[:, 0] = t_recv
    stamps[:, 1] = t_start
    stamps[:, 2] = t_end
    stamps[:, 3] = time.time_ns()
    sock.send_multipart([header(Kind.ANSWERS, version=version, s0=len(ans)), ans])


def main(argv: list[str] | None = None) -> int:
    """`python -m redline.pipeline.workers.process ARGS`: what the arbiter spawns. Same arguments and
    errors as `redline worker`, without importing every other command (a restart is on the
    failover's clock)."""
    parser = argparse.ArgumentParser(prog="redline")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["worker", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError) as exc:
        print(f"redline worker: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
