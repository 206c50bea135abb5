"""An in-memory worker for arbiter tests: the real protocol frames and a real `CpuEngine`,
replies delivered when the test's ReplayClock says so (no sleeps, no processes)."""

from __future__ import annotations

import heapq

import numpy as np

from redline.feeds.clock import ReplayClock
from redline.feeds.events import QUOTE_DTYPE
from redline.feeds.wire.frames import record_runs, record_view, unpack_slots
from redline.pipeline.workers.engines import CpuEngine
from redline.pipeline.workers.protocol import (
    ASK_FLAG,
    HEADER,
    Kind,
    Reply,
    answers_dtype,
    unpack_events,
)

US = 1_000
MS = 1_000_000
K, N = 8, 3


class TinyPlan:
    """A fixed 8 -> 3 linear map with tanh, behind the plan call shape (run_into)."""

    in_features, out_features, version_id = K, N, 7
    max_batch = 4  # a batch's asked rows go through in calls of up to 4, as a worker's do

    def __init__(self) -> None:
        self.w = np.random.default_rng(0).standard_normal((K, N)).astype(np.float32) / 4

    def run_into(self, x: np.ndarray, out: np.ndarray) -> None:
        np.tanh(x @ self.w, out=out)


class FakeLink:
    """An in-memory worker on the test clock. `latency_ns`, `mode` are set by tests."""

    def __init__(self, name: str, clock: ReplayClock, latency_ns: int) -> None:
        self.name, self.clock, self.latency_ns = name, clock, latency_ns
        self.base_latency_ns = latency_ns  # a restart cures slowness, as with a real process
        self.mode = "ok"  # ok | nan | wrong | hang | crash
        self.pid: int | None = None
        self.starts = 0
        self.start_ns = 1 * MS
        self.alive = False
        self._q: list = []
        self._seq = 0

    def start(self) -> None:
        self.starts += 1
        self.pid = 1000 + self.starts
        self.alive, self.mode, self._q = True, "ok", []
        self.latency_ns = self.base_latency_ns
        self.engine = CpuEngine(TinyPlan())
        self.last = 0
        self._reply(self.start_ns, Kind.READY, self.pid, version=7, s0=N)

    def stop(self) -> None:
        self.alive, self._q = False, []

    def exited(self) -> bool:
        return self.mode == "crash"

    def _reply(self, delay: int, kind: Kind, id_: int, payload=None, version=0, s0=0) -> None:
        self._seq += 1
        t = self.clock.monotonic_ns() + delay
        heapq.heappush(self._q, (t, self._seq, Reply(kind, id_, version, (s0, t, t, t), payload)))

    def _compute(self, no: int, out: np.ndarray) -> None:
        self.engine.answer_into(no, out)
        self._corrupt(out)

    def _corrupt(self, out: np.ndarray) -> None:
        if self.mode == "nan":
            out[:] = np.nan
        elif self.mode == "wrong":
            out += 0.5

    def _answer(self, no: int) -> None:
        out = np.zeros(N, np.float32)
        self._compute(no, out)
        self._reply(self.latency_ns, Kind.ANSWER, no, memoryview(out.tobytes()), version=7)

    def _answers(self, nos: list[int]) -> None:
        """One ANSWERS message for a batch, as the real worker sends."""
        ans = np.zeros(len(nos), answers_dtype(N))
        t = self.clock.monotonic_ns() + self.latency_ns  # the stamps `_reply` gives an ANSWER
        ans["id"] = nos
        ans["stamps"] = (0, t, t, t)
        assert self.engine.answer_batch_into(ans["id"], ans["out"]).all()
        self._corrupt(ans["out"])
        payload = memoryview(ans.tobytes())
        self._reply(self.latency_ns, Kind.ANSWERS, 0, payload, version=7, s0=len(nos))

    def send(self, frames: list) -> bool:
        if not self.alive or self.mode == "crash":
            return False
        kind, rtype, flags, _v, id_, _s0, *_ = HEADER.unpack(frames[0])
        if self.mode == "hang":
            return True  # queued, never read
        if kind == Kind.EVENT:
            self.engine.apply(id_, rtype, np.frombuffer(frames[1], QUOTE_DTYPE)[0])
            self.last = id_
            if flags & ASK_FLAG:
                self._answer(id_)
        elif kind == Kind.EVENTS:
            rtypes, nos, slots, flags = unpack_events(frames[1:])
            for rt, nos_, recs in record_runs(rtypes, nos, slots):  # as the worker does
                self.engine.apply_many(nos_, rt, recs)
            self.last = int(nos[-1])
            asked = [int(no) for no, f in zip(nos, flags, strict=True) if f & ASK_FLAG]
            if asked:
                self._answers(asked)
        elif kind == Kind.ASK:
            self._answer(id_)
        elif kind == Kind.SNAPSHOT:
            self._reply(50 * US, Kind.STATE, self.last, memoryview(self.engine.snapshot()))
        elif kind == Kind.RESTORE:
            self.engine.restore(frames[1])
            rtypes, nos, slots = unpack_slots(*frames[2:5])
            for rt, no, slot in zip(rtypes, nos, slots, strict=True):
                self.engine.apply(int(no), int(rt), record_view(int(rt), slot))
        return True

    def ready(self) -> bool:  # recv() always has a message (a heartbeat at least) when alive
        return self.alive and self.mode not in ("hang", "crash")

    def waitable(self) -> None:  # nothing to wait on: the test drives the clock
        return None

    def recv(self) -> list[Reply]:
        if not self.ready():
            return []
        now, out = self.clock.monotonic_ns(), []
        while self._q and self._q[0][0] <= now:
            out.append(heapq.heappop(self._q)[2])
        return out or [Reply(Kind.HEARTBEAT, self.last, 0, (now, 0, 0, 0), None)]
