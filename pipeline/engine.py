"""What a worker (or the in-process fallback) computes with: resident state + a model plan.

An engine keeps, per instrument, an input window: the last `in_features // 4` events' four
payload numbers (QUOTE bid/ask px/sz, TRADE px/sz/aggressor/0, BOOK_DELTA px/sz/side/action,
SENSOR values[:4]), newest first. That is the model's input row. Every event updates it and the
row as of that event is kept in a ring keyed by event number, so a late ASK (hedge, audit,
readmission check) is answered on exactly the state the first answer saw. The window is finite,
so replaying the last events of an instrument rebuilds its state exactly.

`CpuEngine` runs on numpy and the plan's CPU path. `CudaEngine` keeps the windows and the row
ring in device memory, stages each event through pinned host memory, runs the update and the
model as CUDA graphs captured at start, and reads results back into pinned memory; the hot path
never calls `.item()` and never copies from pageable memory. (It needs a GPU to run; none here.)

Both snapshot to / restore from bytes: int64 instrument ids [n] then float32 windows [n, K].
"""

from __future__ import annotations

import numpy as np

from redline.feeds.events import RecordType

# Per record type: the four payload fields an event contributes to its instrument's window.
FIELDS: dict[int, tuple[str, ...]] = {
    RecordType.QUOTE: ("bid_px", "ask_px", "bid_sz", "ask_sz"),
    RecordType.TRADE: ("px", "sz", "aggressor"),
    RecordType.BOOK_DELTA: ("px", "sz", "side", "action"),
}
ROW_RING = 4096  # late ASKs are answerable for this many events


def event_values(rtype: int, record: np.ndarray, scale: float, out: np.ndarray) -> None:
    """The four numbers an event adds to the window -> out [4] float32 (no allocation)."""
    if rtype == RecordType.SENSOR:
        out[:] = record["values"][:4]
        return
    names = FIELDS.get(rtype)
    if names is None:
        raise ValueError(f"engine: record type {rtype} carries no features")
    for i, name in enumerate(names):
        out[i] = record[name]
    out[len(names) :] = 0.0
    out *= scale


class CpuEngine:
    """numpy state + the plan's CPU `run_into`. One per worker thread."""

    def __init__(self, plan, max_instruments: int = 1024, scale: float = 1.0) -> None:
        k = plan.in_features
        if k % 4:
            raise ValueError(f"engine: model in_features must be a multiple of 4, got {k}")
        self.plan = plan
        self.version = int(plan.version_id)
        self.out_features = int(plan.out_features)
        self.scale = float(scale)
        self.max_instruments = max_instruments
        self._index: dict[int, int] = {}
        self._ids = np.zeros(max_instruments, np.int64)
        self._win = np.zeros((max_instruments, k), np.float32)  # [I, K]
        self._rows = np.zeros((ROW_RING, k), np.float32)  # [R, K] row as of each event
        self._row_no = np.zeros(ROW_RING, np.uint64)
        self._vals = np.zeros(4, np.float32)
        self._x = np.zeros((1, k), np.float32)
        self._y = np.zeros((1, self.out_features), np.float32)

    def _slot(self, instrument_id: int) -> int:
        i = self._index.get(instrument_id)
        if i is None:
            i = len(self._index)
            if i >= self.max_instruments:
                raise ValueError(f"engine: more than {self.max_instruments} instruments")
            self._index[instrument_id] = i
            self._ids[i] = instrument_id
        return i

    def apply(self, event_no: int, rtype: int, record: np.ndarray) -> None:
        event_values(rtype, record, self.scale, self._vals)
        w = self._win[self._slot(int(record["instrument_id"]))]
        w[4:] = w[:-4].copy()  # shift the window by one event, newest first
        w[:4] = self._vals
        r = event_no % ROW_RING
        self._rows[r] = w
        self._row_no[r] = event_no

    def answer_into(self, event_no: int, out: np.ndarray) -> None:
        r = event_no % ROW_RING
        if self._row_no[r] != event_no:
            raise LookupError(f"engine: features of event {event_no} are no longer held")
        self._x[0] = self._rows[r]
        self.plan.run_into(self._x, self._y)
        out[:] = self._y[0]

    def snapshot(self) -> bytes:
        n = len(self._index)
        return self._ids[:n].tobytes() + self._win[:n].tobytes()

    def restore(self, blob: bytes | memoryview) -> None:
        k = self._win.shape[1]
        n, rest = divmod(len(blob), 8 + 4 * k)
        if rest:
            raise ValueError(f"engine: state blob of {len(blob)} bytes is not n * {8 + 4 * k}")
        ids = np.frombuffer(blob, np.int64, n)
        self._index = {int(v): i for i, v in enumerate(ids)}
        self._ids[:n] = ids
        self._win[:] = 0
        self._win[:n] = np.frombuffer(blob, np.float32, n * k, offset=8 * n).reshape(n, k)
        self._row_no[:] = 0


