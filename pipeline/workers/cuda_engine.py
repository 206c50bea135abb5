"""The CUDA engine: a worker's resident state and model versions on a GPU (engines.py has the
CPU one, the same contract; `process.build_engine` picks).

With `WindowFeatures` the windows and the row ring live in device memory and the update is a
captured graph fed from pinned staging. With `KernelFeatures` the numba update writes each row
straight into a pinned host ring, and answering copies that one row to the device. Results come
back into pinned memory; the hot path never calls `.item()` or copies from pageable memory.

Hot swap: each loaded version has its own weights on the device, its own output and its own
captured answer graph (`_CudaVersion`), captured on LOAD, all reading the one staged input. The
flip (USE) picks which graph replays and a flip back finds the old one still captured; only
DROP releases it. Which version answers which event is the `VersionBook` the CPU engine keeps
too (workers/versions.py), so the CPU tests prove the rules and the GPU-only tests
(tests/pipeline/workers/test_cuda_engine.py, run by bench/gpu_check.sh) prove the graphs.
"""

from __future__ import annotations

import time

import numpy as np

from redline.kernels.feature_state import event_values, make_features, record1
from redline.pipeline.workers.engines import ROW_RING
from redline.pipeline.workers.faults import FaultPlan
from redline.pipeline.workers.versions import ShadowTimer, VersionBook, Versioned, check_same_io


class _CudaVersion:
    """One model version on the device: its plan (weights), its output and its answer graph."""

    __slots__ = ("graph", "plan", "y")

    def __init__(self, plan, y) -> None:
        self.plan = plan
        self.y = y  # [1, N] on the device, written by `graph`
        self.graph = None


