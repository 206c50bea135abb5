"""Train the bundled demo model: a tiny MLP, scored per quote.

    python -m redline.strategies.train_demo_model [--inputs features|window] [--out DIR]

Inputs, one row per quote of the bundled market recording, as the workers
compute them: the rows come from the same feature state
(`redline.kernels.feature_state`) that a worker's engine keeps, so training sees
exactly what a worker will feed the model.
- `features` (default): `redline.kernels.features` after the quote
  (N_FEATURES floats, FEATURE_NAMES order).
- `window`: the instrument's last `WINDOW` events, four payload numbers each.

Target: the move of the instrument's mid over the next `HORIZON_NS`, in
spreads, clipped to [-1, 1]; so the output reads as a score for
`strategies.signal_trader` (above its threshold: trade). Standardisation is
folded into the first layer, so the saved plan takes the raw inputs; its manifest
names them (`input_features`), so a worker fed other features refuses it.

Deterministic: fixed seed, one thread, full-batch Adam; a few seconds on a
2-vCPU VM. The first 80% of the recording (by time) trains, the rest reports
the out-of-sample correlation and hit rate.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from redline.feeds.events import RecordType
from redline.kernels import compile as compile_plan
from redline.kernels.feature_names import FEATURE_NAMES, window_feature_names
from redline.kernels.features import N_FEATURES
from redline.replay_data import DIR

SEED = 7
HORIZON_NS = 1_000_000_000  # predict the mid 1 s ahead
HIDDEN = 32
WINDOW = 4  # engine input: events per instrument window (4 numbers each)
EPOCHS = 300
LR = 3e-3
TRAIN_FRACTION = 0.8
MAX_TRAIN_ROWS = 40_000  # subsample: enough for 1.6k weights, keeps training to seconds


def engine_rows(data_dir: Path = DIR, k: int = N_FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """(model input row after each quote [Q, k], quotes [Q]): quotes and trades applied in
    replay order to the feature state a worker keeps for a k-input model (k = N_FEATURES:
    the kernels' features; k = 4 * WINDOW: the event window)."""
    from redline.feeds.replay.reader import replay
    from redline.kernels.feature_state import KernelFeatures, WindowFeatures

    state = KernelFeatures() if k == N_FEATURES else WindowFeatures(k)
    paths = [data_dir / "market_quotes.parquet", data_dir / "market_trades.parquet"]
    rows, kept = [], []
    out = np.zeros(k, np.float32)
    for rtype, recs in replay(paths):
        for i in range(len(recs)):
            state.update(int(rtype), recs[i : i + 1], out)
            if rtype == RecordType.QUOTE:
                rows.append(out.copy())
        if rtype == RecordType.QUOTE:
            kept.append(recs)
    return np.stack(rows), np.concatenate(kept)


def targets(quotes: np.ndarray) -> np.ndarray:
    """Mid move over HORIZON_NS in spreads, clipped to [-1, 1]; NaN where the
    horizon runs past the instrument's last quote."""
    y = np.full(len(quotes), np.nan, np.float32)
    mid = (quotes["bid_px"] + quotes["ask_px"]) / 2.0
    spread = np.maximum(quotes["ask_px"] - quotes["bid_px"], 1).astype(np.float64)
    for inst in np.unique(quotes["instrument_id"]):
        idx = np.flatnonzero(quotes["instrument_id"] == inst)
        ts = quotes["ts_event"][idx]
        ahead = np.searchsorted(ts, ts + HORIZON_NS, side="left")
        ok = ahead < len(idx)
        j = idx[ahead[ok]]
        y[idx[ok]] = np.clip((mid[j] - mid[idx[ok]]) / spread[idx[ok]], -1, 1)
    return y


def train(x: np.ndarray, y: np.ndarray) -> nn.Sequential:
    """Seeded full-batch fit of a [K, 32, 32, 1] ReLU MLP (K = x.shape[1])."""
    torch.manual_seed(SEED)
    mu, sigma = x.mean(0, dtype=np.float64), x.std(0, dtype=np.float64) + 1e-6
    xt = torch.from_numpy(((x - mu) / sigma).astype(np.float32))
    yt = torch.from_numpy(y)[:, None]
    model = nn.Sequential(
        nn.Linear(x.shape[1], HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, 1),
    )
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    for _ in range(EPOCHS):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(xt), yt)
        loss.backward()
        opt.step()
    with torch.no_grad():  # fold the standardisation into the first layer: raw features in
        first = model[0]
        w = first.weight.double() / torch.from_numpy(sigma)
        first.bias -= (w @ torch.from_numpy(mu)).float()
        first.weight.copy_(w.float())
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DIR / "model"), help="plan directory to write")
    parser.add_argument("--inputs", choices=("features", "window"), default="features")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    t0 = time.perf_counter()
    k = N_FEATURES if args.inputs == "features" else 4 * WINDOW
    feats, quotes = engine_rows(k=k)
    y = targets(quotes)
    ok = np.isfinite(y) & np.isfinite(feats).all(1)
    cut = quotes["ts_event"][0] + TRAIN_FRACTION * (quotes["ts_event"][-1] - quotes["ts_event"][0])
    is_train = ok & (quotes["ts_event"] < cut)
    is_test = ok & (quotes["ts_event"] >= cut + HORIZON_NS)  # no overlap with train targets
    rng = np.random.default_rng(SEED)
    train_idx = np.flatnonzero(is_train)
    if len(train_idx) > MAX_TRAIN_ROWS:
        train_idx = np.sort(rng.choice(train_idx, MAX_TRAIN_ROWS, replace=False))
    model = train(feats[train_idx], y[train_idx])
    names = FEATURE_NAMES if k == N_FEATURES else window_feature_names(k)
    plan = compile_plan(model, precision="fp32", device="cpu", input_features=names)
    with torch.no_grad():
        out = model(torch.from_numpy(feats[is_test].astype(np.float32))).numpy()[:, 0]
    corr = float(np.corrcoef(out, y[is_test])[0, 1])
    strong = np.abs(out) >= 0.2
    hit = float((np.sign(out[strong]) == np.sign(y[is_test][strong])).mean()) if strong.any() else 0
    plan.save(args.out)
    print(
        f"demo model -> {args.out}: {len(train_idx)} train rows, {int(is_test.sum())} test rows, "
        f"out-of-sample corr {corr:.3f}, hit rate at |score|>=0.2 {hit:.3f} "
        f"({int(strong.sum())} signals), version {plan.version}, "
        f"{time.perf_counter() - t0:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
