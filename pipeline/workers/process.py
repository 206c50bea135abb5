"""One inference worker process serving the arbiter over its channel (`redline worker`,
pipeline/cli/worker.py, starts it).

Checks and loads the model plan (kernels/plans/plan_file.py: the one check every loader runs,
with the worker's features and trusted keys), builds its engine (engines.py, cuda_engine.py:
resident feature state; CUDA graphs captured here, once), warms up, and only then binds its endpoint and reports
READY. Then it serves the protocol of workers/protocol.py on one channel (transport/channel.py): applies every
EVENT (or EVENTS batch) to its state, answers the ones flagged ASK (and later ASKs), snapshots
and restores its state, and sends a HEARTBEAT every `--heartbeat-ms` while idle. Each answer
carries the worker's own wall-clock stamps: received, compute start, compute end, sent. A batch's
answers go back as one ANSWERS message: one send instead of k (each ~20 µs here). During a hot
swap's watch a SHADOWED (the old version timed beside the new, workers/versions.py) follows an
answer when one is due.

A worker is a separate process so that a crashing CUDA context cannot take the pipeline with
it. It blocks in `poll` between messages instead of spinning: on 2 cores a spinning worker
starves libzmq's I/O thread (FLOORS.md: 62 µs p50 but ~3 ms p99).

On a tcp endpoint the worker is a CURVE server that lets in only the graph's key, read from
the file its link names in $REDLINE_WORKER_CURVE_SECRET_FILE (a path, never the key, in the
environment); a foreign peer's handshake is refused, and the count rides on HEARTBEAT s1.
"""

from __future__ import annotations

import os
import struct
import time

import numpy as np

from redline.feeds.events import DTYPES
from redline.feeds.wire.frames import record_runs, unpack_slots
from redline.pipeline.transport.channel import Channel
from redline.pipeline.workers.engines import on_version_message
from redline.pipeline.workers.faults import FaultPlan
from redline.pipeline.workers.protocol import (
    ASK_FLAG,
    HEADER,
    Kind,
    answers_dtype,
    header,
    unpack_events,
)

BACKENDS = ("cpu", "cuda")


def build_engine(
    backend: str,
    model_dir: str,
    device: int,
    max_instruments: int = 1024,
    scale: float = 1.0,
    features: str = "auto",
    trust=None,
):
    """Check and load the plan, and wrap it in the backend's engine (CUDA graphs captured here).

    Both backends load through the kernels' one plan check (kernels/plans/plan_file.py): pickles,
    sha256, tensors, the plan's inputs against `features` (what this worker feeds it), and the
    signature against `trust` (a kernels.plans.signing.Trust, None: not checked)."""
    from redline.kernels.feature_state import make_features
    from redline.kernels.plans.numpy_loader import numpy_plan
    from redline.kernels.plans.plan_file import read_plan
    from redline.pipeline.workers.engines import CpuEngine

    if backend not in BACKENDS:
        raise ValueError(f"--backend {backend!r}: expected one of {BACKENDS}")
    if backend == "cuda":
        _check_cuda(device)  # before the plan: torch's own error here is a traceback
    checked = read_plan(model_dir, features=features, trust=trust)
    if backend == "cpu":  # numpy when it can: no torch import, so a restart takes 0.2 s
        plan = numpy_plan(checked)
        if plan is None:
            from redline.kernels.plans.storage import build_plan

            plan = build_plan(checked, "cpu", "cpu")
        engine = CpuEngine(plan, make_features(plan, checked.features, max_instruments, scale))
        engine.plan_check = {"features": features, "trust": trust}  # for a hot swap's LOAD
        return engine
    from redline.kernels.plans.storage import build_plan
    from redline.pipeline.workers.cuda_engine import CudaEngine

    plan = build_plan(checked, f"cuda:{device}")
    engine = CudaEngine(plan, make_features(plan, checked.features, max_instruments, scale), device)
    engine.plan_check = {"features": features, "trust": trust}  # for a hot swap's LOAD
    return engine


def _check_cuda(device: int) -> None:
    import torch

    if not torch.cuda.is_available():
        raise ValueError(
            "--backend cuda: this host has no usable CUDA device (torch.cuda.is_available() is "
            "False); use --backend cpu, or a CUDA build of torch on a GPU host"
        )
    count = torch.cuda.device_count()
    if not 0 <= device < count:
        raise ValueError(f"--device {device}: this host has {count} CUDA device(s), 0..{count - 1}")


