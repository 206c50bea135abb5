import logging
import socket
import struct
import threading
import time

import numpy as np
import pytest

from redline.feeds import events as ev
from redline.feeds.events import Batch
from redline.feeds.live.publisher import publish_batches
from redline.feeds.live.udp_feed import UdpFeed
from redline.feeds.wire import frames as wire
from redline.feeds.wire import timestamping as tstamp


def _sender():
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def _warm(feed, tx):
    """Wait until the kernel stamps: Linux turns RX stamping on from a deferred work
    item, so the first datagrams after the first stamping socket opens may have none."""
    probe = wire.encode(ev.empty(ev.RecordType.TRADE, 1))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        tx.sendto(probe, feed.address)
        b = feed.recv_batch(1.0)
        if b is not None and b.records["ts_recv_source"][0] == ev.TsSource.KERNEL:
            feed.stamps = [0] * len(feed.stamps)
            return
    raise AssertionError("the kernel never stamped a loopback datagram")


def _drain(feed, timeout_s=5.0):
    out, deadline = [], time.monotonic() + timeout_s
    while not feed.ended and time.monotonic() < deadline:
        b = feed.recv_batch(0.1)
        if b is not None:
            out.append(b)
    return out


def test_loopback_datagrams_carry_kernel_stamps_no_later_than_the_read(records):
    recs = records(ev.RecordType.QUOTE, 40)
    with UdpFeed("udp://127.0.0.1:0") as feed, _sender() as tx:
        _warm(feed, tx)
        got, reads = [], []
        for i in range(0, 40, 4):
            t_send = time.time_ns()
            tx.sendto(wire.encode(recs[i : i + 4]), feed.address)
            b = feed.recv_batch(2.0)
            reads.append((t_send, time.time_ns()))
            got.append(b)
        assert feed.stats()["stamps"] == {"user": 0, "kernel": 10, "hardware": 0}
        assert feed.kernel_after_user == 0
    for b, (t_send, t_read) in zip(got, reads, strict=True):
        assert (b.records["ts_recv_source"] == ev.TsSource.KERNEL).all()
        ts = int(b.records["ts_recv"][0])
        assert (b.records["ts_recv"] == ts).all()  # one stamp per datagram
        assert t_send <= ts <= t_read  # stamped in the kernel before user space saw it
    back = np.concatenate([b.records for b in got])
    keep = [n for n in recs.dtype.names if n not in ("ts_recv", "ts_recv_source")]
    np.testing.assert_array_equal(back[keep], recs[keep])


def test_hardware_not_granted_on_loopback_is_reported_once(records, caplog):
    caplog.set_level(logging.WARNING, logger="redline.feeds.live.udp_feed")
    with UdpFeed("udp://127.0.0.1:0", hardware=True, ifname="lo") as feed, _sender() as tx:
        assert feed.hw_config is not None and not feed.hw_config.granted
        assert feed.hw_config.reason  # says why, e.g. "SIOCGHWTSTAMP failed: ..."
        _warm(feed, tx)
        for i in range(5):
            tx.sendto(wire.encode(records(ev.RecordType.TRADE, 1, seed=i)), feed.address)
            b = feed.recv_batch(2.0)
            assert b.records["ts_recv_source"][0] == ev.TsSource.KERNEL
    warnings = [r for r in caplog.records if "not granted" in r.getMessage()]
    assert len(warnings) == 1
    assert "lo:" in warnings[0].getMessage()


def test_malformed_datagrams_are_counted_and_end_needs_every_sender(records):
    good = records(ev.RecordType.TRADE, 3)
    with UdpFeed("udp://127.0.0.1:0", expected_ends=2) as feed, _sender() as a, _sender() as b:
        a.sendto(b"\x00" * 5, feed.address)
        a.sendto(wire.encode(good)[:-1], feed.address)
        a.sendto(wire.encode(good), feed.address)
        for _ in range(3):  # a repeated END from one sender counts once
            a.sendto(wire.encode_end(), feed.address)
        got = _drain(feed, timeout_s=0.5)
        assert not feed.ended
        b.sendto(wire.encode_end(), feed.address)
        got += _drain(feed)
        assert feed.ended
        s = feed.stats()
    assert [len(x.records) for x in got] == [3]
    assert s["malformed_by_reason"]["short"] == 1
    assert s["malformed_by_reason"]["ragged"] == 1


def test_publisher_over_udp_unicast_and_asyncio_receive(records):
    import asyncio

    recs = records(ev.RecordType.SENSOR, 50)

    async def main(feed):
        t = threading.Thread(
            target=publish_batches,
            args=([Batch(ev.RecordType.SENSOR, recs)], feed.endpoint),
            kwargs={"speed": None},
        )
        t.start()
        got = []
        while (b := await asyncio.wait_for(feed.arecv_batch(), 5)) is not None:
            got.append(b)
        t.join(5)
        return got

    with UdpFeed("udp://127.0.0.1:0") as feed:
        got = asyncio.run(main(feed))
    # 80-byte sensor records: 18 fit one 1472-byte datagram (16-byte header)
    assert [len(b.records) for b in got] == [18, 18, 14]
    np.testing.assert_array_equal(
        np.concatenate([b.records for b in got])["values"], recs["values"]
    )


def test_multicast_group_on_loopback(records):
    group = "239.255.42.99"
    try:
        feed = UdpFeed(f"udp://{group}:0", interface="127.0.0.1")
    except ValueError as exc:
        pytest.skip(f"multicast join refused here: {exc}")
    with feed, _sender() as tx:
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        recs = records(ev.RecordType.QUOTE, 2)
        tx.sendto(wire.encode(recs), (group, feed.address[1]))
        b = feed.recv_batch(1.0)
        if b is None:
            pytest.skip("no multicast route over loopback on this host")
        np.testing.assert_array_equal(b.records["bid_px"], recs["bid_px"])
        assert b.records["ts_recv_source"][0] == ev.TsSource.KERNEL


def test_rx_stamps_parse_software_and_hardware_slots():
    data = struct.pack("=6q", 1, 5, 0, 0, 2, 7)
    anc = [(socket.SOL_SOCKET, tstamp.SCM_TIMESTAMPING, data)]
    assert tstamp.rx_stamps(anc) == (1_000_000_005, 2_000_000_007)
    assert tstamp.rx_stamps([]) == (0, 0)


def test_ptp_clock_id_from_fd_and_missing_device():
    assert tstamp.fd_to_clockid(3) == -29  # linux FD_TO_CLOCKID: (~fd << 3) | 3
    with pytest.raises(ValueError, match="cannot open '/nonexistent/ptp9'"):
        tstamp.PtpClock("/nonexistent/ptp9")


def test_ptp_clock_reads_the_device_when_present():
    import os

    if not os.path.exists("/dev/ptp0"):
        pytest.skip("no PTP hardware clock on this host")
    clock = tstamp.PtpClock("/dev/ptp0")
    a, b = clock.now_ns(), clock.now_ns()
    clock.close()
    assert 0 < a <= b


def test_bad_udp_endpoints_are_named():
    with pytest.raises(ValueError, match="expected udp://HOST:PORT"):
        UdpFeed("udp://127.0.0.1")
    with pytest.raises(ValueError, match="'localhost' is not an IPv4 address"):
        UdpFeed("udp://localhost:9")
    with pytest.raises(ValueError, match=r"cannot listen on 'udp://192\.0\.2\.1:0'"):
        UdpFeed("udp://192.0.2.1:0")
