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
the first answer saw. `CpuEngine` runs the plan's CPU `run_into`; `CudaEngine` stages through
pinned host memory and runs CUDA graphs captured at start, reads results back into pinned
memory, and never calls `.item()` or copies from pageable memory on the hot path (it needs a
GPU to run; none here, so it is written to the CUDA rules but untested).

Snapshots are bytes: int64 instrument ids [n], then the kind's state arrays for those n rows.

Hot swap (issue 19; the arbiter side is pipeline/arbiter/swap.py): `CpuEngine` holds more than
one model version over the same feature state (a version must take the same inputs, by name,
to share it). LOAD adds one beside the serving one, warms it and runs the canary: both versions
on the last rows the engine holds, the real inputs the arbiter sent. USE says from which event
number on a version answers; answers are computed with, and tagged by, the version of their
event's number, so a late ASK for an event before the flip is still answered by the old
version. DROP unloads one. `on_version_message` serves the three messages for the worker loop.
"""

from __future__ import annotations

import time

import numpy as np

from redline.feeds.events import QUOTE_DTYPE, TRADE_DTYPE, RecordType
from redline.kernels.feature_state import event_values, make_features, record1
from redline.pipeline.workers.protocol import Kind, header

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


class CpuEngine:
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
        self.plans = {self.version: plan}  # every loaded version, by version id
        self._schedule = [(0, self.version)]  # (first event number, version), ascending
        self._cut = 0  # events from here on are answered by `self.plan` (the newest USE)
        self.plan_check: dict = {}  # read_plan's features/trust for LOAD (set by its builder)

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
        plan = self.plan if event_no >= self._cut else self._plan_of(event_no)
        plan.run_into(self._rows[r : r + 1], self._y)  # [1, K] -> [1, N]
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
            plan = self.plans.get(v)
            if plan is None:
                held[a:b] = False  # that version is unloaded: answered as not held
            else:
                self._run_rows(plan, r[a:b], out[a:b])
        return held

    def _run_rows(self, plan, r: np.ndarray, out: np.ndarray) -> None:
        """`plan` on the ring rows `r` -> out [len(r), N], `max_batch` rows per call."""
        mb, k = min(self.max_batch, int(getattr(plan, "max_batch", 1))), len(r)
        for i in range(0, k, mb):
            n = min(mb, k - i)
            x, y = self._xb[:n], self._yb[:n]
            np.take(self._rows, r[i : i + n], axis=0, out=x)  # [n, K]
            plan.run_into(x, y)  # [n, K] -> [n, N]
            out[i : i + n] = y

    # -- model versions (hot swap) --------------------------------------------------------------

    def version_of(self, event_no: int) -> int:
        """The version that answers event `event_no` (the last USE at or before it)."""
        if event_no >= self._cut:
            return self.version
        for first, v in reversed(self._schedule):
            if event_no >= first:
                return v
        return self._schedule[0][1]

    def version_spans(self, event_nos: np.ndarray) -> list[tuple[int, int, int]]:
        """Ascending `event_nos` -> [(start, stop, version)]: the runs of one version."""
        if not len(event_nos) or int(event_nos[0]) >= self._cut:  # the usual case: one span
            return [(0, len(event_nos), self.version)]
        spans: list[tuple[int, int, int]] = []
        for i, no in enumerate(event_nos.tolist()):
            v = self.version_of(no)
            if spans and spans[-1][2] == v:
                spans[-1] = (spans[-1][0], i + 1, v)
            else:
                spans.append((i, i + 1, v))
        return spans

    def _plan_of(self, event_no: int):
        v = self.version_of(event_no)
        plan = self.plans.get(v)
        if plan is None:
            raise LookupError(f"engine: model version {v} of event {event_no} is unloaded")
        return plan

    def add_plan(self, plan) -> None:
        """Load `plan` beside the serving version (not used until `use`); ValueError when it
        cannot share the feature state or the outputs' shape."""
        have, new = self.plan, plan
        for what in ("in_features", "out_features", "input_features"):
            if getattr(new, what, None) != getattr(have, what, None):
                raise ValueError(
                    f"model version {new.version!r}: {what} {getattr(new, what, None)} differ "
                    f"from the serving version's {getattr(have, what, None)}; a swap keeps the "
                    "inputs and outputs: publish a model trained on the same features"
                )
        self.plans[int(new.version_id)] = new

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

    def use(self, first_event: int, version: int) -> None:
        """From event `first_event` on, `version` answers (the flip, or the flip back)."""
        plan = self.plans.get(version)
        if plan is None:
            raise ValueError(f"USE: model version {version} is not loaded; LOAD it first")
        self._schedule.append((first_event, version))
        self._cut = first_event
        self.plan, self.version = plan, version

    def drop(self, version: int) -> None:
        """Unload `version` (never the serving one)."""
        if version == self.version:
            raise ValueError(f"DROP: model version {version} is serving; flip away from it first")
        self.plans.pop(version, None)

    def snapshot(self) -> bytes:
        return self.features.snapshot()

    def restore(self, blob) -> None:
        self.features.restore(blob)
        self._row_no[:] = 0


