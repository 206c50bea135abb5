"""The L2 venue over a real capture (../shared/realdata's Binance ETHUSDT, imported; skipped
where it is absent): the market maker's fills add up, and a faster queue model fills more."""

import numpy as np
import pytest

from redline.feeds.books.l2 import L2Book
from redline.feeds.events import BOOK_DELTA_DTYPE, RecordType
from redline.feeds.importers.detect import import_files
from redline.feeds.realdata import realdata_dir
from redline.feeds.replay.reader import replay
from redline.strategies import market_maker
from redline.venue.l2_backtest import L2Backtest
from redline.venue.latency import Latency
from redline.venue.orders import Status

CAPTURE = realdata_dir() / "binance" / "ethusdt_20240808.gz" if realdata_dir() else None


@pytest.fixture(scope="module")
def eth(tmp_path_factory):
    if CAPTURE is None or not CAPTURE.is_file():
        pytest.skip("no ../shared/realdata")
    out = tmp_path_factory.mktemp("eth") / "eth"
    import_files([CAPTURE], None).write(out, False)
    kinds = (RecordType.BOOK_DELTA, RecordType.TRADE)
    return [np.array(r) for t, r in replay([out], batch_rows=1 << 18) if t in kinds]


def run(batches, queue):
    ids = sorted({int(i) for b in batches for i in np.unique(b["instrument_id"])})
    bt = L2Backtest("market_maker", market_maker.Params(), Latency(entry_us=200, ack_us=200),
                    ids, queue=queue)  # fmt: skip
    for b in batches:
        bt.feed(b)
    return bt.finish(), bt.venue


def test_market_maker_on_a_real_l2_capture(eth):
    (averse, averse_venue), (power, _) = run(eth, "risk_averse"), run(eth, "power")
    for r in (averse, power):
        ex, f = r.executions, r.figures
        assert f["events"] == sum(len(b) for b in eth)
        assert f["fills"] > 100
        # far levels (Binance sends bids down to a fraction of the mid) are counted, left out
        assert 0 < f["levels_outside_window"] < 0.1 * f["events"]
        assert sum(f["position"].values()) == int(ex["qty"].sum())  # every fill reached it
        assert (np.abs(ex["qty"]) <= np.abs(ex["qty_ordered"])).all()
        filled = ex["qty"] != 0
        # a resting fill is at the order's own price, never better
        assert (ex["px"][filled] == ex["limit_px"][filled]).all()
        assert not (ex["status"] == Status.POST_ONLY_CROSSED).all()
    # cancels ahead of us advance the probabilistic queue only: it fills more
    assert power.figures["fills"] > averse.figures["fills"]
    # the venue's touch at the end is the recorded book's (feeds/books/l2.py)
    book = L2Book(eth[0]["instrument_id"][0])
    for b in eth:
        if b.dtype == BOOK_DELTA_DTYPE:
            book.apply(b)
    bid, _, ask, _ = book.best()
    v = averse_venue.book[0]
    assert (v[0], v[1]) == (bid, ask)
