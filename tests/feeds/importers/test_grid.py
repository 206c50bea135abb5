from decimal import Decimal

import numpy as np
import pytest

from redline.feeds.importers import grid as gr


def test_the_tick_is_the_gcd_of_the_prices_never_the_printed_decimals():
    # 61800.20, 61800.30, 61799.90 printed with 2 decimals; all are multiples of 0.10
    mant = np.array([6180020, 6180030, 6179990, 618001], np.int64)
    dec = np.array([2, 2, 2, 1], np.int64)
    g = gr.inferred(mant, dec)
    assert (g.decimals, g.step, g.size) == (2, 10, Decimal("0.1"))
    assert g.steps(mant, dec).tolist() == [618002, 618003, 617999, 618001]


def test_zeros_do_not_shrink_the_grid_and_all_zero_is_step_one():
    assert gr.common_step(np.array([0, 50, 150], np.int64)) == 50
    assert gr.common_step(np.array([0, 0], np.int64)) == 1


def test_a_given_step_is_checked_against_every_value():
    mant = np.array([6180020, 6180030], np.int64)
    dec = np.array([2, 2], np.int64)
    g = gr.given(Decimal("0.10"), mant, dec, "cap: BTCUSDT price")
    assert (g.step, g.size) == (10, Decimal("0.1"))
    # a finer step than the decimals printed widens the scale, exactly
    assert gr.given(Decimal("0.001"), mant, dec, "x").steps(mant, dec).tolist() == [
        61800200,
        61800300,
    ]
    with pytest.raises(
        ValueError, match=r"cap: BTCUSDT price: 61800.30 is not a multiple of 0.2 \(1 values"
    ):
        gr.given(Decimal("0.2"), mant, dec, "cap: BTCUSDT price")
