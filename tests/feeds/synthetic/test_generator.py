"""The synthetic market recording: properties a replay, a book builder or a
strategy relies on, checked on a short generated sample and on the bundled files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow.parquet as pq
import pytest

from redline.feeds import event_schema as es
from redline.feeds import events as ev
from redline.feeds.synthetic import generator as syn
from redline.feeds.synthetic.book import DEPTH
from redline.feeds.synthetic.network import GENERATOR_KEY
from redline.replay_data import DIR as BUNDLED

# A short sample with a noisy wire: losses, late packets and stalls all show up
# in 20 s, so recovery paths are exercised, not just the calm ones.
NOISY = tuple(
    dataclasses.replace(
        s, link=dataclasses.replace(s.link, loss_rate=4e-3, late_rate=5e-3, stalls_per_s=1.0)
    )
    for s in syn.SPECS
)


@pytest.fixture(scope="module")
def market():
    _, recs = syn.generate_market(seed=11, minutes=1 / 3, specs=NOISY)
    return recs


@pytest.fixture(scope="module")
def books(market):
    """Rebuilt book states per instrument id (see `_rebuild`)."""
    return {
        s.instrument.instrument_id: _rebuild(
            _by_instrument(market["book"], s.instrument.instrument_id)
        )
        for s in NOISY
    }


def _by_instrument(recs, iid):
    sub = recs[recs["instrument_id"] == iid]
    return sub[np.argsort(sub["seq"], kind="stable")]


def _rebuild(book):
    """Dict-based L2 rebuild of one instrument's deltas (in seq order).

    Returns {ts_event: (top before the batch, top after, batch is a snapshot)}
    with top = (bid_px, ask_px, bid_sz, ask_sz), checking every batch's book."""
    sides = {ev.Side.BID: {}, ev.Side.ASK: {}}
    states, before, snapshot, first = {}, None, False, True
    for r in book:
        if first:
            before, first = _top(sides), False
        action = r["action"]
        if action == ev.BookAction.CLEAR:
            sides[ev.Side.BID].clear()
            sides[ev.Side.ASK].clear()
        elif action == ev.BookAction.DELETE:
            del sides[r["side"]][r["px"]]  # KeyError: delete of a level that is not there
        elif action == ev.BookAction.ADD:
            assert r["px"] not in sides[r["side"]], "ADD of an existing level"
            sides[r["side"]][r["px"]] = r["sz"]
        else:
            assert action == ev.BookAction.UPDATE and r["px"] in sides[r["side"]]
            sides[r["side"]][r["px"]] = r["sz"]
        snapshot = snapshot or bool(r["flags"] & ev.Flag.SNAPSHOT)
        if r["flags"] & ev.Flag.LAST:
            bids, asks = sides[ev.Side.BID], sides[ev.Side.ASK]
            assert len(bids) == len(asks) == DEPTH
            assert max(bids) < min(asks), "crossed book"
            assert min(bids.values()) > 0 and min(asks.values()) > 0
            states[int(r["ts_event"])] = (before, _top(sides), snapshot)
            snapshot, first = False, True
    return states


def _top(sides):
    bids, asks = sides[ev.Side.BID], sides[ev.Side.ASK]
    if not bids:
        return None
    b, a = max(bids), min(asks)
    return (b, a, bids[b], asks[a])


def test_book_deltas_rebuild_the_quote_stream_top_of_book(market, books):
    for spec in NOISY:
        iid = spec.instrument.instrument_id
        states = books[iid]
        quotes = _by_instrument(market["quotes"], iid)
        matched = 0
        for q in quotes:
            state = states.get(int(q["ts_event"]))
            if state is None:  # its book batch was lost on the wire
                continue
            assert state[1] == (q["bid_px"], q["ask_px"], q["bid_sz"], q["ask_sz"])
            matched += 1
        assert matched > 0.97 * len(quotes)
        # Every change of the top has its quote, bar the quotes lost on the wire.
        # (A loss at the very end leaves no later seq to show it: stop at the last quote.)
        last = quotes["ts_event"][-1]
        changed = {ts for ts, (b, a, snap) in states.items() if not snap and b != a and ts <= last}
        unquoted = len(changed - set(quotes["ts_event"].tolist()))
        lost_quotes = int(quotes["seq"][-1]) - len(quotes)
        assert unquoted <= lost_quotes
        assert len(changed) > 0.5 * len(quotes)


