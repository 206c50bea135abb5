"""Plain-Python reference of the feature kernel (kernels/features.py), written from the
definitions in FEATURE_NAMES with one dict of state per instrument: what the compiled kernel is
tested against (to float tolerance: the kernel decays by whole powers of one exp)."""

from __future__ import annotations

import math

import numpy as np

from redline.feeds.events import Side
from redline.kernels.feature_names import N_FEATURES
from redline.kernels.features import EMA_HALF_LIVES_NS, FLOW_HALF_LIVES_NS, RV_HALF_LIVES_NS


def features_ref(
    quotes: np.ndarray,
    quote_rows: np.ndarray,
    trades: np.ndarray,
    trade_rows: np.ndarray,
    tick_sizes: list[float] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Plain-Python reference of `FeatureState(tick_sizes).scan(...)`, written from the
    definitions in FEATURE_NAMES, one dict of state per instrument."""
    fresh = {"t": None, "tq": None, "mid": None, "ema": [0.0] * 4, "rv": [0.0, 0.0],
             "fs": [0.0, 0.0], "fa": [0.0, 0.0], "ret": 0.0, "imb": 0.0, "micro": 0.0,
             "spread": 0.0, "tvm": 0.0, "qdt": 0.0}  # fmt: skip
    states = [dict(fresh) for _ in tick_sizes]  # values are replaced, never mutated
    events = [(int(q["ts_recv"]), 0, j) for j, q in enumerate(quotes)]
    events += [(int(t["ts_recv"]), 1, j) for j, t in enumerate(trades)]
    events.sort(key=lambda e: e[0])  # stable: quotes before trades on ties
    outq = np.zeros((len(quotes), N_FEATURES), np.float32)
    outt = np.zeros((len(trades), N_FEATURES), np.float32)

    def decay(hl: float, dt: float) -> float:
        return math.exp(-dt * math.log(2.0) / hl)

    for _, kind, j in events:
        rec = quotes[j] if kind == 0 else trades[j]
        s = states[int(quote_rows[j] if kind == 0 else trade_rows[j])]
        tick = float(tick_sizes[int(quote_rows[j] if kind == 0 else trade_rows[j])])
        ts = int(rec["ts_event"])
        if kind == 0:
            valid = 0 < rec["bid_px"] <= rec["ask_px"] and rec["bid_sz"] >= 0 <= rec["ask_sz"]
        else:
            valid = rec["px"] > 0 and rec["sz"] >= 0
        if valid:
            dt = 0.0 if s["t"] is None else float(max(ts - s["t"], 0))
            s["t"] = ts if s["t"] is None else max(ts, s["t"])
            if s["mid"] is not None:
                s["ema"] = [s["mid"] + decay(hl, dt) * (e - s["mid"]) for hl, e in zip(EMA_HALF_LIVES_NS, s["ema"], strict=True)]  # fmt: skip
            s["rv"] = [v * decay(hl, dt) for hl, v in zip(RV_HALF_LIVES_NS, s["rv"], strict=True)]
            s["fs"] = [v * decay(hl, dt) for hl, v in zip(FLOW_HALF_LIVES_NS, s["fs"], strict=True)]
            s["fa"] = [v * decay(hl, dt) for hl, v in zip(FLOW_HALF_LIVES_NS, s["fa"], strict=True)]
        if valid and kind == 0:
            bid, ask = int(rec["bid_px"]) * tick, int(rec["ask_px"]) * tick
            bsz, asz = int(rec["bid_sz"]), int(rec["ask_sz"])
            mid = (bid + ask) / 2
            if s["mid"] is None:
                s["ema"] = [mid] * 4
            else:
                s["ret"] = 1e4 * math.log(mid / s["mid"])
                s["rv"] = [v + s["ret"] ** 2 for v in s["rv"]]
                s["qdt"] = math.log1p(max(ts - s["tq"], 0) / 1e6)
            s["mid"], s["tq"] = mid, ts
            s["imb"] = (bsz - asz) / (bsz + asz) if bsz + asz else 0.0
            micro = (bid * asz + ask * bsz) / (bsz + asz) if bsz + asz else mid
            s["micro"] = (micro - mid) / (ask - bid) if ask > bid else 0.0
            s["spread"] = 1e4 * (ask - bid) / mid
        elif valid:
            px, sz, aggressor = int(rec["px"]) * tick, int(rec["sz"]), int(rec["aggressor"])
            if aggressor in (Side.BID, Side.ASK):
                sign = 1.0 if aggressor == Side.BID else -1.0
            elif s["mid"] is not None:
                sign = float(np.sign(px - s["mid"]))
            else:
                sign = 0.0
            s["fs"] = [v + sign * sz for v in s["fs"]]
            s["fa"] = [v + sz for v in s["fa"]]
            if s["mid"] is not None:
                s["tvm"] = 1e4 * math.log(px / s["mid"])
        has = s["mid"] is not None
        vec = [1e4 * math.log(s["mid"] / e) if has else 0.0 for e in s["ema"]]
        vec += [s["ret"]] + [math.sqrt(v) for v in s["rv"]]
        vec += [s["imb"], s["micro"], s["spread"]]
        vec += [fs / fa if fa > 0 else 0.0 for fs, fa in zip(s["fs"], s["fa"], strict=True)]
        vec += [s["tvm"], s["qdt"]]
        (outq if kind == 0 else outt)[j] = vec
    return outq, outt
