"""The names of the inputs each feature state feeds a model, importable without numba.

A plan's manifest lists the inputs its model was trained on (`input_features`); the loader
compares them with these names before a worker starts (kernels/plans/inputs.py), so a model
trained on other features is refused instead of run. `kernels/features.py` computes the kernel
features in FEATURE_NAMES order, `kernels/book_features.py` the book features in
BOOK_FEATURE_NAMES order; `kernels/feature_state.py` keeps the event window.
"""

from __future__ import annotations

# The model input of the graph's demo model, in this order. All are scale-free
# and O(1)-O(100), so one fp32 MLP sees every instrument alike.
FEATURE_NAMES: tuple[str, ...] = (
    "mid_vs_ema_100ms_bp",  # 1e4 * log(mid / EMA of mid), per half-life
    "mid_vs_ema_1s_bp",
    "mid_vs_ema_10s_bp",
    "mid_vs_ema_60s_bp",
    "ret_bp",  # 1e4 * log return of mid at the last quote
    "rv_1s_bp",  # realised volatility: sqrt(decayed sum of ret_bp^2)
    "rv_10s_bp",
    "imbalance",  # (bid_sz - ask_sz) / (bid_sz + ask_sz), in [-1, 1]
    "micro_vs_mid",  # (microprice - mid) / spread, in [-0.5, 0.5]
    "spread_bp",  # 1e4 * (ask - bid) / mid
    "flow_1s",  # decayed signed trade size / decayed |size|, in [-1, 1]
    "flow_10s",
    "trade_vs_mid_bp",  # 1e4 * log(last trade px / mid then)
    "log_quote_dt_ms",  # log1p(ms since the previous quote)
)
N_FEATURES = len(FEATURE_NAMES)

BOOK_LEVELS = 5  # levels per side the book features read: past the touch, within reach

# What the resident L2 book adds (kernels/book_features.py), in this order. The touch is the
# book's own best bid and ask; "lots" are the levels' sizes.
BOOK_FEATURE_NAMES: tuple[str, ...] = (
    "book_imbalance_5",  # (bid lots - ask lots) / (bid lots + ask lots), best 5 levels each side
    "book_micro_vs_mid_5",  # (microprice of the 5 levels' average prices - mid) / spread
    "book_log_depth_5",  # log1p(lots in the best 5 levels of both sides)
    "book_spread_ticks",  # best ask - best bid, in ticks
)
N_BOOK_FEATURES = len(BOOK_FEATURE_NAMES)

# The inputs of a book-featured model: the kernel features, then the book features.
BOOK_INPUT_NAMES: tuple[str, ...] = FEATURE_NAMES + BOOK_FEATURE_NAMES

VALUES_PER_EVENT = 4  # an event window holds four payload numbers per event


def window_feature_names(k: int) -> tuple[str, ...]:
    """Names of a k-wide event window (k a multiple of 4): event 0 is the newest, values 0-3
    the event's four payload numbers (feature_state.FIELDS: QUOTE bid/ask px/sz, ...)."""
    if k < VALUES_PER_EVENT or k % VALUES_PER_EVENT:
        raise ValueError(f"an event window is a multiple of {VALUES_PER_EVENT} wide, not {k}")
    return tuple(
        f"event{i}_value{j}" for i in range(k // VALUES_PER_EVENT) for j in range(VALUES_PER_EVENT)
    )
