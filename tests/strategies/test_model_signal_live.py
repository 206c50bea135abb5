"""model_signal live: a batch's predictions laid into the rows its compiled step reads."""

import numpy as np
import pytest

from redline.strategies.model_signal import COUNT, CURSOR, HEAD, SIDE, Params
from redline.strategies.model_signal_live import LiveSignal


def test_each_instrument_reads_its_own_predictions_in_batch_order():
    live = LiveSignal(width=3)
    state = live.new_state(Params(), 2)
    state[0, SIDE] = 1.0  # the side a row had stays: only cursor, count and predictions move
    state[:, CURSOR] = 7.0
    live.write(np.array([0, 1, 0, 0]), np.array([0.1, 0.2, 0.3, 0.4]))
    assert state[:, CURSOR].tolist() == [0.0, 0.0] and state[:, COUNT].tolist() == [3.0, 1.0]
    assert state[0, HEAD : HEAD + 3].tolist() == [0.1, 0.3, 0.4]
    assert state[1, HEAD] == 0.2 and state[0, SIDE] == 1.0
    params = Params(enter=0.35, exit=0.15)
    p = params.vector()
    # the step reads them in order: 0.1 (flat band), 0.3 (keep), 0.4 (long)
    assert [live.step(state[0], p, 100, 101, 0) for _ in range(3)] == [0, 0, 1]
    assert live.step(state[0], p, 100, 101, 1) == 1  # past the batch: keeps what it has


def test_nan_keeps_the_side_and_an_overfull_batch_is_refused():
    live = LiveSignal(width=2)
    state = live.new_state(Params(), 1)
    state[0, SIDE] = -1.0
    live.write(np.array([0]), np.array([np.nan]))
    assert live.step(state[0], Params(qty=2).vector(), 100, 101, -2) == -2
    with pytest.raises(ValueError, match="3 quotes of one instrument in a batch"):
        live.write(np.array([0, 0, 0]), np.zeros(3))
