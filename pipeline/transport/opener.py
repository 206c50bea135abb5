"""Opens what one process reads and writes, by address: graph edges and feed sources.

    t = Transport()                                    # or Transport(context) to share one
    tx = t.sender("ticks", "ipc:///tmp/g/ticks", "conflate", hwm=64)
    rx = t.receiver("ticks", "mem://ticks", "block", hwm=64)
    feed = t.feed("tcp://127.0.0.1:5555", socket="sub", clock=clock, tracker=tracker)

The scheme picks the transport (transport/address.py): mem:// joins ends opened by the same
`Transport`, ZeroMQ addresses ends on the same context (inproc) or anywhere (ipc, tcp).

tcp edges carry CURVE with the graph's key (`curve`; zmq_edge.py): a Transport made without
one refuses to open a tcp edge unless it was told `insecure` (loopback tests).
"""

from __future__ import annotations

from typing import Any

from redline.pipeline.transport.curve import Curve
from redline.pipeline.transport.edge import Receiver, Sender
from redline.pipeline.transport.mem_edge import MemQueue, MemRecvPort, MemSendPort


class Transport:
    """The edges and feeds of one process, and the ZeroMQ context they share."""

    def __init__(self, context: Any = None, curve: Curve | None = None, insecure: bool = False):
        self._ctx = context  # a zmq.Context to share, e.g. with a test's publisher
        self._own_ctx = context is None
        self._mem: dict[str, MemQueue] = {}
        self.curve = curve  # the graph's key pair and allow-list, for tcp edges
        self.insecure = insecure

    def _curve_for(self, name: str, address: str) -> Curve | None:
        if not address.startswith("tcp://") or self.insecure:
            return None
        if self.curve is None:
            raise ValueError(
                f"edge '{name}': field 'address' is {address}: a tcp edge needs the graph's CURVE "
                "key; set [security] curve_secret_key_file (make one with `redline keys DIR`), "
                "or insecure = true for loopback tests"
            )
        return self.curve

    @property
    def context(self) -> Any:
        if self._ctx is None:
            import zmq

            self._ctx = zmq.Context()
        return self._ctx

    def _queue(self, address: str, hwm: int) -> MemQueue:
        q = self._mem.get(address)
        if q is None:
            q = self._mem[address] = MemQueue(hwm)
        return q

    def sender(self, name: str, address: str, policy: str, hwm: int, **bounds: Any) -> Sender:
        """`bounds`: the backlog's `max_bytes` and `overflow` (edge.Sender); its message bound
        is `hwm`, as the transport's."""
        if address.startswith("mem://"):
            port = MemSendPort(self._queue(address, hwm))
        else:
            from redline.pipeline.transport.zmq_edge import ZmqSendPort

            port = ZmqSendPort(self.context, address, hwm, self._curve_for(name, address))
        return Sender(name, port, policy, max_backlog=hwm, **bounds)

    def receiver(self, name: str, address: str, policy: str, hwm: int) -> Receiver:
        if address.startswith("mem://"):
            return Receiver(name, MemRecvPort(self._queue(address, hwm)), policy)
        from redline.pipeline.transport.zmq_edge import ZmqRecvPort

        curve = self._curve_for(name, address)
        return Receiver(name, ZmqRecvPort(self.context, address, hwm, curve), policy)

    def feed(self, address: str, **kwargs: Any):
        """A feed source (feeds/live/source.py) on `address`: ZeroMQ on this context, or UDP."""
        from redline.feeds.live.source import is_udp, open_feed

        if not is_udp(address):
            kwargs["context"] = self.context
        return open_feed(address, **kwargs)

    def close(self, linger_s: float = 2.0) -> None:
        if self._own_ctx and self._ctx is not None:
            from redline.pipeline.transport.zap import release

            # Its ZAP thread's sockets go before the context does. A shared context keeps its
            # handler (other CURVE sockets may still rely on it); it ends when that context does.
            release(self._ctx)
            self._ctx.destroy(linger=int(linger_s * 1000))
