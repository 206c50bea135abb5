"""`model_signal`: trade the model's predicted mid move, as a target-position strategy.

Per quote of an instrument, the model (a plan on the feature kernel's inputs, by default the
bundled trained one, replay_data/model) predicts the mid move over its horizon in spreads. The
wanted side has hysteresis: +1 when the prediction is >= `enter`, -1 when <= -`enter`, 0 when
|prediction| < `exit`, otherwise the side it had; the target position is that side times `qty`.
The runner turns the target into market or limit orders (`--orders`), as for every target
strategy (strategies/target.py).

Fast replay (`stream`): per chunk of quotes, read once, the features (`FeatureState.scan`, in
replay order with the trades) and the model's predictions are computed over the whole chunk,
one compiled forward, then the backtest steps the chunk; the compiled `step` only reads the
next prediction of its instrument. Each instrument's state row is [cursor, side, count,
predictions of its quotes in the chunk, in replay order...]: the backtest steps once per quote
in that same order, so the k-th step of an instrument reads its k-th prediction. A step past
the last prediction keeps the position it has.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
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


class Stream:
    """model_signal over the recordings at `paths`, chunk by chunk, with the strategy API
    (Params, new_state, step): what a fast backtest runs. `run(feed)` reads each quote once:
    per chunk of CHUNK_ROWS quotes, the feature kernel over them and the trades before them,
    then their predictions laid into the state rows (`HEAD + k`: the k-th quote of that
    instrument in the chunk) and `feed(quotes, rows)` steps them.

    Two cores: this thread computes chunk k+1's features (the kernel releases the GIL) while a
    helper thread runs chunk k's forward and `feed`, in order, one chunk at a time; the
    replay's read-ahead threads decode meanwhile. The result is the serial one."""

    Params = Params

    def __init__(self, params: Params, paths: list[str], ids) -> None:
        from redline.feeds.events import RecordType
        from redline.feeds.replay.files import event_paths

        self.__name__ = __name__  # venue/loops.py: model_signal's own cached loop
        self.step = step
        self.model = _Model(load_model(params))
        self.ids = np.asarray(ids, np.int64)
        self.quote_files = event_paths(paths, (RecordType.QUOTE,))
        self.trade_files = event_paths(paths, (RecordType.TRADE,))
        self.state: np.ndarray | None = None

    def new_state(self, params: Params, n_instruments: int) -> np.ndarray:
        if n_instruments != len(self.ids):
            raise ValueError(
                f"model_signal: bound to {len(self.ids)} instruments, the run has {n_instruments}"
            )
        self.state = np.zeros((n_instruments, HEAD + CHUNK_ROWS), np.float64)
        return self.state

    def run(self, feed) -> None:
        """Every quote in replay order through `feed(quotes, rows)` (`rows`: dense instrument
        rows), its prediction in the state first. The state sees every trade before each
        chunk's last receive time with it (quotes before trades on equal ts_recv, as
        FeatureState.scan merges); ties wait for the next chunk."""
        from redline.feeds.replay.reader import replay
        from redline.kernels.features import N_FEATURES, FeatureState

        state = self.state if self.state is not None else self.new_state(None, len(self.ids))
        features = FeatureState(np.ones(len(self.ids)))  # ratios: ticks cancel, as the workers
        trades = _Trades(self.trade_files, self.ids)
        xq = [np.empty((CHUNK_ROWS, N_FEATURES), np.float32) for _ in range(2)]  # double buffer
        quotes = replay(self.quote_files, batch_rows=CHUNK_ROWS) if self.quote_files else ()
        with ThreadPoolExecutor(1, thread_name_prefix="model-signal") as helper:
            pending = None
            for k, (_, q) in enumerate(quotes):
                t, t_rows = trades.before(int(q["ts_recv"][-1]))
                qi = _rows(self.ids, q["instrument_id"])
                # xq[k % 2] was last read by chunk k - 2's forward, done before k - 1's began
                x, _ = features.scan(q, qi, t, t_rows, out=(xq[k % 2], None), trade_features=False)
                if pending is not None:
                    pending.result()  # chunk k - 1 stepped (or what it raised)
                pending = helper.submit(self._step, state, x, q, qi, feed)
            if pending is not None:
                pending.result()

    def _step(self, state: np.ndarray, x: np.ndarray, q: np.ndarray, rows: np.ndarray,
              feed) -> None:  # fmt: skip
        # instrument j's predictions from state[j, HEAD] on: a cursor into the flat rows
        start = np.arange(len(state), dtype=np.int64) * state.shape[1] + HEAD
        cursor = start.copy()
        self.model.predict_into(x, rows, state.reshape(-1), cursor)
        state[:, CURSOR] = 0.0
        state[:, COUNT] = cursor - start
        feed(q, rows)


