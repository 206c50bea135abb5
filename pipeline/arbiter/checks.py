"""Whether an answer may become a decision, and whether two answers agree: one rule each,
vectorised, for a single answer and a batch alike.

- valid: every output finite and inside the declared range [out_low, out_high] (two
  reductions per row: NaN fails every comparison, so min/max carry it);
- agree: |a - b| <= atol + rtol * |b| everywhere (np.allclose's rule, ~10x cheaper here).
"""

from __future__ import annotations

import numpy as np


class AnswerCheck:
    __slots__ = ("atol", "high", "low", "n_out", "rtol")

    def __init__(self, n_out: int, low: float, high: float, rtol: float, atol: float) -> None:
        self.n_out = n_out
        self.low, self.high = low, high
        self.rtol, self.atol = rtol, atol

    def valid(self, outs: np.ndarray) -> np.ndarray:
        """outs [k, N] -> bool [k]."""
        lo, hi = outs.min(axis=1), outs.max(axis=1)
        return np.isfinite(lo) & np.isfinite(hi) & (lo >= self.low) & (hi <= self.high)

    def agree(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """a, b [k, N] -> bool [k]: a agrees with b (b is the reference)."""
        excess = np.abs(a - b) - self.rtol * np.abs(b)
        return excess.max(axis=1) <= self.atol

    def valid_one(self, out: np.ndarray) -> bool:
        """One answer [N]; a wrong number of outputs is invalid too."""
        return out.size == self.n_out and bool(self.valid(out.reshape(1, -1))[0])

    def agree_one(self, a: np.ndarray, b: np.ndarray) -> bool:
        return bool(self.agree(a.reshape(1, -1), b.reshape(1, -1))[0])
