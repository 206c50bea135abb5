"""Who may connect to a CURVE socket: one ZAP handler per context, and refused handshakes counted.

    refused = curve_server(sock, curve, "graph")   # before bind: the caller binds after
    sock.bind("tcp://*:7001")
    refused.count                                   # handshakes this socket turned away

Pitfalls this file exists for:
- A CURVE server with no ZAP handler on its context accepts every client key. So a server
  socket is made only through `curve_server`, which installs the handler first, and the
  handler answers 200 only for a key on the socket's allow-list (never "any").
- pyzmq's asyncio authenticator started outside the running loop stalls every handshake
  without a word. This handler is a plain thread with its own REP socket: no loop involved.
- Only one handler can bind `inproc://zeromq.zap.01` per context: `authenticator(ctx)` makes it
  once and hands the same one to every socket of that context (allow-lists by ZAP domain).
- `curve_server` must be set before bind; `curve_server` does it, and binding is the caller's.

Refusals are counted from each server socket's monitor (handshake failed: no detail, protocol,
auth), which also sees clients that never reach ZAP: a plain (NULL) client or a wrong server key.
"""

from __future__ import annotations

import itertools
import queue
import threading
from typing import Any

import zmq
from zmq.utils import z85
from zmq.utils.monitor import parse_monitor_message

from redline.pipeline.transport.curve import Curve

ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # fixed by the ZAP spec (RFC 27)
_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
_POLL_MS = 50  # how soon a new monitor or a stop is noticed
_AUTHS: dict[int, Authenticator] = {}  # id(context) -> its handler
_LOCK = threading.Lock()
_MONITOR_NO = itertools.count()


class Refusals:
    """Handshakes one server socket refused (written by the handler's thread only)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class Authenticator:
    """The ZAP handler of one context, on a thread of its own."""

    def __init__(self, ctx: zmq.Context) -> None:
        self.ctx = ctx
        self._allowed: dict[bytes, frozenset[bytes]] = {}  # ZAP domain -> raw public keys
        self.denied: dict[str, int] = {}  # ZAP domain -> denials
        self._new: queue.Queue[tuple[zmq.Socket, Refusals]] = queue.Queue()
        self._stop = threading.Event()
        rep = ctx.socket(zmq.REP)
        rep.linger = 0
        try:
            rep.bind(ZAP_ENDPOINT)  # here, not in the thread: bound before any server binds
        except zmq.ZMQError as exc:
            rep.close()
            raise RuntimeError(
                f"another ZAP handler already serves this context ({exc}); use "
                "transport.zap.authenticator(ctx) so every socket shares one"
            ) from None
        self._thread = threading.Thread(target=self._serve, args=(rep,), daemon=True,
                                        name="redline-zap")  # fmt: skip
        self._thread.start()

    def allow(self, domain: str, keys: frozenset[bytes]) -> None:
        """Clients of sockets in `domain` must present one of `keys` (Z85); an empty set lets
        no one in."""
        raw = frozenset(z85.decode(k) for k in keys)
        old = self._allowed.get(domain.encode())
        if old is not None and old != raw:
            raise ValueError(f"ZAP domain {domain!r} already has another allow-list")
        self._allowed[domain.encode()] = raw
        self.denied.setdefault(domain, 0)

    def watch(self, sock: zmq.Socket) -> Refusals:
        """Count `sock`'s refused handshakes from its monitor."""
        address = f"inproc://redline-monitor-{next(_MONITOR_NO)}"
        sock.monitor(address, _FAILED)
        pair = sock.context.socket(zmq.PAIR)
        pair.linger = 0
        pair.connect(address)  # here, so no event is sent before anyone listens
        refused = Refusals()
        self._new.put((pair, refused))  # the queue hands the socket over to the thread
        return refused

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _serve(self, rep: zmq.Socket) -> None:
        poller = zmq.Poller()
        poller.register(rep, zmq.POLLIN)
        monitors: dict[zmq.Socket, Refusals] = {}
        try:
            while not self._stop.is_set():
                while not self._new.empty():
                    pair, refused = self._new.get()
                    monitors[pair] = refused
                    poller.register(pair, zmq.POLLIN)
                ready = dict(poller.poll(_POLL_MS))
                if rep in ready:
                    rep.send_multipart(self._answer(rep.recv_multipart()))
                for pair, refused in monitors.items():
                    if pair in ready:
                        event = parse_monitor_message(pair.recv_multipart())
                        if event["event"] & _FAILED:
                            refused.count += 1
        except zmq.ZMQError:  # the context was destroyed under us: nothing left to answer
            return
        finally:
            rep.close(0)
            for pair in monitors:
                pair.close(0)

    def _answer(self, request: list[bytes]) -> list[bytes]:
        """A ZAP reply (RFC 27): 200 for an allowed CURVE key, 400 for anything else on our
        domains; a NULL socket of no domain of ours (an ipc edge) is let through."""
        version, request_id, domain, _address, _identity, mechanism, *credentials = request
        allowed = self._allowed.get(domain)
        if allowed is None:
            ok = mechanism == b"NULL"
            user = b""
        else:
            ok = mechanism == b"CURVE" and bool(credentials) and credentials[0] in allowed
            user = z85.encode(credentials[0]) if ok else b""
            if not ok:
                self.denied[domain.decode()] += 1
        code, text = (b"200", b"OK") if ok else (b"400", b"key not allowed")
        return [version, request_id, code, text, user, b""]


def authenticator(ctx: zmq.Context) -> Authenticator:
    """The one ZAP handler of `ctx`, started on first use."""
    with _LOCK:
        auth = _AUTHS.get(id(ctx))
        if auth is None or auth.ctx is not ctx:  # held in the table, so an id is never reused
            auth = _AUTHS[id(ctx)] = Authenticator(ctx)
        return auth


def release(ctx: Any) -> None:
    """Stop `ctx`'s handler (before the context is destroyed: its sockets live on its thread)."""
    with _LOCK:
        auth = _AUTHS.pop(id(ctx), None)
    if auth is not None:
        auth.close()


def curve_server(sock: zmq.Socket, curve: Curve, domain: str) -> Refusals:
    """Make `sock` (not yet bound) a CURVE server that lets in only `curve.allowed`."""
    auth = authenticator(sock.context)
    auth.allow(domain, curve.allowed)
    sock.zap_domain = domain.encode()
    sock.curve_publickey = curve.public
    sock.curve_secretkey = curve.secret
    sock.curve_server = True  # before bind, or the socket serves NULL
    return auth.watch(sock)


def curve_client(sock: zmq.Socket, curve: Curve, server_public: bytes) -> None:
    """Make `sock` (not yet connected) a CURVE client of the server whose key is `server_public`."""
    sock.curve_publickey = curve.public
    sock.curve_secretkey = curve.secret
    sock.curve_serverkey = server_public
