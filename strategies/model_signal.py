"""`model_signal`: trade the model's predicted mid move, as a target-position strategy.

Per quote of an instrument, the model (a plan on the feature kernel's inputs, by default the
bundled trained one, replay_data/model) predicts the mid move over its horizon in spreads. The
wanted side has hysteresis: +1 when the prediction is >= `enter`, -1 when <= -`enter`, 0 when
|prediction| < `exit`, otherwise the side it had; the target position is that side times `qty`.
The runner turns the target into market or limit orders (`--orders`), as for every target
strategy (strategies/target.py).

Fast replay (`bind`): the features (`FeatureState.scan`, chunks of replay order) and the model's
predictions are computed over whole batches first, one compiled forward per chunk; the
compiled `step` then only reads the next prediction of its instrument. Each instrument's state
row is [cursor, side, count, predictions of its quotes in replay order...]: the backtest steps
once per quote in that same order, so the k-th step of an instrument reads its k-th prediction.
A step past the last prediction (data other than what was bound) keeps the position it has.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import msgspec
import numba as nb
import numpy as np

from redline.feeds.settings import PositiveInt, Settings

CURSOR, SIDE, COUNT, HEAD = 0, 1, 2, 3  # state row: then the predictions from HEAD on
CHUNK_ROWS = 1 << 18  # quotes per features + forward batch


class Params(Settings):
    """model_signal's settings (`--param enter=0.8` and so on); predictions in spreads."""

    model: str = ""  # plan directory on the kernel features; "": the bundled demo model
    enter: Annotated[float, msgspec.Meta(gt=0.0, le=1e3)] = 1.5  # |prediction| to take a side
    exit: Annotated[float, msgspec.Meta(ge=0.0, le=1e3)] = 0.5  # |prediction| below: go flat
    qty: PositiveInt = 1  # lots held, long or short

    def check(self) -> None:
        if self.exit > self.enter:
            raise ValueError(f"model_signal: exit {self.exit} is above enter {self.enter}")

    def vector(self) -> np.ndarray:
        """The parameters as the compiled step reads them."""
        return np.array([self.enter, self.exit, self.qty], np.float64)


def model_dir(params: Params) -> Path:
    if params.model:
        return Path(params.model)
    from redline.kernels.plans.demo_model import bundled_model_dir

    return bundled_model_dir()


def load_model(params: Params):
    """The plan (numpy, torch-free); refused (ValueError naming the directory) unless it takes
    the feature kernel's inputs."""
    from redline.kernels.plans.numpy_loader import load_numpy_plan

    plan = load_numpy_plan(model_dir(params), features="kernels")
    if plan is None:
        raise ValueError(f"{model_dir(params)}: model_signal runs fp32/fp16/int8 MLP plans only")
    return plan


def predictions(params: Params, paths: list[str], ids) -> list[np.ndarray]:
    """Per instrument of `ids` (sorted): the model's prediction after each of its quotes in
    `paths`, in replay order (float64 of the float32 output). Quotes stream in chunks; the
    trades up to each chunk's last receive time go through the feature kernel with it, so the
    state sees every event in replay order (quotes before trades on equal ts_recv, as
    FeatureState.scan merges).

    Two cores: a helper thread reads the trades while the first quotes are read, then runs
    the forward of chunk k while this thread scans chunk k+1 (both kernels release the GIL;
    the forwards run one at a time, in order, so the result is the same as serial)."""
    from redline.feeds.events import RecordType
    from redline.feeds.replay.files import event_files
    from redline.feeds.replay.reader import replay
    from redline.kernels.features import N_FEATURES, FeatureState

    model = _Model(load_model(params))
    ids = np.asarray(ids, np.int64)
    state = FeatureState(np.ones(len(ids)))  # ratios: ticks cancel, as in the workers
    files, _ = event_files(paths)
    quote_files = [f.path for f in files if f.rtype == RecordType.QUOTE]
    trade_files = [f.path for f in files if f.rtype == RecordType.TRADE]
    out = _PerInstrument(len(ids))
    xq = [np.empty((CHUNK_ROWS, N_FEATURES), np.float32) for _ in range(2)]  # double buffer
    xt = np.empty((0, N_FEATURES), np.float32)
    with ThreadPoolExecutor(1, thread_name_prefix="model-signal") as helper:
        pending = helper.submit(_all_trades, trade_files)
        quote_chunks = replay(quote_files, batch_rows=CHUNK_ROWS) if quote_files else ()
        trades = None
        done = 0  # trades applied so far
        for k, (_, q) in enumerate(quote_chunks):
            if trades is None:
                trades = pending.result()
                trade_rows = _rows(ids, trades["instrument_id"])
            # trades strictly before this chunk's last stamp: ties wait for the next chunk
            upto = int(np.searchsorted(trades["ts_recv"], q["ts_recv"][-1], side="left"))
            qi = _rows(ids, q["instrument_id"])
            if len(xt) < upto - done:
                xt = np.empty((max(upto - done, 2 * len(xt)), N_FEATURES), np.float32)
            # xq[k % 2] was last read by the forward of chunk k - 2, finished before k - 1's
            x, _ = state.scan(q, qi, trades[done:upto], trade_rows[done:upto], out=(xq[k % 2], xt))
            done = max(done, upto)
            pending.result()  # chunk k - 1's forward (or the trades): raises what it raised
            pending = helper.submit(model.predict_into, x, qi, out)
        pending.result()
    return out.arrays()