class _Trades:
    """The trades of `paths` in replay order, handed out up to a receive time; a chunk read
    ahead is held, never the whole file."""

    def __init__(self, paths: list, ids: np.ndarray) -> None:
        from redline.feeds.events import TRADE_DTYPE
        from redline.feeds.replay.reader import replay

        self._batches = replay(paths, batch_rows=CHUNK_ROWS) if paths else iter(())
        self._held = np.zeros(0, TRADE_DTYPE)
        self._ids = ids

    def before(self, ts: int) -> tuple[np.ndarray, np.ndarray]:
        """(the trades received strictly before `ts` not handed out yet, their dense rows)."""
        parts = [self._held]
        while not len(parts[-1]) or parts[-1]["ts_recv"][-1] < ts:
            batch = next(self._batches, None)
            if batch is None:
                break
            parts.append(batch[1])
        held = parts[0]
        if len(parts) > 1:  # whole records as bytes: a field-wise concatenate is ~10x slower
            void = np.dtype((np.void, held.dtype.itemsize))
            held = np.concatenate([p.view(void) for p in parts]).view(held.dtype)
        upto = int(np.searchsorted(held["ts_recv"], ts, side="left"))
        self._held = held[upto:]
        return held[:upto], _rows(self._ids, held["instrument_id"][:upto])


def predictions(params: Params, paths: list[str], ids) -> list[np.ndarray]:
    """Per instrument of `ids` (sorted): the model's prediction after each of its quotes in
    `paths`, in replay order (float64 of the float32 output), as `Stream.run` lays them."""
    stream = Stream(params, paths, ids)
    parts: list[list[np.ndarray]] = [[] for _ in ids]

    def keep(quotes: np.ndarray, rows: np.ndarray) -> None:
        for j, part in enumerate(parts):
            part.append(stream.state[j, HEAD : HEAD + int(stream.state[j, COUNT])].copy())

    stream.run(keep)
    return [np.concatenate(p) for p in parts]


class _Model:
    """The plan's forward, each output laid into its instrument's row. A relu MLP runs as one
    compiled kernel per chunk; other activations go through the plan's own batch path."""

    def __init__(self, plan) -> None:
        self.plan = plan
        self.relu_mlp = all(act in ("relu", "none") for act in plan.acts)
        self.ws = tuple(plan.weights_t)  # float32 [K, N] each
        self.bs = tuple(np.ascontiguousarray(b.ravel()) for b in plan.biases)  # float32 [N]
        self.relu = np.array([act == "relu" for act in plan.acts])

    def predict_into(self, x: np.ndarray, rows: np.ndarray, y: np.ndarray,
                     cursor: np.ndarray) -> None:  # fmt: skip
        """x [B, K] float32 of quotes whose instrument rows are `rows`: each one's prediction
        at y[cursor[j]] of its instrument j, the cursor moved on (so each instrument's land in
        order wherever its cursor starts)."""
        if self.relu_mlp:
            _mlp_into(x, rows, self.ws, self.bs, self.relu, y, cursor)
            return
        plan = self.plan
        h = np.zeros((len(x), plan.out_features), np.float32)
        for s in range(0, len(x), plan.max_batch):
            plan.run_into(x[s : s + plan.max_batch], h[s : s + plan.max_batch])
        _scatter(np.ascontiguousarray(h[:, 0]), rows, y, cursor)


# Rows per block of the compiled MLP. Activations are kept [features, rows]; `_layer` works in
# register tiles of 4 outputs x 16 rows: 8 ymm accumulators held across the whole k loop (one
# load of h[k, 16 rows] feeds 4 outputs, the 4 weights broadcast), so a multiply-add costs no
# load or store of its accumulator. A block is whole tiles (rows past the last one are scratch,
# computed and dropped): every row takes the same vector code, so its output is one fixed
# function of the row (sum over k in order, fused multiply-adds, then + bias), whatever the
# batch. Measured on the bundled 14-32-32-1 model, 1M rows, one process: 2.2-2.9x faster than
# the rank-1 updates along the rows it replaces (each multiply-add a load and a store of
# o[n, r]: ~145 ns a row, ~65 ns now), which beat whole-chunk BLAS (~200 ns single-threaded,
# ~650 ns of CPU with OpenBLAS's threads on a busy 2-core host). 128 or 256 rows: no faster.
_BLOCK = 64  # a multiple of _RT
_NT, _RT = 4, 16  # outputs x rows of a tile: _layer spells out the 4 outputs


