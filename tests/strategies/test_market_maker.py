"""market_maker's quotes by hand: microprice, spread, inventory skew and limits, the touch."""

import numpy as np
import pytest

from redline.strategies import market_maker as mm


def quotes(bid, ask, bsz, asz, position, **params):
    p = mm.Params(**params)
    row = mm.new_state(p, 1)[0]
    mm.quote(row, p.vector(), bid, ask, bsz, asz, position)
    return row[: mm.COUNT].tolist()


def test_quotes_around_the_microprice_skewed_by_inventory():
    # microprice (100 * 3 + 104 * 1) / 4 = 101: bid 101 - 1, ask 101 + 1
    assert quotes(100, 104, 1, 3, 0) == [100, 1, 102, 1]
    # long 2 at skew 0.5: fair 100 -> bid 99, ask 101
    assert quotes(100, 104, 1, 3, 2) == [99, 1, 101, 1]
    # a half spread under a tick still rounds outward: floor(100.6) = 100, ceil(101.4) = 102
    assert quotes(100, 104, 1, 3, 0, half_spread=0.4) == [100, 1, 102, 1]


def test_never_through_the_touch_and_no_side_past_the_inventory_limit():
    # short 4 at skew 1: fair 105 would bid 104 = the ask: held one below it, at 103
    assert quotes(100, 104, 1, 3, -4, skew=1.0) == [103, 1, 106, 1]
    assert quotes(100, 104, 1, 3, 5, max_inventory=5)[1] == 0  # stops bidding at +5
    assert quotes(100, 104, 1, 3, -5, max_inventory=5)[3] == 0  # stops offering at -5


def test_params_are_checked():
    with pytest.raises(ValueError, match="half_spread"):
        mm.Params(half_spread=-1.0)
    assert mm.Params().vector().dtype == np.float64


def test_with_every_it_requotes_on_every_kth_update_only():
    p = mm.Params(every=3)
    row = mm.new_state(p, 1)[0]
    wanted = []
    for bid in (100, 101, 102, 103):  # updates 1 and 4 requote; 2 and 3 keep the first quotes
        mm.quote(row, p.vector(), bid, bid + 4, 1, 1, 0)
        wanted.append(row[mm.BID_PX])
    assert wanted == [101, 101, 101, 104]
