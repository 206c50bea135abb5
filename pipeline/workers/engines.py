"""What a worker (or the in-process fallback) computes with: resident state + a model plan.

The state is one of two feature kinds (kernels/feature_state.py), picked by `make_features`:

- `KernelFeatures` (the graph's models, in_features == kernels.features.N_FEATURES): the
  kernels' rolling per-instrument features (EMAs, realised vol, imbalance, flow, ...) updated by
  each QUOTE/TRADE with `redline.kernels.features.FeatureState` (numba, host memory: the kernels
  measured an update to cost less than one GPU launch). Features are ratios and log returns, so
  tick sizes cancel and every instrument uses tick 1.
- `WindowFeatures` (any K divisible by 4, any record type): per instrument, the last K/4 events'
  four payload numbers (QUOTE bid/ask px/sz, TRADE px/sz/aggressor/0, BOOK_DELTA
  px/sz/side/action, SENSOR values[:4]), newest first. Finite, so a replay of the last events
  rebuilds it exactly; the CUDA engine keeps it in device memory.

Every event updates the state, and the feature row as of that event is kept in a ring keyed by
event number, so a late ASK (hedge, audit, readmission check) is answered on exactly the state
the first answer saw. `CpuEngine` (here) runs the plan's CPU `run_into`; `CudaEngine`
(cuda_engine.py) keeps the same contract with captured CUDA graphs.

Snapshots are bytes: int64 instrument ids [n], then the kind's state arrays for those n rows.

Hot swap (issue 19; the arbiter side is pipeline/arbiter/swap.py): both engines hold more than
one model version over the same feature state (a version must take the same inputs, by name,
to share it), in a `VersionBook` (workers/versions.py, the bookkeeping both share). LOAD adds
one beside the serving one, warms it (on CUDA: its own weights on the device and its own
captured answer graph) and runs the canary: both versions on the last rows the engine holds,
the real inputs the arbiter sent. USE says from which event number on a version answers;
answers are computed with, and tagged by, the version of their event's number, so a late ASK
for an event before the flip is still answered by the old version (on CUDA the flip picks
which graph replays; the old one stays captured until DROP). SHADOW times the previous version
beside the serving one on the rows of each answer during the swap's watch (`ShadowTimer`).
`on_version_message` serves these messages for the worker loop.
"""

from __future__ import annotations

import time

import numpy as np

from redline.feeds.events import QUOTE_DTYPE, TRADE_DTYPE, RecordType
from redline.kernels.feature_state import make_features, record1
from redline.pipeline.workers.faults import FaultPlan
from redline.pipeline.workers.protocol import Kind, header
from redline.pipeline.workers.versions import ShadowTimer, VersionBook, Versioned, check_same_io

ROW_RING = 4096  # late ASKs are answerable for this many events
WARM_CALLS = 20  # model calls per batch size when a version is loaded beside a serving one


def warm_up(engine, n: int = 200) -> None:
    """Run the whole per-event path n times (numba and numpy dispatch, caches, a CUDA graph's
    first replays), then clear the state: the first real event must not pay for any of it."""
    q = np.zeros(1, QUOTE_DTYPE)
    t = np.zeros(1, TRADE_DTYPE)
    # Workers apply read-only views of their receive buffers, and numba compiles read-only
    # arrays separately (0.25 s on the first event otherwise): warm both kinds.
    q_ro, t_ro = q.view(), t.view()
    q_ro.flags.writeable = t_ro.flags.writeable = False
    out = np.zeros(engine.out_features, np.float32)
    for i in range(1, n + 1):
        q["bid_px"], q["ask_px"], q["bid_sz"], q["ask_sz"], q["ts_event"] = 100, 101, 1, 2, i
        t["px"], t["sz"], t["aggressor"], t["ts_event"] = 100, 1, 1, i
        quote, trade = (q, t) if i % 4 < 2 else (q_ro, t_ro)
        engine.apply(i, RecordType.QUOTE if i % 2 else RecordType.TRADE, quote if i % 2 else trade)
        engine.answer_into(i, out)
    engine.restore(b"")


