"""Edges over ZeroMQ PUSH/PULL (inproc://, ipc://, tcp://): the ports behind edge.Sender and
edge.Receiver. A message is the three parts of an edge message (feeds/wire/frames.py), sent
without a copy and read back as a view of the received frame.

A tcp edge given a `Curve` is authenticated: the reader is a CURVE server that lets in only
the graph's allowed keys (zap.py) and counts every refused handshake in `refused`; the writer
is a CURVE client with the graph's key. Without it any process that reaches the port could
send a forged DECISION or end the stream (both were journaled as genuine)."""

from __future__ import annotations

import numpy as np
import zmq

from redline.feeds.wire.frames import EDGE_EOS, EDGE_STAMPS, dtype_tag, tag_dtype
from redline.pipeline.transport.curve import Curve
from redline.pipeline.transport.zap import Refusals, curve_client, curve_server

GRAPH_DOMAIN = "redline-graph"  # the ZAP domain of data-plane sockets

_EOS_PARTS = [EDGE_EOS, b"", b""]


class ZmqSendPort:
    """The writer's PUSH socket; connects, so the reader may start later."""

    def __init__(
        self, ctx: zmq.Context, address: str, hwm: int, curve: Curve | None = None
    ) -> None:
        self.sock = ctx.socket(zmq.PUSH)
        self.sock.setsockopt(zmq.LINGER, 2000)  # let a drain reach the reader
        self.sock.setsockopt(zmq.SNDHWM, hwm)
        if curve is not None:
            curve_client(self.sock, curve, curve.public)  # the reader holds the graph's key too
        self.sock.connect(address)

    def try_send(self, records: np.ndarray | None, stamp_ns: int, feed_ns: int) -> bool:
        try:
            if records is None:
                self.sock.send_multipart(_EOS_PARTS, flags=zmq.NOBLOCK)
            else:
                parts = [
                    dtype_tag(records.dtype),
                    EDGE_STAMPS.pack(stamp_ns, feed_ns),
                    records.data,
                ]
                self.sock.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return False
        return True

    def close(self) -> None:
        self.sock.close()


class ZmqRecvPort:
    """The reader's PULL socket; binds its address."""

    def __init__(
        self, ctx: zmq.Context, address: str, hwm: int, curve: Curve | None = None
    ) -> None:
        self.sock = ctx.socket(zmq.PULL)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, hwm)
        # handshakes refused: peers without an allowed key, their messages never read
        self.refusals = curve_server(self.sock, curve, GRAPH_DOMAIN) if curve else Refusals()
        self.sock.bind(address)

    @property
    def refused(self) -> int:
        return self.refusals.count

    def ready(self) -> bool:
        # Nothing waiting is the common case: ZMQ_EVENTS (~1-3 µs) instead of a zmq.Again
        # exception (~6-20 µs) from an empty recv.
        return bool(self.sock.getsockopt(zmq.EVENTS) & zmq.POLLIN)

    def fileno(self) -> int:
        return self.sock.getsockopt(zmq.FD)

    def take(self) -> tuple[np.ndarray | None, int, int] | None:
        if not self.ready():
            return None
        try:
            tag, stamps, data = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return None
        head = tag.bytes
        if head == EDGE_EOS:
            return None, 0, 0
        sent_ns, feed_ns = EDGE_STAMPS.unpack(stamps.buffer)
        records = np.frombuffer(data.buffer, dtype=tag_dtype(head))
        records.flags.writeable = False  # inproc hands over the writer's own memory
        return records, sent_ns, feed_ns

    def close(self) -> None:
        self.sock.close()
