"""The replay ring: what a restarted worker is rebuilt from."""

from __future__ import annotations

import numpy as np
import pytest

from redline.feeds.events import QUOTE_DTYPE, TRADE_DTYPE, RecordType
from redline.pipeline.event_ring import EventRing
from redline.pipeline.worker_protocol import record_view


def test_since_returns_events_after_in_order_across_wraparound():
    ring = EventRing(4)
    for no in range(1, 7):
        rec = np.zeros((), TRADE_DTYPE if no % 2 else QUOTE_DTYPE)
        rec["seq"] = 100 + no
        ring.push(no, RecordType.TRADE if no % 2 else RecordType.QUOTE, rec)
    assert ring.first == 3
    rtypes, nos, slots = ring.since(3)
    assert nos.tolist() == [4, 5, 6]
    assert [int(record_view(rt, s)["seq"]) for rt, s in zip(rtypes, slots, strict=True)] == [
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