class CpuEngine(Versioned):
    """Host feature state + the plan's CPU `run_into`. One per worker thread."""

    def __init__(self, plan, features=None) -> None:
        self.plan = plan
        self.features = features if features is not None else make_features(plan)
        k = self.features.k
        self.version = int(plan.version_id)
        self.out_features = int(plan.out_features)
        self._rows = np.zeros((ROW_RING, k), np.float32)  # [R, K] features as of each event
        self._row_no = np.zeros(ROW_RING, np.uint64)
        self._y = np.zeros((1, self.out_features), np.float32)
        # Rows per model call: plans that say so take a batch (numpy_mlp), others one row
        self.max_batch = int(getattr(plan, "max_batch", 1))
        self._xb = np.zeros((self.max_batch, k), np.float32)  # [B, K] gathered rows
        self._yb = np.zeros((self.max_batch, self.out_features), np.float32)  # [B, N]
        self.book = VersionBook(self.version, plan)  # every loaded version and the flips
        self._cut = 0  # events from here on are answered by `self.plan` (the newest USE)
        self.plan_check: dict = {}  # read_plan's features/trust for LOAD (set by its builder)
        self.faults = FaultPlan()  # the worker's own (process.serve), for model-call faults
        self.shadow = ShadowTimer()
        self._shadow = None  # the shadow version's plan while the swap's watch times it
        self._ys = np.zeros_like(self._yb)  # [B, N] the shadow's outputs, thrown away
        self._serving_first = True  # which of the two timed calls goes first (alternates)

    def apply(self, event_no: int, rtype: int, record) -> None:
        r = event_no % ROW_RING
        self.features.update(rtype, record1(record), self._rows[r])
        self._row_no[r] = event_no

    def apply_many(self, event_nos: np.ndarray, rtype: int, records: np.ndarray) -> None:
        """`apply` of records[j] (one record type, [n]) as event event_nos[j] (uint64 [n])."""
        at = event_nos % ROW_RING
        self.features.update_many(rtype, records, self._rows, at.tolist())
        self._row_no[at] = event_nos

    def answer_into(self, event_no: int, out: np.ndarray) -> None:
        r = event_no % ROW_RING
        if self._row_no[r] != event_no:
            raise LookupError(f"engine: features of event {event_no} are no longer held")
        plan = self.plan if event_no >= self._cut else self.book.entry_of(event_no)
        if self._shadow is None and not self.faults.slow:  # the usual case
            plan.run_into(self._rows[r : r + 1], self._y)  # [1, K] -> [1, N]
        else:
            self._run_watched(plan, self._rows[r : r + 1], self._y)
        out[:] = self._y[0]

    def answer_batch_into(self, event_nos: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Model outputs for the features as of each of `event_nos` (uint64 [k]) -> out [k, N],
        in model calls of up to `max_batch` rows. Returns `held` (bool [k]): False where that
        event's row is no longer held, and its out row is then meaningless."""
        r = event_nos % ROW_RING
        held = self._row_no[r] == event_nos
        if not len(event_nos) or int(event_nos.min()) >= self._cut:  # the usual case
            self._run_rows(self.plan, r, out)
            return held
        for a, b, v in self.version_spans(event_nos):  # spans a flip (a late batch)
            plan = self.book.entries.get(v)
            if plan is None:
                held[a:b] = False  # that version is unloaded: answered as not held
            else:
                self._run_rows(plan, r[a:b], out[a:b])
        return held

    def _run_rows(self, plan, r: np.ndarray, out: np.ndarray) -> None:
        """`plan` on the ring rows `r` -> out [len(r), N], `max_batch` rows per call."""
        mb, k = min(self.max_batch, int(getattr(plan, "max_batch", 1))), len(r)
        watched = self._shadow is not None or bool(self.faults.slow)
        for i in range(0, k, mb):
            n = min(mb, k - i)
            x, y = self._xb[:n], self._yb[:n]
            np.take(self._rows, r[i : i + n], axis=0, out=x)  # [n, K]
            if watched:
                self._run_watched(plan, x, y)
            else:
                plan.run_into(x, y)  # [n, K] -> [n, N]
            out[i : i + n] = y

    def _run_watched(self, plan, x: np.ndarray, y: np.ndarray) -> None:
        """`plan` on x [n, K] -> y [n, N] with the model-call faults, and the shadow version
        timed on the same x (alternating which runs first, so neither gets the other's warm
        cache) when `plan` serves and this call is sampled."""
        shadow = self._shadow
        serving = plan is self.plan and shadow is not None and shadow is not plan
        if not serving or len(x) > int(getattr(shadow, "max_batch", 1)) or not self.shadow.sample():
            self._call(plan, x, y)
            return
        ys = self._ys[: len(x)]
        first, second = (plan, shadow) if self._serving_first else (shadow, plan)
        t0 = time.perf_counter_ns()
        self._call(first, x, y if first is plan else ys)
        t1 = time.perf_counter_ns()
        self._call(second, x, y if second is plan else ys)
        t2 = time.perf_counter_ns()
        a, b = t1 - t0, t2 - t1
        self.shadow.add(len(x), *((a, b) if self._serving_first else (b, a)))
        self._serving_first = not self._serving_first

    def _call(self, plan, x: np.ndarray, y: np.ndarray) -> None:
        if self.faults.slow:
            self._slowed(int(plan.version_id))
        plan.run_into(x, y)

    # -- model versions (hot swap) --------------------------------------------------------------

    def load_plan(self, plan_dir: str):
        """LOAD's plan: through the one plan check, with this worker's features and trust."""
        from redline.kernels.plans.numpy_loader import load_cpu_plan

        return load_cpu_plan(plan_dir, **self.plan_check)

    def add_plan(self, plan) -> None:
        """Load `plan` beside the serving version (not used until `use`); ValueError when it
        cannot share the feature state or the outputs' shape."""
        check_same_io(self.plan, plan)
        self.book.add(int(plan.version_id), plan)

    def warm(self, plan) -> None:
        """Every batch size the engine will call `plan` with, WARM_CALLS times, on zeros."""
        mb = min(self.max_batch, int(getattr(plan, "max_batch", 1)))
        for n in sorted({1, 2, 4, 8, 16, 32, 64, mb} & set(range(1, mb + 1))):
            for _ in range(WARM_CALLS):
                plan.run_into(np.zeros((n, self.features.k), np.float32), self._yb[:n])

    def canary(self, plan, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The newest `n` held rows (real events) through the serving version and `plan`:
        (event numbers u8 [m], serving outputs [m, N], plan's outputs [m, N]), m <= n."""
        held = np.flatnonzero(self._row_no)
        order = held[np.argsort(self._row_no[held])][-n:] if n > 0 else held[:0]
        old = np.zeros((len(order), self.out_features), np.float32)
        new = np.zeros_like(old)
        self._run_rows(self.plan, order, old)
        self._run_rows(plan, order, new)
        return self._row_no[order].copy(), old, new

    def _serve(self, plan, version: int, first_event: int) -> None:
        self.plan, self.version, self._cut = plan, version, first_event

    def snapshot(self) -> bytes:
        return self.features.snapshot()

    def restore(self, blob) -> None:
        self.features.restore(blob)
        self._row_no[:] = 0


def on_version_message(engine, kind: int, version: int, no: int, payload) -> list | None:
    """A LOAD, USE, DROP or SHADOW for this worker's engine -> the reply frames or None.

    LOAD (payload: the plan directory, utf-8; no: canary rows wanted; version: the version id
    the arbiter expects, 0: any) loads through the same check as the first model (the engine's
    `load_plan`, with the worker's features and trust), warms it and runs the canary. A refused
    version is a LOADED with s3 = 1 and the reason as payload: the worker goes on serving the
    old one. SHADOW (version: the one to time, 0: stop; no: report period ns; payload: u4
    every) and USE first hand back the times held (a SHADOWED), so none is counted against a
    version that no longer serves."""
    if kind in (Kind.USE, Kind.SHADOW, Kind.DROP):
        held = engine.shadow_report() if engine.shadow.n else None
        if kind == Kind.USE:
            engine.use(no, version)
        elif kind == Kind.DROP:
            engine.drop(version)
        else:
            every = int(np.frombuffer(payload, np.uint32)[0]) if len(payload) == 4 else 1
            engine.start_shadow(version, every, no)
        return held
    t0 = time.perf_counter_ns()
    try:
        plan = engine.load_plan(bytes(payload).decode())
        if version and int(plan.version_id) != version:
            raise ValueError(
                f"{bytes(payload).decode()}: holds model version {plan.version!r} "
                f"(id {plan.version_id}), not the expected id {version}"
            )
        engine.add_plan(plan)
        engine.warm(plan)
    except (ValueError, OSError) as exc:
        return [header(Kind.LOADED, 0, s3=1), str(exc).encode()]
    t1 = time.perf_counter_ns()
    nos, old, new = engine.canary(plan, no)
    t2 = time.perf_counter_ns()
    vid = int(plan.version_id)
    head = header(Kind.LOADED, len(nos), version=vid, s0=t1 - t0, s1=t2 - t1)
    return [head, np.ascontiguousarray(np.stack([old, new]))]  # float32 [2, m, N]
