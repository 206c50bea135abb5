"""The replay ring: what a restarted worker is rebuilt from."""

from __future__ import annotations

import numpy as np
import pytest

from redline.feeds.events import QUOTE_DTYPE, TRADE_DTYPE, RecordType
from redline.feeds.wire.frames import record_view
from redline.pipeline.arbiter.event_ring import EventRing


def test_since_returns_events_after_in_order_across_wraparound():
    ring = EventRing(4)
    for no in range(1, 7):
        rec = np.zeros((), TRADE_DTYPE if no % 2 else QUOTE_DTYPE)
        rec["seq"] = 100 + no
        ring.push(no, RecordType.TRADE if no % 2 else RecordType.QUOTE, rec)
    assert ring.first == 3
    rtypes, nos, slots = ring.since(3)
    assert nos.tolist() == [4, 5, 6]
    assert [int(record_view(rt, s)["seq"][0]) for rt, s in zip(rtypes, slots, strict=True)] == [
        104,
        105,
        106,
    ]
    assert rtypes.tolist() == [RecordType.QUOTE, RecordType.TRADE, RecordType.QUOTE]
    assert len(ring.since(6)[1]) == 0
    assert ring.since(2)[1].tolist() == [3, 4, 5, 6]
    with pytest.raises(LookupError, match=r"events 2\.\.2 were overwritten"):
        ring.since(1)


def test_push_out_of_order_is_refused():
    ring = EventRing(4)
    with pytest.raises(ValueError, match="event 2 after 0"):
        ring.push(2, RecordType.QUOTE, np.zeros((), QUOTE_DTYPE))


def test_push_many_stores_a_batch_like_pushes_one_by_one_across_wraparound():
    one, many = EventRing(5), EventRing(5)
    recs = np.zeros(8, QUOTE_DTYPE)
    recs["seq"] = np.arange(100, 108)
    one.push(1, RecordType.TRADE, np.zeros((), TRADE_DTYPE))
    many.push(1, RecordType.TRADE, np.zeros((), TRADE_DTYPE))
    for no, rec in enumerate(recs[:6], start=2):
        one.push(no, RecordType.QUOTE, rec)
    many.push_many(2, RecordType.QUOTE, recs[:6].view(np.uint8).reshape(6, -1))
    assert one.last == many.last == 7 and one.first == many.first == 3
    for a, b in zip(one.since(2), many.since(2), strict=True):
        np.testing.assert_array_equal(a[:, : QUOTE_DTYPE.itemsize] if a.ndim == 2 else a,
                                      b[:, : QUOTE_DTYPE.itemsize] if b.ndim == 2 else b)  # fmt: skip
    # more than the ring holds: only the newest are kept
    many.push_many(8, RecordType.QUOTE, np.repeat(recs[:1].view(np.uint8).reshape(1, -1), 7, 0))
    assert many.last == 14 and many.since(9)[1].tolist() == [10, 11, 12, 13, 14]
    with pytest.raises(ValueError, match="expected \\+1"):
        many.push_many(20, RecordType.QUOTE, recs[:1].view(np.uint8).reshape(1, -1))
