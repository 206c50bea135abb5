"""The L1 venue's matching, one order at a time against a book set by hand."""

import numpy as np

from redline.venue import l1


def book(bid=100, ask=102, bsz=3, asz=5):
    b = np.zeros((1, 5), np.int64)
    b[0, l1.BID], b[0, l1.ASK], b[0, l1.BSZ], b[0, l1.ASZ], b[0, l1.HAS] = bid, ask, bsz, asz, 1
    return b


def match(b, qty_list, fee_rate=0.0, value=2.0):
    """Orders for instrument 0 matched in turn against the same book; their rows and cash."""
    n = len(qty_list)
    ex, fee, inst = np.zeros((n, 7), np.int64), np.zeros(n), np.zeros(n, np.int64)
    ex[:, 4] = qty_list
    pos, cash, fees = np.zeros(1, np.int64), np.zeros(1), np.zeros(1)
    for k in range(n):
        l1._match(k, 7, b, pos, cash, fees, np.array([value]), fee_rate, ex, fee, inst)
    return ex, fee, pos, cash


def test_the_same_liquidity_never_fills_two_orders():
    b = book(asz=5)
    ex, _, pos, _ = match(b, [3, 4, 1])
    assert ex[:, 5].tolist() == [3, 2, 0]  # 5 lots shown: 3, then the 2 left, then none
    assert ex[:, 6].tolist() == [102, 102, 0] and pos[0] == 5
    assert b[0, l1.ASZ] == 0  # until the next quote shows the level again


def test_a_sell_takes_the_bid_and_cash_and_fees_follow_the_value_of_a_tick():
    ex, fee, pos, cash = match(book(), [-2], fee_rate=0.001, value=2.0)
    assert (ex[0, 5], ex[0, 6], ex[0, 1]) == (-2, 100, 7)
    assert fee[0] == 2 * 100 * 2.0 * 0.001
    assert cash[0] == 2 * 100 * 2.0 - fee[0] and pos[0] == -2


def test_no_fill_without_a_quote():
    b = book()
    b[0, l1.HAS] = 0
    ex, _, pos, cash = match(b, [1])
    assert ex[0, 5] == 0 and pos[0] == 0 and cash[0] == 0.0
