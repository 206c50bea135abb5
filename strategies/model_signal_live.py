"""`model_signal` live: the workers' predictions written into the state its compiled step reads.

In fast replay `model_signal.bind` computes every prediction before the run and lays them in
each instrument's state row ([cursor, side, count, predictions...]). Live, the prediction of a
quote arrives with the arbiter's answer, so before each batch of quotes is stepped, `LiveSignal`
writes that batch's predictions into the same rows (cursor back to 0, count = the instrument's
quotes in the batch, in batch order). The step is model_signal's own, unchanged: the k-th step
of an instrument within the batch reads its k-th prediction, as in replay.

A prediction of NaN (no model answer: the arbiter's safe default) keeps the side the strategy
had, since every comparison in the step is false for it: the safe default adds no new side.
"""

from __future__ import annotations

import numpy as np

from redline.strategies.model_signal import COUNT, CURSOR, HEAD, Params, step

__all__ = ["LiveSignal", "Params", "step"]


class LiveSignal:
    """model_signal with the strategy API (Params, new_state, step) and room for `width`
    predictions per instrument per batch; `write` lays in a batch's predictions."""

    Params = Params
    step = staticmethod(step)  # model_signal's compiled step itself: the one replay runs

    def __init__(self, width: int = 4096) -> None:
        if width <= 0:
            raise ValueError(f"model_signal live: width must be > 0, got {width}")
        self.width = width
        self.state: np.ndarray | None = None  # the rows the backtest's loop steps on

    def new_state(self, params: Params, n_instruments: int) -> np.ndarray:
        """Rows for `n_instruments`: model_signal's layout, predictions written per batch."""
        self.state = np.zeros((n_instruments, HEAD + self.width), np.float64)
        return self.state

    def write(self, rows: np.ndarray, predictions: np.ndarray) -> None:
        """Predictions (float64, NaN: none) of a batch of quotes whose dense instrument rows are
        `rows`, in step order; at most `width` quotes of one instrument per batch."""
        state = self.state
        assert state is not None, "new_state first"
        counts = np.bincount(rows, minlength=len(state))
        if counts.max(initial=0) > self.width:
            raise ValueError(
                f"model_signal live: {counts.max()} quotes of one instrument in a batch; "
                f"split batches to at most {self.width}"
            )
        order = np.argsort(rows, kind="stable")  # each instrument's quotes, in step order
        start = np.cumsum(counts) - counts
        k = np.empty(len(rows), np.int64)
        k[order] = np.arange(len(rows)) - np.repeat(start, counts)
        state[:, CURSOR] = 0.0
        state[:, COUNT] = counts
        state[rows, HEAD + k] = predictions
