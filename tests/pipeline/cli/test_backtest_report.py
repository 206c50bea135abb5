"""The backtest report's figures: position as the strategy heard it, and drawdown."""

import numpy as np

from redline.pipeline.cli.backtest_report import drawdown, position_steps
from redline.venue.orders import EXECUTION_DTYPE, Status


def test_position_counts_each_fill_at_its_last_ack_and_says_what_was_never_heard():
    ex = np.zeros(5, EXECUTION_DTYPE)
    ex["ts_ack"] = [300, 100, 0, 200, 400]
    ex["qty"] = [-2, 3, 1, 0, 1]  # the third filled but its ack never came; the fourth refused
    ex["status"] = [Status.FILLED, Status.FILLED, Status.FILLED, Status.MAX_POSITION,
                    Status.RESTING]  # fmt: skip
    ts, pos, unheard = position_steps(ex)
    assert ts.tolist() == [100, 300, 400] and pos.tolist() == [3, 1, 2] and unheard == 1


def test_drawdown_is_equity_below_its_running_peak():
    eq = np.array([0.0, 5.0, 3.0, 6.0, 1.0, 7.0])
    assert drawdown(eq).tolist() == [0.0, 0.0, -2.0, 0.0, -5.0, 0.0]
    assert drawdown(np.zeros(0)).size == 0