def _all_trades(paths: list) -> np.ndarray:
    from redline.feeds.events import TRADE_DTYPE
    from redline.feeds.replay.reader import replay

    # the batches are views of chunks read for them alone: kept as they are, copied once here
    parts = [recs for _, recs in replay(paths)] if paths else []
    return np.concatenate(parts) if parts else np.zeros(0, TRADE_DTYPE)


class _PerInstrument:
    """Each instrument's predictions in replay order: per chunk, one slice per instrument."""

    def __init__(self, n: int) -> None:
        self.parts: list[list[np.ndarray]] = [[] for _ in range(n)]

    def slots(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(y, cursor) for a chunk whose quotes' instrument rows are `rows`: y [B] float64 holds
        instrument 0's predictions, then 1's...; cursor[j] is where j's first one goes. The
        slices are appended here; the kernel fills them (cursor moves on as it writes)."""
        start = np.zeros(len(self.parts) + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=len(self.parts)), out=start[1:])
        y = np.empty(len(rows), np.float64)
        for j, part in enumerate(self.parts):
            part.append(y[start[j] : start[j + 1]])
        return y, start[:-1].copy()

    def arrays(self) -> list[np.ndarray]:
        return [np.concatenate(p) if p else np.zeros(0) for p in self.parts]


class _Model:
    """The plan's forward, each output laid into its instrument's row. A relu MLP runs as one
    compiled kernel per chunk; other activations go through the plan's own batch path."""

    def __init__(self, plan) -> None:
        self.plan = plan
        self.relu_mlp = all(act in ("relu", "none") for act in plan.acts)
        self.ws = tuple(plan.weights_t)  # float32 [K, N] each
        self.bs = tuple(np.ascontiguousarray(b.ravel()) for b in plan.biases)  # float32 [N]
        self.relu = np.array([act == "relu" for act in plan.acts])

    def predict_into(self, x: np.ndarray, rows: np.ndarray, out: _PerInstrument) -> None:
        """x [B, K] float32 of quotes whose instrument rows are `rows`: their predictions,
        appended to `out` in order."""
        y, cursor = out.slots(rows)
        if self.relu_mlp:
            _mlp_into(x, rows, self.ws, self.bs, self.relu, y, cursor)
            return
        plan = self.plan
        h = np.zeros((len(x), plan.out_features), np.float32)
        for s in range(0, len(x), plan.max_batch):
            plan.run_into(x[s : s + plan.max_batch], h[s : s + plan.max_batch])
        _scatter(np.ascontiguousarray(h[:, 0]), rows, y, cursor)


# Rows per block of the compiled MLP. Activations are kept [features, rows], so each layer is
# rank-1 updates along the rows: vectorised, no reductions, in cache. Measured on the bundled
# 14-32-32-1 model: 64 rows ~135 ns a row, whole-chunk BLAS ~200 ns single-threaded and ~650 ns
# of CPU with OpenBLAS's threads on a busy 2-core host.
_BLOCK = 64


@nb.njit(cache=True, nogil=True)
def _mlp_into(x, rows, ws, bs, relu, y, cursor):
    width = x.shape[1]
    for layer in range(len(ws)):
        width = max(width, ws[layer].shape[1])
    a = np.zeros((width, _BLOCK), np.float32)  # [features, rows]
    c = np.zeros((width, _BLOCK), np.float32)
    for s in range(0, x.shape[0], _BLOCK):
        m = min(_BLOCK, x.shape[0] - s)
        for r in range(m):
            for k in range(x.shape[1]):
                a[k, r] = x[s + r, k]
        h, o = a, c
        for layer in range(len(ws)):
            _layer(h, ws[layer], bs[layer], relu[layer], o, m)
            h, o = o, h
        for r in range(m):
            j = rows[s + r]
            y[cursor[j]] = h[0, r]
            cursor[j] += 1


@nb.njit(cache=True, nogil=True, inline="always")
def _layer(h, w, b, relu, o, m):
    # o[n, :m] = act(b[n] + sum over k in order of w[k, n] * h[k, :m]), in float32. `m` is a
    # runtime trip count on purpose: with a constant one LLVM unrolls to scalar code.
    k_in, n_out = w.shape
    for n in range(n_out):
        for r in range(m):
            o[n, r] = b[n]
    for k in range(k_in):
        for n in range(n_out):
            wkn = w[k, n]
            for r in range(m):
                o[n, r] += h[k, r] * wkn
    if relu:
        for n in range(n_out):
            for r in range(m):
                o[n, r] = max(o[n, r], np.float32(0.0))


@nb.njit(cache=True, nogil=True)
def _scatter(pred, rows, y, cursor):
    for i in range(pred.shape[0]):
        j = rows[i]
        y[cursor[j]] = pred[i]
        cursor[j] += 1


def _rows(ids: np.ndarray, instrument_id: np.ndarray) -> np.ndarray:
    """Dense rows (index in the sorted `ids`) of these instrument ids."""
    rows = np.empty(len(instrument_id), np.int64)
    bad = _dense(ids, instrument_id, rows)
    if bad >= 0:
        raise ValueError(
            f"model_signal: instrument {int(instrument_id[bad])} has trades but no quotes to "
            "trade on"
        )
    return rows


@nb.njit(cache=True, nogil=True)
def _dense(ids, instrument_id, rows):
    # One pass over the strided field: ~2.5x less CPU than searchsorted + a numpy check.
    for i in range(instrument_id.shape[0]):
        v = instrument_id[i]
        lo, hi = 0, ids.shape[0]
        while lo < hi:
            mid = (lo + hi) // 2
            if ids[mid] < v:
                lo = mid + 1
            else:
                hi = mid
        if lo == ids.shape[0] or ids[lo] != v:
            return i
        rows[i] = lo
    return -1


def state_from(preds: list[np.ndarray]) -> np.ndarray:
    """The state rows for these per-instrument predictions (module docstring)."""
    width = HEAD + max((len(p) for p in preds), default=0)
    state = np.zeros((len(preds), width), np.float64)
    for j, p in enumerate(preds):
        state[j, COUNT] = len(p)
        state[j, HEAD : HEAD + len(p)] = p
    return state


def bind(params: Params, paths: list[str], ids) -> SimpleNamespace:
    """model_signal over the recordings at `paths`, predictions computed: what a backtest
    runs (it has the strategy API: Params, new_state, step)."""
    preds = predictions(params, paths, ids)
    return SimpleNamespace(
        __name__=__name__, Params=Params, step=step,
        new_state=lambda params, n: _checked_state(preds, n),
    )  # fmt: skip


def _checked_state(preds: list[np.ndarray], n: int) -> np.ndarray:
    if n != len(preds):
        raise ValueError(f"model_signal: bound to {len(preds)} instruments, the run has {n}")
    return state_from(preds)


def new_state(params: Params, n_instruments: int) -> np.ndarray:
    raise ValueError(
        "model_signal needs its predictions first: run it through `redline backtest`, or "
        "model_signal.bind(params, paths, instrument_ids)"
    )


@nb.njit(cache=True)
def step(row, p, bid_px, ask_px, position) -> int:
    """One quote of one instrument: its next prediction -> the target position in lots."""
    k = int(row[CURSOR])
    if k >= row[COUNT]:
        return position  # past what was bound: keep what it has
    row[CURSOR] = k + 1
    pred = row[HEAD + k]
    if pred >= p[0]:
        row[SIDE] = 1.0
    elif pred <= -p[0]:
        row[SIDE] = -1.0
    elif abs(pred) < p[1]:
        row[SIDE] = 0.0
    return int(row[SIDE] * p[2])
