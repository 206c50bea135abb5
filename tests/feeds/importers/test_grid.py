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


@pytest.mark.parametrize("seed", range(20))
def test_the_grid_of_several_arrays_is_the_grid_of_them_joined(seed):
    rng = np.random.default_rng(seed)
    step = int(rng.choice([1, 5, 25, 100]))  # 1: the scan stops early, at the first values
    arrays = []
    for _ in range(int(rng.integers(1, 4))):
        n = int(rng.integers(0, 40))
        mant = rng.integers(-(10**6), 10**6, n) * step
        mant[rng.random(n) < 0.2] = 0
        arrays.append((mant, rng.integers(0, 4, n)))
    joined = tuple(np.concatenate([a[i] for a in arrays]) for i in (0, 1))
    dec = int(joined[1].max(initial=0))
    by_numpy = gr.Grid(dec, gr.common_step(gr.scaled(*joined, dec)))
    assert gr.inferred_of(arrays) == gr.inferred(*joined) == by_numpy


def test_a_given_step_over_several_arrays_names_the_first_value_off_it_and_counts_all():
    a = (np.array([100, 260], np.int64), np.array([2, 2], np.int64))
    b = (np.array([125, 7], np.int64), np.array([2, 1], np.int64))
    with pytest.raises(ValueError, match=r"x: 2.60 is not a multiple of 0.5 \(3 values off it\)"):
        gr.given_of(Decimal("0.5"), [a, b], "x")
    assert gr.given_of(Decimal("0.05"), [a, b], "x") == gr.given(
        Decimal("0.05"), np.array([100, 260, 125, 7]), np.array([2, 2, 2, 1]), "x"
    )
