"""Calibration inputs: realistic feature vectors for the precision gate and tests.

Two sources, both run through `FeatureState.scan`, so a reduced-precision
model is judged on the value ranges the live graph feeds it, not on unit
Gaussians: the bundled recordings (`recorded_features`, what the demo graph
replays) and a small seeded synthetic market (`synthetic_market`: random-walk
mid in ticks, 1-2 tick spreads, skewed sizes, trades at the touch, bursts of
events at one timestamp; more volatile than the recordings), which tests use
because it is fast and self-contained.
"""

from __future__ import annotations

import functools

import numpy as np

from redline.feeds.events import QUOTE_DTYPE, TRADE_DTYPE
from redline.kernels.features import FeatureState

EPOCH_NS = 1_767_225_600_000_000_000  # 2026-01-01, a plausible ts range


def synthetic_market(
    n_quotes: int, n_trades: int, n_instruments: int = 2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(quotes, quote_rows, trades, trade_rows): QUOTE/TRADE records over ~n/1000 s,
    instrument rows 0..n_instruments-1, ts_recv 20 µs after ts_event."""
    rng = np.random.default_rng(seed)
    n = n_quotes + n_trades
    # Exponential gaps (mean 1 ms) with 10% zero gaps: simultaneous events happen.
    gaps = rng.exponential(1e6, n) * (rng.random(n) > 0.1)
    ts = EPOCH_NS + np.cumsum(gaps).astype(np.int64)
    is_quote = np.zeros(n, bool)
    is_quote[rng.choice(n, n_quotes, replace=False)] = True
    quotes = np.zeros(n_quotes, QUOTE_DTYPE)
    trades = np.zeros(n_trades, TRADE_DTYPE)
    quote_rows = rng.integers(0, n_instruments, n_quotes)
    trade_rows = rng.integers(0, n_instruments, n_trades)
    quotes["ts_event"] = ts[is_quote]
    trades["ts_event"] = ts[~is_quote]
    quotes["ts_recv"] = quotes["ts_event"] + 20_000
    trades["ts_recv"] = trades["ts_event"] + 20_000
    # Per-instrument random walk of the bid in ticks, around 10,000 ticks.
    bid = np.empty(n_quotes, np.int64)
    for r in range(n_instruments):
        sel = quote_rows == r
        bid[sel] = 10_000 + np.cumsum(rng.integers(-2, 3, sel.sum()))
    quotes["bid_px"] = bid
    quotes["ask_px"] = bid + 1 + (rng.random(n_quotes) < 0.3)
    quotes["bid_sz"] = rng.geometric(0.05, n_quotes)
    quotes["ask_sz"] = rng.geometric(0.05, n_quotes)
    quotes["seq"] = np.arange(n_quotes)
    touch = np.full(n_trades, 10_000, np.int64)
    for j, r in enumerate(trade_rows):  # a trade prints at its instrument's last bid or ask
        before = np.flatnonzero((quote_rows == r) & (quotes["ts_recv"] <= trades["ts_recv"][j]))
        if len(before):
            touch[j] = bid[before[-1]]
    trades["px"] = touch + rng.integers(0, 2, n_trades)
    trades["sz"] = rng.geometric(0.2, n_trades)
    trades["aggressor"] = rng.integers(0, 3, n_trades)
    trades["seq"] = np.arange(n_trades)
    return quotes, quote_rows, trades, trade_rows


def calibration_features(n: int = 512, seed: int = 0) -> np.ndarray:
    """float32 [n, N_FEATURES]: the features after each of n events of a synthetic market."""
    n_quotes = max(1, (n * 3) // 4)
    quotes, qrows, trades, trows = synthetic_market(n_quotes, n - n_quotes, seed=seed)
    fq, ft = FeatureState([0.01, 0.25]).scan(quotes, qrows, trades, trows)
    return np.concatenate([fq, ft])[np.random.default_rng(seed).permutation(n)]


def recorded_features(n: int = 2048, seed: int = 0) -> np.ndarray:
    """float32 [n, N_FEATURES]: see `_all_recorded_features`; sampled rows."""
    every = _all_recorded_features()
    if not 1 <= n <= len(every):
        raise ValueError(f"asked for {n} rows, the recordings hold {len(every)} events")
    return every[np.random.default_rng(seed).choice(len(every), n, replace=False)]


@functools.cache
def _all_recorded_features() -> np.ndarray:
    """Features after every event of the bundled recordings in `redline.replay_data`
    (all instruments, tick sizes from the bundled instrument table), read once."""
    import pyarrow.parquet as pq

    from redline.feeds.event_schema import from_arrow
    from redline.feeds.events import RecordType
    from redline.feeds.instruments import InstrumentTable
    from redline.replay_data import DIR

    paths = {n: DIR / f"market_{n}.parquet" for n in ("instruments", "quotes", "trades")}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"bundled recordings missing: {missing}; run `redline generate`")
    table = list(InstrumentTable.read(paths["instruments"]))
    ids = np.array([i.instrument_id for i in table])
    quotes = from_arrow(pq.read_table(paths["quotes"]), RecordType.QUOTE, str(paths["quotes"]))
    trades = from_arrow(pq.read_table(paths["trades"]), RecordType.TRADE, str(paths["trades"]))

    def rows(records: np.ndarray) -> np.ndarray:
        r = np.searchsorted(ids, records["instrument_id"])
        r = np.minimum(r, len(ids) - 1)
        if (ids[r] != records["instrument_id"]).any():
            raise ValueError("recordings hold an instrument missing from the instrument table")
        return r

    state = FeatureState([float(i.tick_size) for i in table])
    fq, ft = state.scan(quotes, rows(quotes), trades, rows(trades))
    every = np.concatenate([fq, ft])
    every.setflags(write=False)  # cached: shared by every caller
    return every