def test_trades_print_at_the_touch_on_the_aggressor_side(market, books):
    for spec in NOISY:
        iid = spec.instrument.instrument_id
        states = books[iid]
        trades = _by_instrument(market["trades"], iid)
        checked = 0
        for t in trades:
            state = states.get(int(t["ts_event"]))
            if state is None or state[2]:  # lost, or recovered by a snapshot
                continue
            bid, ask, bid_sz, ask_sz = state[0]
            if t["aggressor"] == ev.Side.BID:
                assert t["px"] == ask and 1 <= t["sz"] <= ask_sz
            else:
                assert t["aggressor"] == ev.Side.ASK
                assert t["px"] == bid and 1 <= t["sz"] <= bid_sz
            checked += 1
        assert checked > 0.9 * len(trades) > 0
        sides = np.bincount(trades["aggressor"], minlength=3)
        assert sides[1] > 0.2 * len(trades) and sides[2] > 0.2 * len(trades)


def test_quotes_never_cross_and_instruments_differ(market):
    q = market["quotes"]
    assert (q["bid_px"] < q["ask_px"]).all()
    assert (q["bid_sz"] > 0).all() and (q["ask_sz"] > 0).all()
    spread = {
        s.instrument.symbol: q["ask_px"][q["instrument_id"] == s.instrument.instrument_id]
        - q["bid_px"][q["instrument_id"] == s.instrument.instrument_id]
        for s in NOISY
    }
    assert np.median(spread["ESZ6"]) == 1 and np.median(spread["ETH-USD"]) >= 3
    counts = np.bincount(market["book"]["instrument_id"], minlength=5)[1:]
    assert counts[0] > 5 * counts[3]  # the future is far busier than the note
    # Prices stay on the instrument's grid near its start (a minute moves < 1%).
    for spec in NOISY:
        mid = (q["bid_px"] + q["ask_px"])[q["instrument_id"] == spec.instrument.instrument_id] / 2
        assert np.abs(mid / spec.book[0] - 1).max() < 0.01


