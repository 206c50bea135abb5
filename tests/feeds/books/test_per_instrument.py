import numpy as np
import pytest

from redline.feeds import events as ev
from redline.feeds.books.l2 import L2Book
from redline.feeds.books.l3 import L3Book
from redline.feeds.books.per_instrument import Books
from redline.feeds.events import BookAction, Flag, Side


def deltas(rows):
    """rows of (instrument_id, side, action, px, sz, order_id)"""
    d = ev.empty(ev.RecordType.BOOK_DELTA, len(rows))
    for i, r in enumerate(rows):
        rec = d[i]
        rec["instrument_id"], rec["side"], rec["action"], rec["px"], rec["sz"], rec["order_id"] = r
        rec["flags"] = Flag.LAST
    return d


def test_mixed_stream_goes_to_one_book_per_instrument_in_order():
    d = deltas(
        [
            (7, Side.BID, BookAction.ADD, 100, 5, 0),  # L2 instrument 7
            (9, Side.ASK, BookAction.ADD, 205, 2, 11),  # L3 instrument 9
            (7, Side.ASK, BookAction.ADD, 101, 4, 0),
            (9, Side.ASK, BookAction.ADD, 204, 1, 12),
            (7, Side.BID, BookAction.DELETE, 100, 0, 0),
            (9, Side.ASK, BookAction.DELETE, 204, 0, 12),
        ]
    )
    books = Books()
    top = books.apply(d)
    assert isinstance(books[7], L2Book) and isinstance(books[9], L3Book)
    assert top[["bid_px", "ask_px", "ask_sz"]].tolist()[2:] == [
        (100, 101, 4),  # instrument 7 after its second delta
        (ev.UNDEF_PX, 204, 1),  # instrument 9: order 12 improved the ask
        (ev.UNDEF_PX, 101, 4),
        (ev.UNDEF_PX, 205, 2),
    ]
    # the same deltas one instrument at a time give the same books
    for iid in (7, 9):
        alone = (L3Book if iid == 9 else L2Book)(iid)
        alone.apply(d[d["instrument_id"] == iid])
        assert alone.best() == books[iid].best()
    with pytest.raises(KeyError, match="no book for instrument 3"):
        books[3]
    one = books.apply(deltas([(7, Side.BID, BookAction.ADD, 99, 1, 0)]))
    assert one[["bid_px", "ask_px"]].tolist() == [(99, 101)]
    assert len(books) == 2 and 7 in books


def test_wrong_records_are_refused():
    with pytest.raises(TypeError, match="BOOK_DELTA"):
        Books().apply(np.zeros(2, ev.QUOTE_DTYPE))
