"""Publisher: replay recordings onto a real ZeroMQ or UDP socket at the recorded pace.

Events are sent in `ts_recv` order (what was seen) and scheduled by
`ts_event` (when it happened): event k is due at `start + (ts_event[k] -
ts_event[0]) / speed`. The pacer sleeps most of the way and spins the last
stretch; records already due when a frame goes out ride in the same frame
(up to `max_batch`). The pacing error reported is, per event, send time minus
due time. At `speed=None` ("max") nothing waits and frames are full.

    stats = publish(["day.parquet"], "tcp://127.0.0.1:5555", speed=10)

ZeroMQ: an XPUB socket (SUB-compatible) that waits for `wait_subscribers`
subscriptions before the first event, so no subscriber misses the start;
or PUSH (lossless, blocks until a PULL peer is there). UDP: one frame per
datagram, unicast or multicast. Every stream ends with an END frame.
"""

from __future__ import annotations

import contextlib
import fcntl
import socket as pysocket
import struct
import termios
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from redline.feeds.clock import Clock, LiveClock
from redline.feeds.events import Batch
from redline.feeds.live.pacer import DEFAULT_SPIN_NS, Pacer
from redline.feeds.live.source import is_udp, parse_udp
from redline.feeds.replay.reader import replay
from redline.feeds.wire.frames import HEADER_SIZE, encode, encode_end

UDP_DATAGRAM = 1472  # fits one Ethernet MTU (1500 - IP - UDP headers): no fragments
UDP_END_REPEATS = 3  # END is one datagram: send it a few times so a single loss can't hang a reader