def test_arrivals_are_bursty_not_poisson(market):
    book = market["book"]
    for spec in NOISY[:3]:
        iid = spec.instrument.instrument_id
        ts = np.unique(book["ts_event"][book["instrument_id"] == iid])  # one per arrival
        counts = np.bincount((ts - ts[0]) // 100_000_000)  # per 100 ms
        assert counts.var() / counts.mean() > 3.0  # Poisson: ~1


def test_spreads_widen_and_sizes_are_heavy_tailed(market):
    q, t = market["quotes"], market["trades"]
    for spec in NOISY[1:3]:
        iid = spec.instrument.instrument_id
        qi = q[q["instrument_id"] == iid]
        bucket = (qi["ts_event"] - qi["ts_event"][0]) // 250_000_000
        per_bucket = np.bincount(bucket)
        busy = per_bucket[bucket] >= np.quantile(per_bucket, 0.9)
        spread = (qi["ask_px"] - qi["bid_px"]).astype(float)
        assert spread[busy].mean() > 1.1 * spread[~busy].mean()
        sz = t["sz"][t["instrument_id"] == iid]
        assert np.quantile(sz, 0.99) > 5 * np.median(sz)


def test_latency_is_positive_with_jitter_and_spikes(market):
    for recs in market.values():
        lat = recs["ts_recv"] - recs["ts_event"]
        assert (lat > 0).all()
        for src in np.unique(recs["source_id"]):
            l_src = lat[recs["source_id"] == src]
            p50 = np.median(l_src)
            assert np.std(l_src) > 0.05 * p50
            if l_src.size > 1000:
                assert l_src.max() > 3 * p50  # stalls and late packets make a tail


def test_seq_gaps_are_flagged_and_late_packets_arrive_out_of_order(market):
    for recs in market.values():
        for src in np.unique(recs["source_id"]):
            s = recs[recs["source_id"] == src]
            by_seq = s[np.argsort(s["seq"], kind="stable")]
            assert (np.diff(by_seq["seq"].astype(np.int64)) > 0).all()  # unique seqs
            gap = np.r_[False, np.diff(by_seq["seq"].astype(np.int64)) > 1]
            np.testing.assert_array_equal(gap, by_seq["flags"] & ev.Flag.GAP_BEFORE > 0)
    book = market["book"]
    order = np.lexsort((book["seq"], book["source_id"], book["ts_recv"]))
    late = sum(
        int((np.diff(book["seq"][order][book["source_id"][order] == s].astype(np.int64)) < 0).sum())
        for s in np.unique(book["source_id"])
    )
    assert 0 < late < 0.02 * len(book)


def test_a_lost_book_batch_is_followed_by_a_snapshot(market):
    book = _by_instrument(market["book"], 1)
    gaps = np.flatnonzero(book["flags"] & ev.Flag.GAP_BEFORE)
    assert gaps.size > 0
    assert (book["action"][gaps] == ev.BookAction.CLEAR).all()
    assert (book["flags"][gaps] & ev.Flag.SNAPSHOT).all()
    assert book["action"][0] == ev.BookAction.CLEAR  # the recording opens with a snapshot


def _read(name):
    table = pq.read_table(BUNDLED / name)
    return table, es.from_arrow(table, es.record_type_from_schema(table.schema), name)


def test_bundled_market_files_are_sorted_tagged_and_sized():
    total, sizes = 0, 0
    for name, rtype in (
        ("market_quotes.parquet", ev.RecordType.QUOTE),
        ("market_trades.parquet", ev.RecordType.TRADE),
        ("market_book.parquet", ev.RecordType.BOOK_DELTA),
    ):
        table, recs = _read(name)
        assert es.record_type_from_schema(table.schema) == rtype
        meta = table.schema.metadata[GENERATOR_KEY].decode()
        assert f"seed={syn.DEFAULT_SEED}" in meta
        key = np.lexsort((recs["seq"], recs["source_id"], recs["ts_recv"]))
        np.testing.assert_array_equal(key, np.arange(len(recs)))
        # Default wire: gaps and late packets exist but are rare.
        n_gap = int((recs["flags"] & ev.Flag.GAP_BEFORE > 0).sum())
        assert 0 < n_gap < 1e-3 * len(recs)
        total += len(recs)
    for f in BUNDLED.glob("*.parquet"):
        sizes += f.stat().st_size
    assert 300_000 <= total <= 600_000
    assert sizes <= 15e6


@pytest.mark.slow
def test_bundled_files_are_what_the_generator_writes(tmp_path):
    counts = syn.generate(tmp_path)
    for name, n in counts.items():
        fresh, bundled = pq.read_table(tmp_path / name), pq.read_table(BUNDLED / name)
        assert fresh.num_rows == n
        assert fresh.equals(bundled), f"{name}: bundled file differs; run `redline generate`"


def _driver_vs_mid(seed, informed, horizon_ns, minutes=2.0):
    """Correlation of ESZ6's informed demand a(t) at each quote with the mid move over the
    next `horizon_ns` (informed=False: the same market without the informed flow)."""
    spec = syn.SPECS[0]
    arrivals = syn.hawkes_arrivals(
        np.random.default_rng(seed), np.array([spec.rate_hz]), syn.BRANCHING[:1, :1], minutes * 60
    )[0]
    flow_rng = np.random.default_rng(seed + 2) if informed else None
    q = syn.market_instrument(spec, arrivals, np.random.default_rng(seed + 1), flow_rng)["quotes"]
    t_s = np.concatenate([[0.0], arrivals])
    a = syn.informed_demand(np.random.default_rng(seed + 2), t_s)  # the same draws
    ts = syn._strictly_increasing(syn.MARKET_START_NS + np.round(t_s * 1e9).astype(np.int64))
    a_at = a[np.searchsorted(ts, q["ts_event"])]  # each quote is one arrival's
    mid = (q["bid_px"] + q["ask_px"]) / 2.0
    ahead = np.searchsorted(q["ts_event"], q["ts_event"] + horizon_ns)
    ok = ahead < len(q)
    return float(np.corrcoef(a_at[ok], mid[ahead[ok]] - mid[ok])[0, 1])


def test_informed_flow_leads_the_mid_by_the_documented_amount():
    # The generator docstring: 0.25-0.4 over 1 s, 0.4-0.6 over 5 s on 2-minute ESZ6 samples.
    assert 0.2 < _driver_vs_mid(1, True, 1_000_000_000) < 0.45
    assert 0.35 < _driver_vs_mid(1, True, 5_000_000_000) < 0.65
    # the same seed without the informed flow: a(t) says nothing of the mid
    assert abs(_driver_vs_mid(1, False, 1_000_000_000)) < 0.1


def test_informed_demand_is_a_unit_variance_process_with_its_half_life():
    t_s = np.arange(0.0, 2000.0, 0.05)
    a = syn.informed_demand(np.random.default_rng(0), t_s)
    assert 0.9 < a.var() < 1.1
    lag = round(syn.INFORMED_HALF_LIFE_S / 0.05)
    assert 0.4 < np.corrcoef(a[:-lag], a[lag:])[0, 1] < 0.6  # halved after one half-life