def serve(engine, endpoint: str, faults: FaultPlan, heartbeat_ns: int, parent: int = 0) -> int:
    """The worker loop; returns on STOP, or when `parent` (if given) is no longer our parent:
    an arbiter that died without STOP must not leave its workers running."""
    ch = Channel.bind(endpoint, *worker_curve())
    engine.faults = faults  # its model-call faults (slow, slow_new) act inside the engine
    out = _Out(engine.out_features)
    version = engine.version
    last = 0  # last event number applied
    now = time.time_ns
    ready = [header(Kind.READY, os.getpid(), version=version, s0=engine.out_features)]
    try:
        while not ch.send(ready):  # until the arbiter's end is connected
            if parent and os.getppid() != parent:  # nobody will ever connect
                return 0
            time.sleep(0.001)
        next_hb = now() + heartbeat_ns
        replied = False  # an answer went out since the last heartbeat tick
        poll_ms = max(1, heartbeat_ns // 1_000_000)
        while True:
            if ch.poll(poll_ms):
                while (parts := ch.recv()) is not None:
                    t_recv = now()
                    try:
                        last, sent = _handle(ch, engine, faults, parts, t_recv, out, last)
                        replied |= sent
                    except (ValueError, LookupError, struct.error) as exc:  # bad message: say so
                        ch.send([header(Kind.ERROR, last), str(exc).encode()], wait=True, copy=True)
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
                    ch.send([header(Kind.HEARTBEAT, last, s0=t, s1=ch.refused)])
                replied = False
                next_hb = t + heartbeat_ns
    finally:
        ch.close()


def worker_curve():
    """(Curve | None, insecure) for this worker's endpoint, as its link set them."""
    path = os.environ.get("REDLINE_WORKER_CURVE_SECRET_FILE", "")
    insecure = os.environ.get("REDLINE_WORKER_INSECURE", "") == "1"
    if not path:
        return None, insecure
    from redline.pipeline.transport.curve import Curve, read_secret

    public, secret = read_secret(path)
    return Curve(public, secret, frozenset({public})), insecure  # the arbiter holds the same key


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


def _handle(ch, engine, faults, parts, t_recv: int, out: _Out, last: int):
    """One arbiter message; returns (last event applied or -1 on STOP, whether it answered)."""
    kind, rtype, flags, _v, no, *_ = HEADER.unpack(parts[0])
    if kind == Kind.EVENT:
        # a 1-element view: the engine takes it as is, no scalar made per event
        engine.apply(no, rtype, np.frombuffer(parts[1], DTYPES[rtype], 1))
        if flags & ASK_FLAG:
            _answer(ch, engine, faults, no, t_recv, out.one)
            return no, True
        return no, False
    if kind == Kind.EVENTS:
        rtypes, nos, slots, flags_ = unpack_events(parts[1:])
        for rt, nos_, recs in record_runs(rtypes, nos, slots):
            engine.apply_many(nos_, rt, recs)
        asked = nos[(flags_ & ASK_FLAG).astype(bool)]  # uint64 [k]
        if len(asked):
            _answer_batch(ch, engine, faults, asked, t_recv, out.batch(len(asked)))
        return int(nos[-1]), bool(len(asked))
    if kind == Kind.ASK:
        _answer(ch, engine, faults, no, t_recv, out.one)
        return last, True
    if kind == Kind.SNAPSHOT:
        ch.send([header(Kind.STATE, last), engine.snapshot()], wait=True)
    elif kind == Kind.RESTORE:
        rtypes, nos, slots = unpack_slots(*parts[2:5])
        engine.restore(parts[1])
        for rt, nos_, recs in record_runs(rtypes, nos, slots):
            engine.apply_many(nos_, rt, recs)
        last = int(nos[-1]) if len(nos) else no
    elif kind == Kind.FAULT:
        faults.arm(bytes(parts[1]).decode())
    elif kind == Kind.STOP:
        return -1, False
    elif kind in (Kind.LOAD, Kind.USE, Kind.DROP, Kind.SHADOW):  # hot swap: engines.py
        reply = on_version_message(engine, kind, _v, no, parts[1] if len(parts) > 1 else b"")
        if reply is not None:
            ch.send(reply, wait=True, copy=True)
    else:
        raise ValueError(f"worker: unexpected message kind {kind}")
    return last, False


def _answer(ch, engine, faults: FaultPlan, no: int, t_recv: int, out) -> None:
    faults.before_answer()
    t_start = time.time_ns()
    try:
        engine.answer_into(no, out)
    except LookupError as exc:
        ch.send([header(Kind.ERROR, no), str(exc).encode()], wait=True, copy=True)
        return
    t_end = time.time_ns()
    faults.after_answer(out)
    t_send = time.time_ns()
    version = engine.version_of(no)  # the version serving this event (hot swap)
    head = header(Kind.ANSWER, no, version=version, s0=t_recv, s1=t_start, s2=t_end, s3=t_send)
    ch.send([head, out], wait=True, copy=True)  # 4 * N bytes: copied, so `out` is reusable
    if engine.shadow.n:  # only during a swap's watch
        _report_shadow(ch, engine)


def _answer_batch(ch, engine, faults, nos: np.ndarray, t_recv: int, ans: np.ndarray):
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
            ch.send([header(Kind.ERROR, no), why.encode()], wait=True, copy=True)
        ans = ans[held]
        if not len(ans):
            return
    stamps = ans["stamps"]  # [k, 4]: received, compute start, compute end, sent
    stamps[:, 0] = t_recv
    stamps[:, 1] = t_start
    stamps[:, 2] = t_end
    stamps[:, 3] = time.time_ns()
    for a, b, v in engine.version_spans(ans["id"]):  # one message per model version (hot swap)
        ch.send([header(Kind.ANSWERS, version=v, s0=b - a), ans[a:b]], wait=True, copy=True)
    if engine.shadow.n:
        _report_shadow(ch, engine)


def _report_shadow(ch, engine) -> None:
    """During a swap's watch: the paired times (SHADOWED) right after an answer when due, so
    they reach the arbiter even while a backlog of requests waits here."""
    if engine.shadow.due(time.time_ns()):
        ch.send(engine.shadow_report(), wait=True, copy=True)