class CudaEngine:
    """CUDA graphs for the model (and the window update); pinned staging both ways.

    With `WindowFeatures` the windows and the row ring live in device memory and the update is a
    captured graph fed from pinned staging. With `KernelFeatures` the numba update writes each
    row straight into a pinned host ring, and answering copies that one row to the device."""

    def __init__(self, plan, features=None, device: int = 0) -> None:
        import torch

        self.torch = torch
        self.dev = torch.device("cuda", device)
        self.plan = plan
        self.features = features if features is not None else make_features(plan)
        self.resident = self.features.kind == "window"  # state in device memory
        k = self.features.k
        self.version = int(plan.version_id)
        self.out_features = n = int(plan.out_features)
        self._row_no = np.zeros(ROW_RING, np.uint64)  # host bookkeeping only
        pin = {"dtype": torch.float32, "pin_memory": True}
        self._h_vals = torch.zeros(4, **pin)  # the event's four numbers (window)
        self._h_idx = torch.zeros(2, dtype=torch.int64, pin_memory=True)  # (instrument, row)
        self._h_out = torch.zeros(1, n, **pin)
        self._h_rows = torch.zeros(ROW_RING, k, **pin)  # [R, K] (kernel features)
        self._vals_np, self._idx_np = self._h_vals.numpy(), self._h_idx.numpy()
        self._out_np, self._rows_np = self._h_out.numpy(), self._h_rows.numpy()
        d = {"dtype": torch.float32, "device": self.dev}
        self._vals = torch.zeros(4, **d)
        self._idx = torch.zeros(2, dtype=torch.int64, device=self.dev)
        inst = self.features.inst.max if self.resident else 1
        self._win = torch.zeros(inst, k, **d)  # [I, K]
        self._rows = torch.zeros(ROW_RING if self.resident else 1, k, **d)  # [R, K]
        self._x = torch.zeros(1, k, **d)
        self._y = torch.zeros(1, n, **d)
        self.stream = torch.cuda.Stream(self.dev)
        self._capture()

    def _update_body(self) -> None:
        inst = self._idx[0:1]
        row = self._win.index_select(0, inst)  # [1, K]
        new = self.torch.cat((self._vals.view(1, 4), row[:, :-4]), dim=1)
        self._win.index_copy_(0, inst, new)
        self._rows.index_copy_(0, self._idx[1:2], new)

    def _answer_body(self) -> None:
        if self.resident:
            self._x.copy_(self._rows.index_select(0, self._idx[1:2]))
        self.plan.run_into(self._x, self._y)  # [1, K] -> [1, N], on the device

    def _capture(self) -> None:
        """Warm up on a side stream, then capture the graphs once; never per request."""
        t = self.torch
        with t.cuda.stream(self.stream):
            for _ in range(3):
                if self.resident:
                    self._update_body()
                self._answer_body()
        self.stream.synchronize()
        self._g_update = None
        if self.resident:
            self._g_update = t.cuda.CUDAGraph()
            with t.cuda.graph(self._g_update, stream=self.stream):
                self._update_body()
        self._g_answer = t.cuda.CUDAGraph()
        with t.cuda.graph(self._g_answer, stream=self.stream):
            self._answer_body()
        self._win.zero_()
        self._rows.zero_()
        self.stream.synchronize()

    def apply(self, event_no: int, rtype: int, record) -> None:
        r = event_no % ROW_RING
        rec1 = record1(record)
        self._row_no[r] = event_no
        if not self.resident:  # numba update straight into the pinned row ring
            self.features.update(rtype, rec1, self._rows_np[r])
            return
        # Pinned staging is reused only after the previous copy finished.
        self.stream.synchronize()
        event_values(rtype, rec1[0], self.features.scale, self._vals_np)
        row = self.features.inst.row(int(rec1["instrument_id"][0]))
        if row < 0:  # no room for another instrument: counted, no state kept
            return
        self._idx_np[0] = row
        self._idx_np[1] = r
        with self.torch.cuda.stream(self.stream):
            self._vals.copy_(self._h_vals, non_blocking=True)
            self._idx.copy_(self._h_idx, non_blocking=True)
            self._g_update.replay()

    def apply_many(self, event_nos: np.ndarray, rtype: int, records: np.ndarray) -> None:
        for j, no in enumerate(event_nos.tolist()):
            self.apply(no, rtype, records[j : j + 1])

    def answer_into(self, event_no: int, out: np.ndarray) -> None:
        r = event_no % ROW_RING
        if self._row_no[r] != event_no:
            raise LookupError(f"engine: features of event {event_no} are no longer held")
        self.stream.synchronize()
        with self.torch.cuda.stream(self.stream):
            if self.resident:
                self._idx_np[1] = r
                self._idx.copy_(self._h_idx, non_blocking=True)
            else:
                self._x.copy_(self._h_rows[r : r + 1], non_blocking=True)  # pinned -> device
            self._g_answer.replay()
            self._h_out.copy_(self._y, non_blocking=True)  # device -> pinned
        self.stream.synchronize()  # the answer must be on the host before it is sent
        out[:] = self._out_np[0]

    def answer_batch_into(self, event_nos: np.ndarray, out: np.ndarray) -> np.ndarray:
        """As `CpuEngine.answer_batch_into`, one captured batch-1 graph replay per row (a
        batch graph is not captured yet)."""
        held = self._row_no[event_nos % ROW_RING] == event_nos
        for j in np.flatnonzero(held).tolist():
            self.answer_into(int(event_nos[j]), out[j])
        return held

    def version_of(self, event_no: int) -> int:
        return self.version

    def version_spans(self, event_nos: np.ndarray) -> list[tuple[int, int, int]]:
        return [(0, len(event_nos), self.version)]

    def add_plan(self, plan) -> None:
        # A second version needs its own captured graphs; not built yet.
        raise ValueError("hot swap on the CUDA engine is not supported yet; use CPU workers")

    def snapshot(self) -> bytes:
        if not self.resident:
            return self.features.snapshot()
        self.stream.synchronize()
        n = len(self.features.inst.index)
        return self.features.inst.snapshot() + self._win[:n].cpu().numpy().tobytes()

    def restore(self, blob) -> None:
        self.stream.synchronize()
        self._row_no[:] = 0
        if not self.resident:
            self.features.restore(blob)
            return
        self.features.restore(blob)  # parses and checks; the host copy is the source
        self._win.copy_(self.torch.from_numpy(self.features.win))  # off the hot path
        self.stream.synchronize()


def on_version_message(engine, kind: int, version: int, no: int, payload) -> list | None:
    """A LOAD, USE or DROP for this worker's engine -> the reply frames (LOADED) or None.

    LOAD (payload: the plan directory, utf-8; no: canary rows wanted; version: the version id
    the arbiter expects, 0: any) loads through the same check as the first model (`read_plan`
    with the worker's features and trust), warms it and runs the canary. A refused version is
    a LOADED with s3 = 1 and the reason as payload: the worker goes on serving the old one."""
    if kind == Kind.USE:
        engine.use(no, version)
        return None
    if kind == Kind.DROP:
        engine.drop(version)
        return None
    t0 = time.perf_counter_ns()
    try:
        from redline.kernels.plans.numpy_loader import load_cpu_plan

        plan = load_cpu_plan(bytes(payload).decode(), **getattr(engine, "plan_check", {}))
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