@dataclass
class PublishStats:
    endpoint: str
    events: int
    frames: int
    bytes: int
    seconds: float
    events_per_s: float
    speed: float | None  # None: as fast as possible
    pacing_error_ns: dict[str, int] | None  # p50/p99/p999/max; None at max speed
    readers: int | None = None  # readers that connected during the run; None: unknown (udp)
    undelivered: str | None = None  # why the stream may not have reached a reader; None: it did

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _ZmqSender:
    def __init__(
        self, endpoint, kind, bind, context, wait_subscribers, wait_timeout_s, sndhwm, linger_s
    ):
        self.ctx = context or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.XPUB if kind == "pub" else zmq.PUSH)
        self.linger_ms = int(linger_s * 1000)
        self.sock.setsockopt(zmq.SNDHWM, sndhwm)
        self.sock.setsockopt(zmq.LINGER, 0)
        # A reader that falls behind holds the publisher back (a replay never drops), and a
        # send that waits longer than the wait timeout is an error, not a silent loss.
        self.sock.setsockopt(zmq.SNDTIMEO, int(wait_timeout_s * 1000))
        self.wait_timeout_s = wait_timeout_s
        if kind == "pub":
            self.sock.setsockopt(zmq.XPUB_VERBOSE, 1)  # one message per subscriber, not per topic
            self.sock.setsockopt(zmq.XPUB_NODROP, 1)  # at the high-water mark: wait, not drop
        else:
            # A connecting PUSH would otherwise queue everything for a peer that never answers
            # and report it sent: with IMMEDIATE a send waits for a finished connection.
            self.sock.setsockopt(zmq.IMMEDIATE, 1)
        self.reader_kind = "subscriber" if kind == "pub" else "PULL peer"
        # Connections by fd (monitor events carry it), watched from before the first one:
        # close() waits for readers that are behind (see _await_readers).
        self._monitor = (
            None if endpoint.startswith("inproc://") else self.sock.get_monitor_socket(_UP | _DOWN)
        )
        self._peers: set[int] = set()
        self.readers_seen = 0  # connections made during the run
        self.undelivered: str | None = None
        try:
            (self.sock.bind if bind else self.sock.connect)(endpoint)
        except zmq.ZMQError as exc:
            self._abort()
            raise ValueError(
                f"publish: cannot {'bind' if bind else 'connect'} {endpoint!r}: {exc}"
            ) from None
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT) if bind else endpoint
        if kind == "pub" and wait_subscribers > 0:
            self._wait(wait_subscribers, wait_timeout_s)
        self.max_frame = 1 << 20

    def _wait(self, n: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        seen = 0
        while seen < n:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000) + 1, zmq.POLLIN):
                self._abort()
                raise TimeoutError(
                    f"publish: {seen} of {n} subscribers on {self.endpoint} after {timeout_s} s"
                )
            if self.sock.recv()[:1] == b"\x01":  # 1 = subscribe, 0 = unsubscribe
                seen += 1

    def send(self, frame: bytes) -> None:
        try:
            self.sock.send(frame, copy=len(frame) < 65536)
        except zmq.Again:
            self._abort()
            raise TimeoutError(
                f"publish: no {self.reader_kind} took a frame on {self.endpoint} for "
                f"{self.wait_timeout_s:g} s"
            ) from None

    def close(self, end: bool) -> None:
        if self.sock.closed:
            return
        if end:
            self._read_monitor()
            if self._monitor is not None and not self._peers:
                # Nobody is there to read END (or anything sent since the last reader left).
                self.undelivered = (
                    f"no reader connected to {self.endpoint}: nothing was delivered"
                    if not self.readers_seen
                    else f"every reader of {self.endpoint} left before the end of the stream"
                )
            with contextlib.suppress(zmq.Again):  # no peer: nobody to tell
                self.sock.send(encode_end())
            if self.undelivered is None:
                self._await_readers()
        self._stop_monitor()
        self.sock.setsockopt(zmq.LINGER, self.linger_ms)  # deliver what is queued
        self.sock.close()

    def _abort(self) -> None:
        self._stop_monitor()
        self.sock.close(0)

    def _stop_monitor(self) -> None:
        # Stopped explicitly: a socket closed while monitored left libzmq's side of the
        # monitor behind, and a later Runtime on the same context never saw its workers.
        if self._monitor is not None:
            self.sock.disable_monitor()
            self._monitor.close(0)
            self._monitor = None

    def _read_monitor(self) -> None:
        while self._monitor is not None and self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            if event["event"] & _UP:
                self._peers.add(event["value"])
                self.readers_seen += 1
            else:
                self._peers.discard(event["value"])

    def _await_readers(self) -> None:
        """After END: wait while the readers are still reading, then close.

        libzmq drops what is still in flight when a socket closes on a reader whose queue
        is at its high-water mark, the END frame with it (libzmq#4660; seen here over ipc):
        a bounded `block` ingress would lose the stream's tail and never end. So wait until
        every reader has closed, or the kernel has held nothing unread for them (SIOCOUTQ
        per connection) for a grace period: what their libzmq I/O threads already took from
        the kernel still has to reach their queues. The wait has no fixed length, since a
        slow reader of a long backlog needs longer: it lasts while the unread bytes keep
        moving, and gives up after `linger` seconds in which they did not (`undelivered`).
        While our own queue still feeds the kernel they stay pinned at the buffer's size
        however fast the reader reads, which is why that queue is bounded (`sndhwm`).
        """
        if self._monitor is None:
            return
        quiet_since = None
        last_unread: tuple[int, ...] = ()
        moved_at = time.monotonic()
        while True:
            self._read_monitor()
            now = time.monotonic()
            if not self._peers:
                return
            unread = tuple(map(_unread_bytes, sorted(self._peers)))
            if unread != last_unread:
                last_unread, moved_at = unread, now
            if any(unread):
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since > _CAUGHT_UP_GRACE_S:
                return
            if now - moved_at > self.linger_ms / 1000:
                self.undelivered = (
                    f"{len(self._peers)} reader(s) of {self.endpoint} stopped reading with "
                    f"{sum(unread):,} bytes unread (the stream's tail and END) for "
                    f"{self.linger_ms / 1000:g} s"
                )
                return
            time.sleep(0.001)


_CAUGHT_UP_GRACE_S = 0.1
_UP = zmq.EVENT_CONNECTED | zmq.EVENT_ACCEPTED
_DOWN = zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED


def _unread_bytes(fd: int) -> int:
    """Bytes sent on socket `fd` that its peer has not read yet (0 if `fd` is gone)."""
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except OSError:
        return 0


class _UdpSender:
    def __init__(self, endpoint, interface, ttl, max_datagram):
        host, port, multicast = parse_udp(endpoint)
        self.endpoint = endpoint
        self.addr = (host, port)
        self.sock = pysocket.socket(pysocket.AF_INET, pysocket.SOCK_DGRAM)
        if multicast:
            self.sock.setsockopt(pysocket.IPPROTO_IP, pysocket.IP_MULTICAST_TTL, ttl)
            self.sock.setsockopt(pysocket.IPPROTO_IP, pysocket.IP_MULTICAST_LOOP, 1)
            if interface:
                self.sock.setsockopt(
                    pysocket.IPPROTO_IP, pysocket.IP_MULTICAST_IF, pysocket.inet_aton(interface)
                )
        self.max_frame = max_datagram
        self.readers_seen: int | None = None  # datagrams are not acknowledged: unknown
        self.undelivered: str | None = None

    def send(self, frame: bytes) -> None:
        self.sock.sendto(frame, self.addr)

    def close(self, end: bool) -> None:
        if end:
            for _ in range(UDP_END_REPEATS):
                self.sock.sendto(encode_end(), self.addr)
                time.sleep(0.001)
        self.sock.close()