@nb.extending.intrinsic
def _stack_tile(typingctx, n0, n1):
    """A [n0, n1] float32 C array on the stack (literal shape, uninitialised, no meminfo): unlike
    a heap scratch, LLVM sees that nothing else can alias it and keeps it in registers."""
    if not isinstance(n0, nb.types.IntegerLiteral) or not isinstance(n1, nb.types.IntegerLiteral):
        return None
    d0, d1 = n0.literal_value, n1.literal_value
    array = nb.types.Array(nb.types.float32, 2, "C")

    def codegen(context, builder, signature, args):
        from llvmlite import ir
        from numba.core import cgutils
        from numba.np.arrayobj import populate_array

        intp = [context.get_constant(nb.types.intp, v) for v in (d0, d1, 4 * d1, 4)]
        data = cgutils.alloca_once(builder, ir.ArrayType(ir.FloatType(), d0 * d1))
        out = context.make_array(array)(context, builder)
        data = builder.bitcast(data, ir.FloatType().as_pointer())
        populate_array(
            out, data=data, shape=intp[:2], strides=intp[2:], itemsize=intp[3], meminfo=None
        )
        return out._getvalue()

    return array(n0, n1), codegen


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
            _layer(h, ws[layer], bs[layer], relu[layer], o, (m + _RT - 1) // _RT)
            h, o = o, h
        for r in range(m):
            j = rows[s + r]
            y[cursor[j]] = h[0, r]
            cursor[j] += 1


# Not inlined on purpose: here h, w, b and o are arguments, which LLVM knows cannot point into
# the stack tile; inlined, it could not tell, and kept the tile in memory. `contract` lets
# LLVM fuse each multiply-add (one rounding): the same fused op for every row.
@nb.njit(cache=True, nogil=True, fastmath={"contract"})
def _layer(h, w, b, relu, o, tiles):
    # o[n, :16 * tiles] = act(sum over k in order of w[k, n] * h[k, :] + b[n]), in float32. A
    # last partial group of outputs repeats the last one (computed twice, the same).
    acc = _stack_tile(_NT, _RT)
    zero = np.float32(0.0)
    floor = zero if relu else np.float32(-np.inf)  # max(v, -inf) is v, nan and -0.0 included
    k_in, n_out = w.shape
    last = n_out - 1
    for n in range(0, n_out, _NT):
        c0, c1, c2, c3 = n, min(n + 1, last), min(n + 2, last), min(n + 3, last)
        b0, b1, b2, b3 = b[c0], b[c1], b[c2], b[c3]
        for t in range(tiles):
            r0 = t * _RT
            acc[:] = zero
            for k in range(k_in):
                w0, w1, w2, w3 = w[k, c0], w[k, c1], w[k, c2], w[k, c3]
                hk = h[k, r0 : r0 + _RT]  # a view: indices from 0, no wraparound checks
                for j in range(_RT):
                    acc[0, j] += hk[j] * w0
                    acc[1, j] += hk[j] * w1
                    acc[2, j] += hk[j] * w2
                    acc[3, j] += hk[j] * w3
            o0, o1 = o[c0, r0 : r0 + _RT], o[c1, r0 : r0 + _RT]
            o2, o3 = o[c2, r0 : r0 + _RT], o[c3, r0 : r0 + _RT]
            for j in range(_RT):
                v0, v1, v2, v3 = acc[0, j] + b0, acc[1, j] + b1, acc[2, j] + b2, acc[3, j] + b3
                o0[j], o1[j] = max(v0, floor), max(v1, floor)
                o2[j], o3[j] = max(v2, floor), max(v3, floor)


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


def stream(params: Params, paths: list[str], ids) -> Stream:
    """model_signal over the recordings at `paths` for the instruments `ids` (sorted): what a
    fast backtest runs (`Stream`)."""
    return Stream(params, paths, ids)


def new_state(params: Params, n_instruments: int) -> np.ndarray:
    raise ValueError(
        "model_signal needs its predictions: run it through `redline backtest`, or "
        "model_signal.stream(params, paths, instrument_ids).run(feed)"
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
