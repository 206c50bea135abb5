"""A worker channel: messages of several parts, both ways, between the arbiter and one worker.

ZeroMQ DEALER <-> DEALER today. The arbiter's end connects with ZMQ_IMMEDIATE, so a send to a
dead worker fails at once instead of queueing (that is how a crash shows within one event); the
worker's end binds after its warm-up. Parts come back as memoryviews of the received frames
(no copy); each view keeps its frame alive.

Who may be the arbiter: a worker's ipc socket lives in the run's private directory
(run_dir.py). A tcp worker endpoint is a CURVE server that lets in only the graph's key
(zap.py), or nothing opens it: a DEALER hands its answers round-robin to whoever connects, and
a STOP from anyone would end it. Refused handshakes are counted in `refused`.
"""

from __future__ import annotations

import zmq

from redline.pipeline.transport.curve import Curve
from redline.pipeline.transport.zap import Refusals, curve_client, curve_server

WORKER_DOMAIN = "redline-worker"  # the ZAP domain of worker endpoints


def _check_tcp(endpoint: str, curve: Curve | None, insecure: bool) -> None:
    if endpoint.startswith("tcp://") and curve is None and not insecure:
        raise ValueError(
            f"worker endpoint {endpoint}: a tcp worker link needs the graph's CURVE key "
            "([security] curve_secret_key_file), or insecure for loopback tests; or use ipc"
        )


class Channel:
    """One end of a worker link; a Waitable (transport/waiting.py)."""

    def __init__(
        self, sock: zmq.Socket, ctx: zmq.Context | None = None, refusals: Refusals | None = None
    ) -> None:
        self.sock = sock
        self._own_ctx = ctx  # terminated on close when this channel made it
        self.refusals = refusals or Refusals()

    @property
    def refused(self) -> int:
        """Handshakes refused to peers without the graph's key (a bound tcp end)."""
        return self.refusals.count

    @classmethod
    def connect(
        cls,
        endpoint: str,
        ctx: zmq.Context | None = None,
        curve: Curve | None = None,
        insecure: bool = False,
    ) -> Channel:
        """The arbiter's end: sends fail at once while no worker is connected. Over tcp it
        proves the graph's key (`curve`) and checks the worker holds it too."""
        _check_tcp(endpoint, curve, insecure)
        s = (ctx or zmq.Context.instance()).socket(zmq.DEALER)
        if curve is not None:
            curve_client(s, curve, curve.public)
        s.linger = 0
        s.immediate = True  # queue only to a live connection: sends to a dead worker fail
        s.sndhwm = s.rcvhwm = 1_000_000  # a stopped worker is caught by heartbeats, not HWM
        s.reconnect_ivl = 5  # ms; the worker binds only after its warm-up
        s.connect(endpoint)
        return cls(s)

    @classmethod
    def bind(cls, endpoint: str, curve: Curve | None = None, insecure: bool = False) -> Channel:
        """The worker's end, on a context of its own; over tcp a CURVE server that lets in
        only `curve.allowed`."""
        _check_tcp(endpoint, curve, insecure)
        ctx = zmq.Context()
        s = ctx.socket(zmq.DEALER)
        s.linger = 0
        s.sndhwm = s.rcvhwm = 0  # no limit: the arbiter decides what is too much
        refusals = curve_server(s, curve, WORKER_DOMAIN) if curve is not None else None
        try:
            s.bind(endpoint)
        except zmq.ZMQError as exc:
            s.close(0)
            _end(ctx)
            raise ValueError(f"cannot bind worker endpoint {endpoint!r}: {exc}") from None
        return cls(s, ctx, refusals)

    def send(self, parts: list, *, wait: bool = False, copy: bool = False) -> bool:
        """Send one message; without `wait`, False when it cannot be queued now. With `copy`
        the parts are copied, so their buffers may be reused at once."""
        try:
            self.sock.send_multipart(parts, 0 if wait else zmq.NOBLOCK, copy=copy)
        except zmq.Again:
            return False
        return True

    def ready(self) -> bool:
        # Ask before reading: a read that raises zmq.Again costs 7.7 µs here, the check 3.
        return bool(self.sock.getsockopt(zmq.EVENTS) & zmq.POLLIN)

    def fileno(self) -> int:
        return self.sock.getsockopt(zmq.FD)

    def poll(self, timeout_ms: int) -> bool:
        """Block up to `timeout_ms` for a message; True when one waits."""
        return bool(self.sock.poll(timeout_ms, zmq.POLLIN))

    def recv(self) -> list[memoryview] | None:
        """One waiting message as its parts, or None when nothing waits."""
        if not self.ready():
            return None
        try:
            frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return None
        return [f.buffer for f in frames]

    def close(self) -> None:
        self.sock.close(0)
        if self._own_ctx is not None:
            _end(self._own_ctx)


def _end(ctx: zmq.Context) -> None:
    from redline.pipeline.transport.zap import release

    release(ctx)  # the ZAP thread's sockets first, or term() waits for them
    ctx.term()
