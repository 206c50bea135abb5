"""`model_signal`: trade the model's predicted mid move, as a target-position strategy.

Per quote of an instrument, the model (a plan on the feature kernel's inputs, by default the
bundled trained one, replay_data/model) predicts the mid move over its horizon in spreads. The
wanted side has hysteresis: +1 when the prediction is >= `enter`, -1 when <= -`enter`, 0 when
|prediction| < `exit`, otherwise the side it had; the target position is that side times `qty`.
The runner turns the target into market or limit orders (`--orders`), as for every target
strategy (strategies/target.py).

Fast replay (`bind`): the features (`FeatureState.scan`, chunks of replay order) and the model's
predictions are computed over whole batches first, one vectorised forward per chunk; the
compiled `step` then only reads the next prediction of its instrument. Each instrument's state
row is [cursor, side, count, predictions of its quotes in replay order...]: the backtest steps
once per quote in that same order, so the k-th step of an instrument reads its k-th prediction.
A step past the last prediction (data other than what was bound) keeps the position it has.
"""

from __future__ import annotations

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


def forward(plan, x: np.ndarray) -> np.ndarray:
    """float32 [B] predictions of x [B, K], whole batch at once (BLAS over all rows); layers
    with an activation other than relu go through the plan's own small-batch path."""
    if any(act not in ("relu", "none") for act in plan.acts):
        out = np.zeros((len(x), plan.out_features), np.float32)
        for s in range(0, len(x), plan.max_batch):
            plan.run_into(x[s : s + plan.max_batch], out[s : s + plan.max_batch])
        return out[:, 0]
    h = x
    for w, b, act in zip(plan.weights_t, plan.biases, plan.acts, strict=True):
        h = h @ w
        h += b
        if act == "relu":
            np.maximum(h, 0.0, out=h)
    return h[:, 0]


def predictions(params: Params, paths: list[str], ids) -> list[np.ndarray]:
    """Per instrument of `ids` (sorted): the model's prediction after each of its quotes in
    `paths`, in replay order (float64). Quotes stream in chunks; the trades up to each chunk's
    last receive time go through the feature kernel with it, so the state sees every event in
    replay order (quotes before trades on equal ts_recv, as FeatureState.scan merges)."""
    from redline.feeds.events import TRADE_DTYPE, RecordType
    from redline.feeds.replay.files import event_files
    from redline.feeds.replay.reader import replay
    from redline.kernels.features import FeatureState

    plan = load_model(params)
    ids = np.asarray(ids, np.int64)
    state = FeatureState(np.ones(len(ids)))  # ratios: ticks cancel, as in the workers
    files, _ = event_files(paths)
    by_type = {
        rt: [f.path for f in files if f.rtype == rt] for rt in (RecordType.QUOTE, RecordType.TRADE)
    }
    trades = (
        [recs.copy() for _, recs in replay(by_type[RecordType.TRADE])]
        if by_type[RecordType.TRADE]
        else []
    )
    trades = np.concatenate(trades) if trades else np.zeros(0, TRADE_DTYPE)
    trade_rows = _rows(ids, trades["instrument_id"])
    per: list[list[np.ndarray]] = [[] for _ in ids]
    done = 0  # trades applied so far
    quote_chunks = (
        replay(by_type[RecordType.QUOTE], batch_rows=CHUNK_ROWS)
        if by_type[RecordType.QUOTE]
        else ()
    )
    for _, q in quote_chunks:
        # trades strictly before this chunk's last stamp: ties wait for the next chunk's quotes
        upto = int(np.searchsorted(trades["ts_recv"], q["ts_recv"][-1], side="left"))
        qi = _rows(ids, q["instrument_id"])
        x, _ = state.scan(q, qi, trades[done:upto], trade_rows[done:upto])
        done = max(done, upto)
        pred = forward(plan, x).astype(np.float64)
        for j in range(len(ids)):
            per[j].append(pred[qi == j])
    return [np.concatenate(p) if p else np.zeros(0) for p in per]


def _rows(ids: np.ndarray, instrument_id: np.ndarray) -> np.ndarray:
    r = np.minimum(np.searchsorted(ids, instrument_id), max(len(ids) - 1, 0))
    if len(r) and (ids[r] != instrument_id).any():
        bad = int(instrument_id[ids[r] != instrument_id][0])
        raise ValueError(f"model_signal: instrument {bad} has trades but no quotes to trade on")
    return r


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
