"""The control endpoint's socket (a ROUTER) and the client's request, behind the transport seam.

    sock = ControlSocket(ctx, "ipc:///run/user/1000/redline-1000/123-ab/control")
    req = sock.recv()                 # Request(envelope, key_id, body) or None; a Waitable
    sock.reply(req.envelope, b'{"ok": true}')
    answer = request(address, b'{"verb": "status"}', timeout_s=3.0)   # None: nobody answered

ipc is the default and needs no keys: the socket file lives in the run's private directory
(run_dir.py), so only its owner can connect; such a peer's key id is "ipc". A tcp endpoint
is a CURVE server with an explicit allow-list (zap.py) or is refused here; the key id of a
tcp peer is the start of its public key (curve.key_id).
"""

from __future__ import annotations

from typing import NamedTuple

import zmq

from redline.pipeline.transport.curve import Curve, key_id
from redline.pipeline.transport.zap import Refusals, curve_client, curve_server

CONTROL_DOMAIN = "redline-control"  # the ZAP domain of control endpoints


class Request(NamedTuple):
    envelope: list[bytes]  # the ROUTER's routing frames, handed back with the reply
    key_id: str  # "ipc", or the first characters of the client's CURVE public key
    body: bytes


class ControlSocket:
    """The graph's end: binds `address`; a Waitable (transport/waiting.py)."""

    def __init__(self, ctx: zmq.Context, address: str, curve: Curve | None = None) -> None:
        self.address = address
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        self.sock.maxmsgsize = 1 << 20  # a command is a few words: a peer sending MiBs is cut off
        self.refused = Refusals()
        if address.startswith("tcp://"):
            if curve is None or not curve.allowed:
                self.sock.close()
                raise ValueError(
                    f"control address {address}: tcp needs CURVE with allowed client keys; set "
                    "[control] curve_secret_key_file and allowed_client_keys, or use ipc"
                )
            self.refused = curve_server(self.sock, curve, CONTROL_DOMAIN)
        try:
            self.sock.bind(address)
        except zmq.ZMQError as exc:
            self.sock.close()
            raise ValueError(f"control address {address}: cannot bind ({exc})") from None
        # a tcp://*:0 style address binds a port of the system's choice: say which
        self.address = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def ready(self) -> bool:
        return bool(self.sock.getsockopt(zmq.EVENTS) & zmq.POLLIN)

    def fileno(self) -> int:
        return self.sock.getsockopt(zmq.FD)

    def recv(self) -> Request | None:
        if not self.ready():
            return None
        try:
            frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return None
        user = frames[-1].get("User-Id") if self.sock.curve_server else None
        return Request([f.bytes for f in frames[:-1]], key_id(user) if user else "ipc",
                       frames[-1].bytes)  # fmt: skip

    def reply(self, envelope: list[bytes], body: bytes) -> None:
        # A client gone before its answer: the ROUTER drops the reply, nothing blocks.
        self.sock.send_multipart([*envelope, body], zmq.NOBLOCK)

    def close(self) -> None:
        self.sock.close(linger=500)  # the answer to `drain` still reaches its client


def request(
    address: str,
    body: bytes,
    timeout_s: float,
    curve: Curve | None = None,
    server_public: bytes | None = None,
) -> bytes | None:
    """Send one command to the endpoint at `address` and wait for its answer; None when none
    came within `timeout_s` (no graph there, or a tcp server that refused our key)."""
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        if curve is not None and server_public is not None:
            curve_client(sock, curve, server_public)
        sock.connect(address)
        sock.send_multipart([b"", body])  # the empty frame: a REQ client's framing
        if not sock.poll(int(timeout_s * 1000)):
            return None
        return sock.recv_multipart()[-1]
    finally:
        ctx.destroy(linger=0)
