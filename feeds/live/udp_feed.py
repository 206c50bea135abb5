"""UDP feed (unicast and multicast) stamped by the kernel or the NIC.

One datagram is one wire frame. Each is received with `recvmsg_into` into a
receive arena (no copy) together with its SO_TIMESTAMPING stamps, and every
record in it gets the best stamp there is, with its source recorded in
`ts_recv_source`: the NIC's hardware stamp, else the kernel's software stamp
(taken when the packet entered the stack), else the user-space clock read
after `recvmsg` returned. The kernel stamp also shows the wake-up delay a
user-space stamp hides (FLOORS.md: 31 µs blocked, 3.6 µs busy-polling).

Linux turns software RX stamping on from a deferred work item, so the first
datagrams after the first stamping socket on a host opens may come without a
kernel stamp: they are stamped in user space and say so.

When hardware stamps are asked for and not granted (no ifname, the NIC's
config says no, or a datagram comes without one), that is logged once.
"""

from __future__ import annotations

import logging
import select
import socket
import time
from collections import deque
from typing import Any

from redline.feeds.clock import Clock, LiveClock
from redline.feeds.events import Batch, TsSource
from redline.feeds.live.source import parse_udp, wait_readable
from redline.feeds.sequence import SequenceTracker
from redline.feeds.wire.arena import Arena
from redline.feeds.wire.frames import END_OF_STREAM, Decoder, Malformed
from redline.feeds.wire.timestamping import (
    ANCILLARY_BYTES,
    HwConfig,
    enable_rx_timestamps,
    hardware_config,
    rx_stamps,
)

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65_507  # largest UDP payload over IPv4


class UdpFeed:
    """A feed on `udp://HOST:PORT`: HOST is the address to bind, or a multicast
    group (224.0.0.0/4) to join on `interface` (an IPv4 address; default any).

    hardware: ask for NIC hardware RX stamps; `ifname` (e.g. "eth0") names the
      NIC whose hwtstamp config is read, and `configure_nic` also sets it.
    clock: the user-space clock, and the one stamps are compared against
      (pass a `PtpClock` when hardware stamps are in the PHC's time).
    expected_ends: distinct senders whose END frame ends the stream.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        interface: str | None = None,
        hardware: bool = False,
        ifname: str | None = None,
        configure_nic: bool = False,
        clock: Clock | None = None,
        tracker: SequenceTracker | None = None,
        expected_ends: int = 1,
        rcvbuf: int = 4 << 20,
        arena_bytes: int | None = None,
    ) -> None:
        host, port, multicast = parse_udp(endpoint)
        if expected_ends < 1:
            raise ValueError(f"UdpFeed: expected_ends must be >= 1, got {expected_ends}")
        self.clock = clock or LiveClock()
        self.tracker = tracker
        self.expected_ends = expected_ends
        self.decoder = Decoder()
        self.ended = False
        self.datagrams = 0
        self.stamps = [0] * len(TsSource)  # datagrams stamped per TsSource
        self.kernel_after_user = 0  # must stay 0: a kernel stamp later than our read
        self._end_senders: set[Any] = set()
        self._arena = Arena(MAX_DATAGRAM + 1, arena_bytes)
        self._pending: deque[Batch] = deque()
        self._hw_reported = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if multicast:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self.sock.bind((host, port))
                mreq = socket.inet_aton(host) + socket.inet_aton(interface or "0.0.0.0")
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            else:
                self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise ValueError(f"UdpFeed: cannot listen on {endpoint!r}: {exc.strerror}") from None
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()
        self.endpoint = f"udp://{host}:{self.address[1]}"
        self.hardware = hardware
        enable_rx_timestamps(self.sock, hardware)
        self.hw_config: HwConfig | None = None
        if hardware:
            if ifname is None:
                self._report_no_hardware("no ifname given, so the NIC's config is unknown")
            else:
                self.hw_config = hardware_config(self.sock, ifname, configure_nic)
                if not self.hw_config.granted:
                    self._report_no_hardware(f"{ifname}: {self.hw_config.reason}")

    def _report_no_hardware(self, why: str) -> None:
        if not self._hw_reported:
            self._hw_reported = True
            log.warning(
                "UDP feed %s: hardware RX timestamps asked for, not granted (%s); "
                "using kernel software stamps",
                self.endpoint,
                why,
            )

    # -- receiving -----------------------------------------------------------

    def _receive_one(self) -> bool:
        """Take one datagram; False when none is waiting."""
        arena = self._arena
        slot = arena.slot()
        try:
            n, anc, msg_flags, sender = self.sock.recvmsg_into([slot], ANCILLARY_BYTES)
        except BlockingIOError:
            return False
        user = self.clock.now_ns()
        self.datagrams += 1
        if msg_flags & socket.MSG_TRUNC:
            self.decoder.skip(Malformed.OVERSIZE)
            return True
        out = self.decoder.decode(slot[:n])
        if out is END_OF_STREAM:
            self._end_senders.add(sender)
            self.ended = len(self._end_senders) >= self.expected_ends
            return True
        if out is None:
            return True
        arena.keep(n)
        sw, hw = rx_stamps(anc)
        if hw:
            stamp, source = hw, TsSource.HARDWARE
        elif sw:
            stamp, source = sw, TsSource.KERNEL
            if sw > user:
                self.kernel_after_user += 1
            if self.hardware:
                self._report_no_hardware("datagrams arrive without a hardware stamp")
        else:
            stamp, source = user, TsSource.USER
        self.stamps[source] += 1
        recs = out.records
        recs["ts_recv"] = stamp
        recs["ts_recv_source"] = source
        if self.tracker is not None:
            self.tracker.observe(recs)
        self._pending.append(out)
        return True

    def ready(self) -> bool:
        """A batch can be had now without waiting."""
        return bool(self._pending) or bool(select.select([self.sock], [], [], 0)[0])

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv_batch(self, timeout: float | None = 0.0) -> Batch | None:
        """The next batch; None if none came within `timeout` seconds (0: don't
        wait, None: wait forever) or the stream has ended."""
        pending = self._pending
        deadline = None if timeout is None else time.monotonic() + timeout
        while not pending and not self.ended:
            if self._receive_one():
                continue
            if deadline is None:
                select.select([self.sock], [], [])
            else:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                    break
        return pending.popleft() if pending else None

    async def arecv_batch(self) -> Batch | None:
        """Await the next batch; None only once the stream has ended."""
        while True:
            batch = self.recv_batch(0.0)
            if batch is not None or self.ended:
                return batch
            await wait_readable(self.sock.fileno(), 1.0)

    def __iter__(self):
        while not self.ended or self._pending:
            batch = self.recv_batch(0.1)
            if batch is not None:
                yield batch

    # -- reporting and lifetime ------------------------------------------------

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "endpoint": self.endpoint,
            "datagrams": self.datagrams,
            **self.decoder.stats(),
            "stamps": {s.name.lower(): self.stamps[s] for s in TsSource},
            "kernel_after_user": self.kernel_after_user,
        }
        if self.tracker is not None:
            out["sequence"] = self.tracker.totals()
        return out

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> UdpFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
