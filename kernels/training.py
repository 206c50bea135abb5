"""Fit the model_signal MLP from a recording: inputs, labels, a time-ordered split, the fit and
its out-of-sample report (what `redline train` runs; the bundled demo model is its output).

Inputs: the feature kernel (`FeatureState.scan`, FEATURE_NAMES) after each quote, quotes and
trades applied in replay order, tick 1 for every instrument as the workers' engine keeps them
(the features are ratios: ticks cancel). With `features="book"` (BOOK_INPUT_NAMES), the kernel
features and those of one L2 book per instrument: the recording's quotes, trades and book deltas
replayed in the reader's order through the workers' own state (`feature_state.BookFeatures`,
applied batch by batch as a worker applies an EVENTS batch), so the model is fitted on what the
workers will feed it.

Label: the instrument's mid move over the next `horizon_ns` of data time (the first quote at or
after t + horizon), in spreads at t, clipped to +-LABEL_CLIP. Rows whose horizon runs past the
instrument's last quote have no label.

Split: by time, no leakage. Quotes before the cut (the first `train_fraction` of the span) whose
label ends before the cut train (the last quarter of them, a horizon apart, validates the early
stop); quotes from cut + horizon on test, so no test row's features or label overlap a training
label. The report compares the model on the test rows with two
naive predictors: zero (no move; it has no sign) and the last move (the mid move over the past
horizon, in spreads: momentum). Deterministic: seeded, one thread, full-batch Adam.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from redline.feeds.events import QUOTE_DTYPE, TRADE_DTYPE, RecordType
from redline.kernels.feature_names import BOOK_INPUT_NAMES, FEATURE_NAMES

INPUTS = {"kernels": FEATURE_NAMES, "book": BOOK_INPUT_NAMES}  # --features -> the model's inputs

HORIZON_NS = 5_000_000_000  # the label: the mid 5 s ahead (the informed flow's half-life)
LABEL_CLIP = 3.0  # spreads: heavy-tailed moves would dominate a squared loss
HIDDEN = 32
EPOCHS = 200  # at most: the fit keeps the epoch that did best on validation rows
CHECK_EVERY = 5
VAL_FRACTION = 0.25  # the last quarter of the training span validates the early stop
LR = 3e-3
SEED = 7
TRAIN_FRACTION = 0.7
MAX_TRAIN_ROWS = 20_000  # subsample: overlapping labels hold far fewer independent samples
MIN_ROWS = 100  # each side of the split needs at least this many labelled rows


class TrainingError(ValueError):
    """Data that cannot be trained on; the message says what and the fix."""


def read_recording(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(quotes, trades) of Parquet recordings or folders, each in replay order (the book and
    sensor files beside them are not read)."""
    from redline.feeds.replay.files import event_files
    from redline.feeds.replay.reader import replay

    files, _ = event_files(paths)
    wanted = [f.path for f in files if f.rtype in (RecordType.QUOTE, RecordType.TRADE)]
    quotes, trades = [np.zeros(0, QUOTE_DTYPE)], [np.zeros(0, TRADE_DTYPE)]
    for rtype, recs in replay(wanted) if wanted else ():
        if rtype == RecordType.QUOTE:
            quotes.append(recs.copy())
        elif rtype == RecordType.TRADE:
            trades.append(recs.copy())
    return np.concatenate(quotes), np.concatenate(trades)


def quote_features(quotes: np.ndarray, trades: np.ndarray) -> np.ndarray:
    """float32 [len(quotes), N_FEATURES]: the kernel's features after each quote."""
    from redline.kernels.features import FeatureState

    ids = np.unique(np.concatenate([quotes["instrument_id"], trades["instrument_id"]]))
    state = FeatureState(np.ones(max(len(ids), 1)))
    rows = (
        np.searchsorted(ids, quotes["instrument_id"]),
        np.searchsorted(ids, trades["instrument_id"]),
    )
    fq, _ = state.scan(quotes, rows[0], trades, rows[1])
    return fq


