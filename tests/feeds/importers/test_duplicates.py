import numpy as np

from redline.feeds import events as ev
from redline.feeds.importers.duplicates import drop_repeats


def trades(rows: list[tuple[int, int, int, int]]) -> np.ndarray:
    """(ts_recv, seq, px, sz) per trade."""
    t = ev.empty(ev.RecordType.TRADE, len(rows))
    for name, col in zip(("ts_recv", "seq", "px", "sz"), zip(*rows, strict=True), strict=True):
        t[name] = col
    return t


def rows(t: np.ndarray) -> list[tuple[int, int, int, int]]:
    return list(zip(*(t[n].tolist() for n in ("ts_recv", "seq", "px", "sz")), strict=True))


def test_a_later_part_loses_what_an_earlier_part_holds_and_the_drops_are_counted():
    first = trades([(20, 2, 100, 2), (20, 2, 99, 1), (40, 4, 101, 2)])
    later = trades(
        [(10, 1, 98, 1), (20, 2, 100, 2), (20, 2, 99, 1), (20, 2, 99, 3), (40, 4, 101, 2)]
    )
    (a, b), dropped = drop_repeats([first, later])
    assert rows(a) == rows(first)
    # same packet and seq but another size is another trade: kept
    assert rows(b) == [(10, 1, 98, 1), (20, 2, 99, 3)]
    assert dropped == [0, 3]


def test_equal_records_within_one_part_are_the_venues_and_all_kept():
    twice = trades([(20, 2, 100, 1), (20, 2, 100, 1)])
    (kept,), dropped = drop_repeats([twice])
    assert len(kept) == 2 and dropped == [0]
    # a later part's k-th copy goes only when the earlier part holds more than k
    (_, b), dropped = drop_repeats([trades([(20, 2, 100, 1)]), twice])
    assert len(b) == 1 and dropped == [0, 1]


def test_padding_bytes_do_not_make_equal_records_differ():
    a = trades([(20, 2, 100, 2)])
    b = a.copy()
    raw = b.view(np.uint8)
    raw[-1] = 0x76  # the 7 padding bytes after `aggressor`: garbage after some numpy copies
    assert a.tobytes() != b.tobytes()
    (_, kept), dropped = drop_repeats([a, b])
    assert len(kept) == 0 and dropped == [0, 1]


def test_parts_of_windows_that_do_not_overlap_keep_everything():
    (a, b), dropped = drop_repeats([trades([(10, 1, 1, 1)]), trades([(30, 1, 1, 1)])])
    assert (len(a), len(b), dropped) == (1, 1, [0, 0])
