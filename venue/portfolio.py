"""What a backtest made: PnL, fees, risk figures and the per-order log's fingerprint.

Money is the quote currency where the instrument table gives tick size and multiplier (one
tick of one lot is worth `tick_size * multiplier`), else ticks. An inverse contract (COIN-M:
priced in USD, settled in the coin) is worth `face / price` coins a lot, so its PnL in the
base currency is qty * face * (1/entry - 1/exit): it is given by a negative value per tick,
-face / tick_size, and `paid`, `mark` and `notional` price both kinds. Sharpe is the mean over the
standard deviation of the equity's change per bar, annualised over a 24-hour, 365-day year
(crypto's calendar; scale by sqrt(252 * 6.5 / 24 / 365) for an exchange's session hours).
"""

from __future__ import annotations

import hashlib
import math

import numba as nb
import numpy as np

from redline.venue.orders import EXECUTION_DTYPE, REFUSED

YEAR_NS = 365 * 24 * 3600 * 1_000_000_000


@nb.njit(cache=True, inline="always")
def paid(f, px, v) -> float:
    """Money paid for `f` signed lots at `px` ticks (< 0: received). `v`: value of a tick of
    a lot (> 0), or -face / tick_size for an inverse contract (a lot costs face / price)."""
    return f * px * v if v > 0 else f * v / px


@nb.njit(cache=True, inline="always")
def mark(pos, mid, v) -> float:
    """What `pos` lots are worth at `mid` ticks: minus what buying them there would cost."""
    return -paid(-pos, mid, v)


@nb.njit(cache=True, inline="always")
def notional(f, px, v) -> float:
    """|money| that `f` lots at `px` move: fees and the per-order limit are on it."""
    return abs(paid(f, px, v))


def summary(executions: np.ndarray, bars_ts: np.ndarray, bars_eq: np.ndarray, final_equity: float,
            value: dict[int, float], bar_ns: int) -> dict:  # fmt: skip
    """Figures over the whole run from its executions and equity bars."""
    sent = executions[executions["status"] < REFUSED]  # refused orders never left
    filled = sent["qty"] != 0
    qty = np.abs(executions["qty"]).astype(np.float64)
    ids = np.array(sorted(value), np.int64)  # every instrument in the log is in `value`
    per_tick = np.array([value[int(i)] for i in ids], np.float64)[
        np.searchsorted(ids, executions["instrument_id"])
    ]
    curve = np.append(bars_eq, final_equity)
    returns = np.diff(curve)
    sd = float(returns.std()) if len(returns) > 1 else 0.0
    sharpe = float(returns.mean()) / sd * math.sqrt(YEAR_NS / bar_ns) if sd > 0 else float("nan")
    drawdown = float((np.maximum.accumulate(curve) - curve).max()) if len(curve) else 0.0
    ordered = float(np.abs(sent["qty_ordered"]).sum())
    return {
        "pnl": final_equity,
        "fees": float(executions["fee"].sum()),
        "sharpe": sharpe,
        "max_drawdown": drawdown,
        "turnover": _turnover(qty, executions["px"], per_tick),
        "fill_ratio": float(qty.sum() / ordered) if ordered else float("nan"),
        "orders": len(sent),
        "fills": int(filled.sum()),
        "journal_sha256": journal_sha256(executions),
    }


def _turnover(qty: np.ndarray, px: np.ndarray, per_tick: np.ndarray) -> float:
    """Money traded: price * value of a tick, or face / price for an inverse contract."""
    inverse = per_tick < 0
    filled = px > 0
    each = np.where(inverse, -per_tick / np.where(filled, px, 1.0), px * per_tick)
    return float((qty * np.where(filled, each, 0.0)).sum())


def journal_sha256(executions: np.ndarray) -> str:
    """The per-order log's fingerprint: every stamp in it is data time, none wall clock, so
    two runs (or two replay modes) that decided and filled alike give the same hash."""
    return hashlib.sha256(np.ascontiguousarray(executions, EXECUTION_DTYPE).tobytes()).hexdigest()
