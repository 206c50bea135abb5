"""An edge behaves the same on every transport: each test runs over mem://, inproc:// and
ipc:// (ZeroMQ), opened the way the runtime opens them."""

import time

import numpy as np
import pytest

from redline.feeds.events import QUOTE_DTYPE, Flag
from redline.pipeline.transport.edge import keep_latest
from redline.pipeline.transport.opener import Transport
from redline.pipeline.transport.waiting import wait_any

SCHEMES = ["mem", "inproc", "ipc"]


@pytest.fixture
def transport():
    t = Transport()
    yield t
    t.close(linger_s=0)


def address(scheme, tmp_path, name="e"):
    return f"ipc://{tmp_path}/{name}" if scheme == "ipc" else f"{scheme}://{name}-{scheme}"


def quotes(ids, seq0=0):
    q = np.zeros(len(ids), QUOTE_DTYPE)
    q["instrument_id"] = ids
    q["seq"] = np.arange(seq0, seq0 + len(ids))
    q["bid_px"] = 100 + q["seq"].astype(np.int64)
    return q


def pair(transport, address, policy="block", hwm=1000):
    rx = transport.receiver("e", address, policy, hwm)
    tx = transport.sender("e", address, policy, hwm)
    return tx, rx


def pump(tx, rx, timeout_s=5.0):
    """Read everything until EOS, letting the writer flush as room appears."""
    out = []
    deadline = time.monotonic() + timeout_s
    while not rx.ended:
        assert time.monotonic() < deadline, "edge never delivered EOS"
        tx.flush()
        msgs = rx.recv()
        out.extend(m.records for m in msgs)
        if not msgs:
            wait_any([rx], 0.01)
    return np.concatenate(out) if out else np.zeros(0, QUOTE_DTYPE)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_block_edge_holds_back_and_delivers_every_record_in_order(transport, tmp_path, scheme):
    tx, rx = pair(transport, address(scheme, tmp_path), hwm=4)
    sent = [quotes([1, 2, 3], seq0=3 * i) for i in range(50)]
    for b in sent:  # the reader is not reading: the queue fills
        tx.send(b)
    assert tx.blocked and tx.max_backlog > 10  # the node would stop taking in work now
    tx.send_eos()
    got = pump(tx, rx)
    assert not tx.blocked and tx.drops == rx.drops == 0
    np.testing.assert_array_equal(got, np.concatenate(sent))
    assert rx.received == tx.sent == 150
    tx.close(), rx.close()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_conflate_keeps_latest_per_instrument_and_counts_drops(transport, tmp_path, scheme):
    tx, rx = pair(transport, address(scheme, tmp_path), policy="conflate", hwm=2)
    for i in range(20):  # reader is not reading yet
        tx.send(quotes([1, 2], seq0=2 * i))
    # The queue took 2 messages; the rest collapsed into one waiting message.
    assert tx.max_backlog == 1 and tx.drops > 0
    tx.send_eos()
    got = pump(tx, rx)
    # Only the newest quote of each instrument is sure to survive; all others are counted.
    last = {int(i): int(s) for i, s in zip(got["instrument_id"], got["seq"], strict=True)}
    assert last == {1: 38, 2: 39}
    assert len(got) + tx.drops + rx.drops == 40


def test_keep_latest_carries_gap_flag_forward():
    q = quotes([7, 8, 7, 7])
    q["flags"][0] = Flag.GAP_BEFORE
    kept, dropped = keep_latest(q)
    assert dropped == 2
    assert list(kept["seq"]) == [1, 3]
    assert kept["flags"][kept["instrument_id"] == 7][0] & Flag.GAP_BEFORE
    assert not kept["flags"][kept["instrument_id"] == 8][0] & Flag.GAP_BEFORE