class CudaEngine:
    """Device-resident windows and row ring; CUDA graphs for the update and the model."""

    def __init__(self, plan, device: int = 0, max_instruments: int = 1024, scale: float = 1.0):
        import torch

        k = plan.in_features
        if k % 4:
            raise ValueError(f"engine: model in_features must be a multiple of 4, got {k}")
        self.torch = torch
        self.dev = torch.device("cuda", device)
        self.plan = plan
        self.version = int(plan.version_id)
        self.out_features = n = int(plan.out_features)
        self.scale = float(scale)
        self.max_instruments = max_instruments
        self._index: dict[int, int] = {}
        self._ids = np.zeros(max_instruments, np.int64)
        self._row_no = np.zeros(ROW_RING, np.uint64)  # host bookkeeping only
        pin = {"pin_memory": True}
        # Pinned staging: the event's four values and its (instrument, ring row) indices.
        self._h_vals = torch.zeros(4, dtype=torch.float32, **pin)
        self._h_idx = torch.zeros(2, dtype=torch.int64, **pin)
        self._h_out = torch.zeros(1, n, dtype=torch.float32, **pin)
        self._vals_np = self._h_vals.numpy()
        self._idx_np = self._h_idx.numpy()
        self._out_np = self._h_out.numpy()
        d = {"device": self.dev}
        self._vals = torch.zeros(4, dtype=torch.float32, **d)
        self._idx = torch.zeros(2, dtype=torch.int64, **d)
        self._win = torch.zeros(max_instruments, k, dtype=torch.float32, **d)  # [I, K]
        self._rows = torch.zeros(ROW_RING, k, dtype=torch.float32, **d)  # [R, K]
        self._x = torch.zeros(1, k, dtype=torch.float32, **d)
        self._y = torch.zeros(1, n, dtype=torch.float32, **d)
        self.stream = torch.cuda.Stream(self.dev)
        self._capture()

    def _update_body(self) -> None:
        t = self.torch
        inst = self._idx[0:1]
        row = self._win.index_select(0, inst)  # [1, K]
        new = t.cat((self._vals.view(1, 4), row[:, :-4]), dim=1)
        self._win.index_copy_(0, inst, new)
        self._rows.index_copy_(0, self._idx[1:2], new)

    def _answer_body(self) -> None:
        self._x.copy_(self._rows.index_select(0, self._idx[1:2]))
        self.plan.run_into(self._x, self._y)

    def _capture(self) -> None:
        """Warm up on a side stream, then capture both graphs once; never per request."""
        t = self.torch
        with t.cuda.stream(self.stream):
            for _ in range(3):
                self._update_body()
                self._answer_body()
        self.stream.synchronize()
        self._g_update = t.cuda.CUDAGraph()
        with t.cuda.graph(self._g_update, stream=self.stream):
            self._update_body()
        self._g_answer = t.cuda.CUDAGraph()
        with t.cuda.graph(self._g_answer, stream=self.stream):
            self._answer_body()
        self._win.zero_()
        self._rows.zero_()
        self.stream.synchronize()

    def _slot(self, instrument_id: int) -> int:
        i = self._index.get(instrument_id)
        if i is None:
            i = len(self._index)
            if i >= self.max_instruments:
                raise ValueError(f"engine: more than {self.max_instruments} instruments")
            self._index[instrument_id] = i
            self._ids[i] = instrument_id
        return i

    def apply(self, event_no: int, rtype: int, record: np.ndarray) -> None:
        # The stream is synchronised before the pinned staging is reused; the copy and the
        # update graph are queued on one stream, so ordering holds without host syncs otherwise.
        self.stream.synchronize()
        event_values(rtype, record, self.scale, self._vals_np)
        self._idx_np[0] = self._slot(int(record["instrument_id"]))
        self._idx_np[1] = event_no % ROW_RING
        self._row_no[event_no % ROW_RING] = event_no
        with self.torch.cuda.stream(self.stream):
            self._vals.copy_(self._h_vals, non_blocking=True)
            self._idx.copy_(self._h_idx, non_blocking=True)
            self._g_update.replay()

    def answer_into(self, event_no: int, out: np.ndarray) -> None:
        r = event_no % ROW_RING
        if self._row_no[r] != event_no:
            raise LookupError(f"engine: features of event {event_no} are no longer held")
        self.stream.synchronize()
        self._idx_np[1] = r
        with self.torch.cuda.stream(self.stream):
            self._idx.copy_(self._h_idx, non_blocking=True)
            self._g_answer.replay()
            self._h_out.copy_(self._y, non_blocking=True)
        self.stream.synchronize()  # the answer must be on the host before it is sent
        out[:] = self._out_np[0]

    def snapshot(self) -> bytes:
        self.stream.synchronize()
        n = len(self._index)
        return self._ids[:n].tobytes() + self._win[:n].cpu().numpy().tobytes()

    def restore(self, blob: bytes | memoryview) -> None:
        k = self._win.shape[1]
        n, rest = divmod(len(blob), 8 + 4 * k)
        if rest:
            raise ValueError(f"engine: state blob of {len(blob)} bytes is not n * {8 + 4 * k}")
        ids = np.frombuffer(blob, np.int64, n)
        self._index = {int(v): i for i, v in enumerate(ids)}
        self._ids[:n] = ids
        win = np.frombuffer(blob, np.float32, n * k, offset=8 * n).reshape(n, k)
        self.stream.synchronize()
        self._win.zero_()
        self._win[:n].copy_(self.torch.from_numpy(win.copy()))  # off the hot path
        self._row_no[:] = 0
        self.stream.synchronize()
