"""What a backtest made: PnL, fees, risk figures and the per-order log's fingerprint.

Money is the quote currency where the instrument table gives tick size and multiplier (one
tick of one lot is worth `tick_size * multiplier`), else ticks. Sharpe is the mean over the
standard deviation of the equity's change per bar, annualised over a 24-hour, 365-day year
(crypto's calendar; scale by sqrt(252 * 6.5 / 24 / 365) for an exchange's session hours).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from redline.venue.orders import EXECUTION_DTYPE, REFUSED

YEAR_NS = 365 * 24 * 3600 * 1_000_000_000


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
        "turnover": float((qty * executions["px"] * per_tick).sum()),
        "fill_ratio": float(qty.sum() / ordered) if ordered else float("nan"),
        "orders": len(sent),
        "fills": int(filled.sum()),
        "journal_sha256": journal_sha256(executions),
    }


def journal_sha256(executions: np.ndarray) -> str:
    """The per-order log's fingerprint: every stamp in it is data time, none wall clock, so
    two runs (or two replay modes) that decided and filled alike give the same hash."""
    return hashlib.sha256(np.ascontiguousarray(executions, EXECUTION_DTYPE).tobytes()).hexdigest()