@pytest.mark.parametrize("scheme", SCHEMES)
def test_conflate_edge_never_conflates_trades_and_keeps_order(transport, tmp_path, scheme):
    from redline.feeds.events import TRADE_DTYPE

    tx, rx = pair(transport, address(scheme, tmp_path), policy="conflate", hwm=100)
    t = np.zeros(3, TRADE_DTYPE)
    t["instrument_id"] = 1
    t["trade_id"] = [1, 2, 3]
    tx.send(quotes([1, 1, 2]), stamp_ns=5)
    tx.send(t, stamp_ns=6)
    tx.send(quotes([1, 1], seq0=10), stamp_ns=7)
    tx.send_eos()
    msgs = []
    while not rx.ended:
        tx.flush()
        msgs.extend(rx.recv())
    assert [m.sent_ns for m in msgs] == [5, 6, 7]
    got = [m.records for m in msgs]
    assert [g.dtype for g in got] == [QUOTE_DTYPE, TRADE_DTYPE, QUOTE_DTYPE]
    assert list(got[0]["seq"]) == [1, 2] and list(got[2]["seq"]) == [11]
    assert list(got[1]["trade_id"]) == [1, 2, 3]
    assert tx.drops == 2 and rx.drops == 0


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_reader_gets_read_only_records_and_is_woken_by_its_descriptor(
    transport, tmp_path, scheme
):
    tx, rx = pair(transport, address(scheme, tmp_path))
    assert not rx.ready() and rx.recv() == []
    wait_any([rx], 0.01)  # nothing comes: returns by the timeout (a ZeroMQ fd may wake early)
    assert not rx.ready()
    q = quotes([1, 2])
    tx.send(q, stamp_ns=11, feed_ns=7)
    deadline = time.monotonic() + 5
    while not rx.ready():
        assert time.monotonic() < deadline
        wait_any([rx], 0.1)
    (msg,) = rx.recv()
    assert (msg.sent_ns, msg.feed_ns) == (11, 7)
    np.testing.assert_array_equal(msg.records, q)
    with pytest.raises(ValueError, match="read-only"):
        msg.records["bid_px"] = 0


@pytest.mark.parametrize("scheme", ["mem", "ipc"])
def test_a_conflating_edge_under_overload_stays_bounded_and_counts_every_drop(
    transport, tmp_path, scheme
):
    """Quotes of 4 instruments and trades, written far faster than read: the writer's backlog
    stays within its bounds (a quote replaces its instrument's older quote wherever it waits;
    trades past the bound are dropped), and every record is received or counted as dropped."""
    from redline.feeds.events import TRADE_DTYPE

    hwm = 8
    rx = transport.receiver("e", address(scheme, tmp_path), "conflate", hwm)
    tx = transport.sender("e", address(scheme, tmp_path), "conflate", hwm, max_bytes=1 << 20)
    t = np.zeros(16, TRADE_DTYPE)
    sent = received = 0
    last_quote = {}
    for i in range(20_000):
        if i % 2:
            batch = t
        else:
            batch = quotes([1, 2, 3, 4], seq0=4 * i)
            last_quote.update({int(q["instrument_id"]): int(q["seq"]) for q in batch})
        tx.send(batch)
        sent += len(batch)
        if i % 50 == 0:  # a reader 50x slower than the writer
            received += sum(len(m.records) for m in rx.recv())
    assert tx.max_backlog <= hwm + 4  # hwm trade messages, at most one quote message each
    assert tx.max_backlog_bytes <= (1 << 20) + t.nbytes
    assert tx.overflow_drops > 0  # trades past the bound were dropped and counted
    tx.send_eos()
    got = []
    deadline = time.monotonic() + 10
    while not rx.ended:
        assert time.monotonic() < deadline
        tx.flush()
        msgs = rx.recv()
        got.extend(m.records for m in msgs)
        if not msgs:
            wait_any([rx], 0.01)
    received += sum(len(g) for g in got)
    assert received + tx.drops + rx.drops == sent  # nothing lost without a count
    final = {}
    for g in got:
        if g.dtype == QUOTE_DTYPE:
            final.update({int(q["instrument_id"]): int(q["seq"]) for q in g})
    assert final == last_quote  # the newest quote of every instrument got through