class CudaEngine(Versioned):
    """CUDA graphs for the model (and the window update); pinned staging both ways.

    With `WindowFeatures` the windows and the row ring live in device memory and the update is a
    captured graph fed from pinned staging. With `KernelFeatures` the numba update writes each
    row straight into a pinned host ring, and answering copies that one row to the device.
    Each loaded version has its own weights, output and captured answer graph (`_CudaVersion`),
    all reading the same staged input; which one replays is the `VersionBook`'s say."""

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
        self._x = torch.zeros(1, k, **d)  # the staged input every version's graph reads
        self.stream = torch.cuda.Stream(self.dev)
        self.plan_check: dict = {}  # read_plan's features/trust for LOAD (set by its builder)
        self.faults = FaultPlan()  # the worker's own (process.serve), for model-call faults
        self.shadow = ShadowTimer()
        self._shadow = None  # the shadow version while the swap's watch times it
        self._serving_first = True
        self._g_update = self._capture_update()
        self._serving = self._capture(plan)
        self.book = VersionBook(self.version, self._serving)
        self._cut = 0  # events from here on are answered by `_serving` (the newest USE)
        self._win.zero_()  # the warm-up's updates
        self._rows.zero_()
        self.stream.synchronize()

    def _update_body(self) -> None:
        inst = self._idx[0:1]
        row = self._win.index_select(0, inst)  # [1, K]
        new = self.torch.cat((self._vals.view(1, 4), row[:, :-4]), dim=1)
        self._win.index_copy_(0, inst, new)
        self._rows.index_copy_(0, self._idx[1:2], new)

    def _answer_body(self, v: _CudaVersion) -> None:
        if self.resident:
            self._x.copy_(self._rows.index_select(0, self._idx[1:2]))
        v.plan.run_into(self._x, v.y)  # [1, K] -> [1, N], on the device

    def _capture_update(self):
        """The window update's graph (resident state only): warmed, then captured once."""
        if not self.resident:
            return None
        t = self.torch
        with t.cuda.stream(self.stream):
            for _ in range(3):
                self._update_body()
        self.stream.synchronize()
        g = t.cuda.CUDAGraph()
        with t.cuda.graph(g, stream=self.stream):
            self._update_body()
        return g

    def _capture(self, plan) -> _CudaVersion:
        """`plan`'s answer graph: warmed on the side stream, then captured once, never per
        request. On LOAD this runs beside the serving version, whose graph it leaves alone;
        the body only reads the state, so the live windows are untouched."""
        t = self.torch
        v = _CudaVersion(plan, t.zeros(1, self.out_features, dtype=t.float32, device=self.dev))
        self.stream.synchronize()
        with t.cuda.stream(self.stream):
            for _ in range(3):
                self._answer_body(v)
        self.stream.synchronize()
        v.graph = t.cuda.CUDAGraph()
        with t.cuda.graph(v.graph, stream=self.stream):
            self._answer_body(v)
        self.stream.synchronize()
        return v

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
        v = self._serving if event_no >= self._cut else self.book.entry_of(event_no)
        self._answer_row(r, v, out)

    def _answer_row(self, r: int, v: _CudaVersion, out: np.ndarray) -> None:
        """Version v on ring row r -> out [N] on the host: stage, replay, read back."""
        self.stream.synchronize()
        with self.torch.cuda.stream(self.stream):
            if self.resident:
                self._idx_np[1] = r
                self._idx.copy_(self._h_idx, non_blocking=True)
            else:
                self._x.copy_(self._h_rows[r : r + 1], non_blocking=True)  # pinned -> device
            if self._shadow is None and not self.faults.slow:  # the usual case
                v.graph.replay()
            else:
                self._replay_watched(v)
            self._h_out.copy_(v.y, non_blocking=True)  # device -> pinned
        self.stream.synchronize()  # the answer must be on the host before it is sent
        out[:] = self._out_np[0]

    def _replay_watched(self, v: _CudaVersion) -> None:
        """v's graph with the model-call faults, and the shadow version's graph timed beside it
        on the same staged input (alternating which goes first) when v serves."""
        shadow = self._shadow
        if v is not self._serving or shadow is None or shadow is v or not self.shadow.sample():
            self._replay(v)
            return
        first, second = (v, shadow) if self._serving_first else (shadow, v)
        t0 = time.perf_counter_ns()
        self._replay(first)
        self.stream.synchronize()
        t1 = time.perf_counter_ns()
        self._replay(second)
        self.stream.synchronize()
        t2 = time.perf_counter_ns()
        a, b = t1 - t0, t2 - t1
        self.shadow.add(1, *((a, b) if self._serving_first else (b, a)))
        self._serving_first = not self._serving_first

    def _replay(self, v: _CudaVersion) -> None:
        if self.faults.slow:
            self._slowed(int(v.plan.version_id))
        v.graph.replay()

    def answer_batch_into(self, event_nos: np.ndarray, out: np.ndarray) -> np.ndarray:
        """As `CpuEngine.answer_batch_into`, one captured batch-1 graph replay per row (a
        batch graph is not captured yet)."""
        held = self._row_no[event_nos % ROW_RING] == event_nos
        for j in np.flatnonzero(held).tolist():
            try:
                self.answer_into(int(event_nos[j]), out[j])
            except LookupError:  # its version was dropped: answered as not held
                held[j] = False
        return held

    # -- model versions (hot swap) --------------------------------------------------------------

    def load_plan(self, plan_dir: str):
        """LOAD's plan, checked as the first one was, its weights on this engine's device."""
        from redline.kernels.plans.plan_file import read_plan
        from redline.kernels.plans.storage import build_plan

        return build_plan(read_plan(plan_dir, **self.plan_check), self.dev)

    def add_plan(self, plan) -> None:
        """Capture `plan`'s own answer graph beside the serving version's (warm: the capture
        replays it first); not used until `use`."""
        check_same_io(self.plan, plan)
        self.book.add(int(plan.version_id), self._capture(plan))

    def warm(self, plan) -> None:
        """Nothing more: `add_plan` warmed `plan` when it captured its graph."""

    def canary(self, plan, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As `CpuEngine.canary`: the newest `n` held rows through the serving version's graph
        and `plan`'s (loaded by `add_plan`), one row at a time."""
        held = np.flatnonzero(self._row_no)
        order = held[np.argsort(self._row_no[held])][-n:] if n > 0 else held[:0]
        new_v = self.book.entries[int(plan.version_id)]
        old = np.zeros((len(order), self.out_features), np.float32)
        new = np.zeros_like(old)
        for j, r in enumerate(order.tolist()):
            self._answer_row(r, self._serving, old[j])
            self._answer_row(r, new_v, new[j])
        return self._row_no[order].copy(), old, new

    def _serve(self, v: _CudaVersion, version: int, first_event: int) -> None:
        self._serving, self.plan, self.version, self._cut = v, v.plan, version, first_event

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