def _percentiles(errors: list[np.ndarray]) -> dict[str, int] | None:
    if not errors:
        return None
    e = np.concatenate(errors)
    p50, p99, p999 = np.percentile(e, [50, 99, 99.9])
    return {"p50": int(p50), "p99": int(p99), "p999": int(p999), "max": int(e.max())}


def publish_batches(
    batches: Iterable[Batch],
    endpoint: str,
    *,
    speed: float | None = 1.0,
    socket: str = "pub",
    bind: bool = True,
    max_batch: int = 64,
    wait_subscribers: int = 1,
    wait_timeout_s: float = 10.0,
    end_of_stream: bool = True,
    context: zmq.Context | None = None,
    clock: Clock | None = None,
    spin_ns: int = DEFAULT_SPIN_NS,
    sndhwm: int = 64,
    linger_s: float = 5.0,
    interface: str | None = None,
    multicast_ttl: int = 1,
    max_datagram: int = UDP_DATAGRAM,
) -> PublishStats:
    """Send `batches` (merged by ts_recv) to `endpoint`, paced by ts_event.

    speed: 1.0 real time, 10.0 ten times faster, None as fast as possible.
    socket: "pub" (XPUB, waits for `wait_subscribers`) or "push"; ignored for udp://.
    bind: bind the ZeroMQ endpoint (default) or connect to a bound feed.
    sndhwm: ZeroMQ send high-water mark, in frames. At the mark a send waits for the reader
      (PUB too: XPUB_NODROP), so a replay never drops; a bound keeps what waits unread at the
      end small enough to see drain (0 = unbounded: the end cannot tell a slow reader from a
      stopped one while the publisher's own queue is full).
    """
    if speed is not None and not speed > 0:
        raise ValueError(f"publish: speed must be > 0 or None (max), got {speed}")
    if max_batch < 1:
        raise ValueError(f"publish: max_batch must be >= 1, got {max_batch}")
    if socket not in ("pub", "push"):
        raise ValueError(f"publish: socket must be 'pub' or 'push', got {socket!r}")
    clock = clock or LiveClock()
    if is_udp(endpoint):
        sender: Any = _UdpSender(endpoint, interface, multicast_ttl, max_datagram)
    else:
        sender = _ZmqSender(
            endpoint, socket, bind, context, wait_subscribers, wait_timeout_s, sndhwm, linger_s
        )
    pacer = Pacer(clock, spin_ns=spin_ns)
    mono = clock.monotonic_ns
    events = frames = nbytes = 0
    errors: list[np.ndarray] = []
    t_start = mono()
    ts0: int | None = None
    try:
        for rtype, recs in batches:
            n = len(recs)
            if n == 0:
                continue
            per_frame = min(max_batch, (sender.max_frame - HEADER_SIZE) // recs.dtype.itemsize)
            if per_frame < 1:
                raise ValueError(f"publish: a {rtype.name} record does not fit one datagram")
            if speed is None:
                for i in range(0, n, per_frame):
                    frame = encode(recs[i : i + per_frame], rtype)
                    sender.send(frame)
                    frames += 1
                    nbytes += len(frame)
                events += n
                continue
            ts = recs["ts_event"]
            if ts0 is None:
                ts0 = int(ts[0])
            due = t_start + ((ts - ts0) / speed).astype(np.int64)  # [n] monotonic ns
            i = 0
            while i < n:
                pacer.wait_until(int(due[i]))
                now = mono()
                j = min(i + per_frame, n)
                late = due[i + 1 : j] > now  # later records not yet due stay for later
                if late.any():
                    j = i + 1 + int(np.argmax(late))
                frame = encode(recs[i:j], rtype)
                now = mono()
                sender.send(frame)
                errors.append(now - due[i:j])
                frames += 1
                nbytes += len(frame)
                events += j - i
                i = j
    finally:
        sender.close(end_of_stream)
    seconds = (mono() - t_start) / 1e9
    return PublishStats(
        endpoint=sender.endpoint,
        events=events,
        frames=frames,
        bytes=nbytes,
        seconds=seconds,
        events_per_s=events / seconds if seconds > 0 else 0.0,
        speed=speed,
        pacing_error_ns=_percentiles(errors),
        readers=sender.readers_seen,
        undelivered=sender.undelivered,
    )


def publish(paths: Sequence[str | Path], endpoint: str, **kwargs: Any) -> PublishStats:
    """Publish Parquet recordings `paths` (merged by `replay`) to `endpoint`;
    see `publish_batches`."""
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"publish: no recording at {p}")
    return publish_batches(replay(paths), endpoint, **kwargs)