def book_quote_features(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(quotes in replay order, float32 [len(quotes), len(BOOK_INPUT_NAMES)] the kernel and
    book features after each): the quotes, trades and book deltas of `paths` through the
    workers' `BookFeatures`. TrainingError when the recording holds no book deltas."""
    from redline.feeds.replay.files import event_files
    from redline.feeds.replay.reader import replay
    from redline.kernels.feature_state import BookFeatures, quote_rows

    files, _ = event_files(paths)
    kinds = (RecordType.QUOTE, RecordType.TRADE, RecordType.BOOK_DELTA)
    if not any(f.rtype == RecordType.BOOK_DELTA for f in files):
        raise TrainingError(
            f"{' '.join(map(str, paths))}: no BOOK_DELTA records for the book features; give a "
            "recording with a book file, or train on the kernel features (--features kernels)"
        )
    state = BookFeatures()
    quotes, rows = [np.zeros(0, QUOTE_DTYPE)], [np.zeros((0, state.k), np.float32)]
    for q, x in quote_rows(state, replay([f.path for f in files if f.rtype in kinds])):
        quotes.append(q.copy())
        rows.append(x)
    if state.inst.overflow:
        raise TrainingError(
            f"{state.inst.overflow} events of instruments past the workers' "
            f"{state.inst.max}: train on a recording of fewer instruments"
        )
    return np.concatenate(quotes), np.concatenate(rows)


def _mid_spread(quotes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mid = (quotes["bid_px"].astype(np.float64) + quotes["ask_px"]) / 2.0
    spread = np.maximum(quotes["ask_px"].astype(np.float64) - quotes["bid_px"], 1.0)
    return mid, spread


def labels(quotes: np.ndarray, horizon_ns: int = HORIZON_NS) -> np.ndarray:
    """float32 [Q]: mid move over the next horizon in spreads, clipped; NaN without one."""
    y = np.full(len(quotes), np.nan, np.float32)
    mid, spread = _mid_spread(quotes)
    for inst in np.unique(quotes["instrument_id"]):
        idx = np.flatnonzero(quotes["instrument_id"] == inst)
        ts = np.maximum.accumulate(quotes["ts_event"][idx])  # a stamp going back: dt = 0
        ahead = np.searchsorted(ts, ts + horizon_ns, side="left")
        ok = ahead < len(idx)
        now, then = idx[ok], idx[ahead[ok]]
        y[now] = np.clip((mid[then] - mid[now]) / spread[now], -LABEL_CLIP, LABEL_CLIP)
    return y


def last_move(quotes: np.ndarray, horizon_ns: int = HORIZON_NS) -> np.ndarray:
    """float32 [Q]: the naive baseline, the mid move over the past horizon in spreads."""
    out = np.zeros(len(quotes), np.float32)
    mid, spread = _mid_spread(quotes)
    for inst in np.unique(quotes["instrument_id"]):
        idx = np.flatnonzero(quotes["instrument_id"] == inst)
        ts = np.maximum.accumulate(quotes["ts_event"][idx])
        back = np.searchsorted(ts, ts - horizon_ns, side="right") - 1  # last quote <= t - h
        ok = back >= 0
        out[idx[ok]] = (mid[idx[ok]] - mid[idx[back[ok]]]) / spread[idx[ok]]
    return out


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # row indexes, each set in time order
    val: np.ndarray
    test: np.ndarray
    cut_ns: int  # test rows start a horizon after this


def time_split(quotes: np.ndarray, y: np.ndarray, x: np.ndarray, horizon_ns: int,
               train_fraction: float = TRAIN_FRACTION) -> Split:  # fmt: skip
    """The split of the module docstring, the training span's last VAL_FRACTION kept apart
    (with the same horizon gap) to validate the early stop; TrainingError when a set is too
    small."""
    ts = quotes["ts_event"].astype(np.int64)
    ok = np.isfinite(y) & np.isfinite(x).all(1)
    if not ok.any():
        raise TrainingError(
            f"no quote has a label: the recording spans less than the horizon "
            f"({horizon_ns / 1e9:g} s); give a longer recording or a shorter --horizon"
        )
    t0, t1 = int(ts[ok].min()), int(ts[ok].max())
    cut = t0 + int(train_fraction * (t1 - t0))
    cut_val = t0 + int((1.0 - VAL_FRACTION) * (cut - t0))
    train = np.flatnonzero(ok & (ts + horizon_ns < cut_val))
    val = np.flatnonzero(ok & (ts >= cut_val + horizon_ns) & (ts + horizon_ns < cut))
    test = np.flatnonzero(ok & (ts >= cut + horizon_ns))
    if min(len(train), len(val), len(test)) < MIN_ROWS:
        raise TrainingError(
            f"{len(train)} train, {len(val)} validation and {len(test)} test rows (need "
            f"{MIN_ROWS} each) with a {horizon_ns / 1e9:g} s horizon over "
            f"{(t1 - t0) / 1e9:.1f} s of quotes; give a longer recording or a shorter --horizon"
        )
    return Split(train, val, test, cut)


def fit(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, seed: int = SEED,
        epochs: int = EPOCHS):  # fmt: skip
    """Seeded full-batch fit of a [K, 32, 32, 1] ReLU MLP, kept at the epoch (checked every
    CHECK_EVERY) where its correlation on the validation rows peaked: overlapping labels leave
    few independent samples, and past that point it learns the noise. Standardisation is folded
    into the first layer, so the returned nn.Sequential takes the raw inputs. Also returns the
    epoch kept."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    mu, sigma = x.mean(0, dtype=np.float64), x.std(0, dtype=np.float64) + 1e-6
    xt = torch.from_numpy(((x - mu) / sigma).astype(np.float32))
    yt = torch.from_numpy(y.astype(np.float32))[:, None]
    xv = torch.from_numpy(((x_val - mu) / sigma).astype(np.float32))
    model = nn.Sequential(
        nn.Linear(x.shape[1], HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
        nn.Linear(HIDDEN, 1),
    )  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    best, best_epoch, best_corr = copy.deepcopy(model.state_dict()), 0, -np.inf
    for epoch in range(1, epochs + 1):
        opt.zero_grad()
        nn.functional.mse_loss(model(xt), yt).backward()
        opt.step()
        if epoch % CHECK_EVERY == 0 or epoch == epochs:
            with torch.no_grad():
                corr = scores(model(xv)[:, 0].numpy(), y_val)["corr"]
            if corr > best_corr:
                best, best_epoch, best_corr = copy.deepcopy(model.state_dict()), epoch, corr
    model.load_state_dict(best)
    with torch.no_grad():
        first = model[0]
        w = first.weight.double() / torch.from_numpy(sigma)
        first.bias -= (w @ torch.from_numpy(mu)).float()
        first.weight.copy_(w.float())
    return model.eval(), best_epoch


def scores(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Correlation and sign hit rate (rows where both the prediction and the move are not 0)."""
    pred, y = pred.astype(np.float64), y.astype(np.float64)
    corr = float(np.corrcoef(pred, y)[0, 1]) if pred.std() > 0 and y.std() > 0 else 0.0
    both = (pred != 0) & (y != 0)
    hit = float((np.sign(pred[both]) == np.sign(y[both])).mean()) if both.any() else 0.5
    return {"corr": round(corr, 4), "hit_rate": round(hit, 4), "signals": int(both.sum())}


def train(paths: list[str], horizon_ns: int = HORIZON_NS, epochs: int = EPOCHS,
          seed: int = SEED, features: str = "kernels"):  # fmt: skip
    """(nn.Sequential, report dict) from the recordings at `paths` (module docstring);
    `features`: "kernels" or "book", the inputs of INPUTS."""
    import torch

    if horizon_ns <= 0:
        raise TrainingError(f"horizon {horizon_ns} ns: give a horizon > 0")
    if features not in INPUTS:
        raise TrainingError(f"features {features!r}: expected one of {tuple(INPUTS)}")
    if features == "book":
        quotes, x = book_quote_features(paths)
    else:
        quotes, trades = read_recording(paths)
        x = quote_features(quotes, trades) if len(quotes) else None
    if len(quotes) == 0:
        raise TrainingError(f"{' '.join(map(str, paths))}: no QUOTE records to train on")
    y = labels(quotes, horizon_ns)
    split = time_split(quotes, y, x, horizon_ns)
    rng = np.random.default_rng(seed)
    rows = split.train
    if len(rows) > MAX_TRAIN_ROWS:
        rows = np.sort(rng.choice(rows, MAX_TRAIN_ROWS, replace=False))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same sums in the same order, every run
    try:
        model, kept = fit(x[rows], y[rows], x[split.val], y[split.val], seed, epochs)
        with torch.no_grad():
            pred = model(torch.from_numpy(x[split.test]))[:, 0].numpy()
    finally:
        torch.set_num_threads(threads)
    y_test = y[split.test]
    report = {
        "horizon_ns": int(horizon_ns),
        "label": f"mid move over the horizon in spreads, clipped to +-{LABEL_CLIP:g}",
        "input_features": list(INPUTS[features]),
        "train_rows": len(rows),
        "test_rows": len(split.test),
        "cut_ns": int(split.cut_ns),
        "data_span_ns": [int(quotes["ts_event"].min()), int(quotes["ts_event"].max())],
        "val_rows": len(split.val),
        "epochs": int(epochs),
        "epoch_kept": int(kept),
        "seed": int(seed),
        "model": scores(pred, y_test),
        "baseline_last_move": scores(last_move(quotes, horizon_ns)[split.test], y_test),
        "baseline_zero": {"corr": 0.0, "hit_rate": 0.5, "signals": 0},
    }
    assert x.shape[1] == len(INPUTS[features])
    return model, report


def save(model, report: dict, out) -> str:
    """Write the fp32 plan (weights.safetensors + manifest.json, the directory a Registry
    publishes) into `out`, the report kept in the manifest under "training"; its version."""
    import json
    from pathlib import Path

    from redline.kernels.plans.from_torch import compile as compile_plan
    from redline.kernels.plans.plan_file import MANIFEST

    names = tuple(report["input_features"])
    plan = compile_plan(model, precision="fp32", device="cpu", input_features=names)
    plan.save(out)
    path = Path(out) / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["training"] = report
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return plan.version


def edge(model: str = "") -> dict | None:
    """The out-of-sample edge `redline train` wrote into a plan's manifest (`model`: its
    directory, "": the bundled demo model); None when it holds no training report."""
    import json
    from pathlib import Path

    from redline.kernels.plans.demo_model import bundled_model_dir
    from redline.kernels.plans.plan_file import MANIFEST

    path = Path(model or bundled_model_dir()) / MANIFEST
    try:
        report = json.loads(path.read_text()).get("training")
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or "model" not in report:
        return None
    return {
        "model_oos_corr": report["model"]["corr"],
        "model_hit_rate": report["model"]["hit_rate"],
        "baseline_oos_corr": report["baseline_last_move"]["corr"],
        "baseline_hit_rate": report["baseline_last_move"]["hit_rate"],
        "horizon_s": report["horizon_ns"] / 1e9,
        "test_rows": report["test_rows"],
    }
