"""The ZAP handler: a CURVE server lets in only its allow-list, never any key; every refused
handshake (a wrong key, a wrong server key, no CURVE at all) is counted; one handler per
context."""

import time

import pytest
import zmq

from redline.pipeline.transport.curve import Curve
from redline.pipeline.transport.zap import (
    Authenticator,
    authenticator,
    curve_client,
    curve_server,
    release,
)


def _pair():
    public, secret = zmq.curve_keypair()
    return public, secret


@pytest.fixture
def server():
    ctx = zmq.Context()
    server_pub, server_sec = _pair()
    client_pub, client_sec = _pair()
    sock = ctx.socket(zmq.PULL)
    sock.linger = 0
    refused = curve_server(sock, Curve(server_pub, server_sec, frozenset({client_pub})), "t")
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    yield ctx, sock, port, refused, server_pub, (client_pub, client_sec)
    sock.close()
    release(ctx)
    ctx.term()


def _send(port, body, key=None, server_key=None):
    ctx = zmq.Context()
    s = ctx.socket(zmq.PUSH)
    s.linger = 0
    if key is not None:
        curve_client(s, Curve(*key, frozenset()), server_key)
    s.connect(f"tcp://127.0.0.1:{port}")
    s.send(body)
    return ctx, s


def _received(sock, wait_s=1.0) -> list[tuple[bytes, str | None]]:
    out = []
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if sock.poll(50):
            f = sock.recv(copy=False)
            out.append((f.bytes, f.get("User-Id")))
    return out


def test_only_an_allowed_key_gets_through_and_the_rest_are_counted(server):
    ctx, sock, port, refused, server_pub, allowed = server
    clients = [
        _send(port, b"allowed", allowed, server_pub),
        _send(port, b"stranger", _pair(), server_pub),  # a key not on the list: ZAP says 400
        _send(port, b"plain"),  # no CURVE: the handshake fails before ZAP
        _send(port, b"wrong server", allowed, _pair()[0]),  # thinks the server is someone else
    ]
    got = _received(sock)
    for c, s in clients:
        s.close()
        c.term()
    assert got == [(b"allowed", allowed[0].decode())]  # User-Id: the client's public key
    assert refused.count >= 3
    assert authenticator(ctx).denied == {"t": 1}  # the stranger; the others never reached ZAP


def test_one_handler_per_context(server):
    ctx = server[0]
    assert authenticator(ctx) is authenticator(ctx)
    with pytest.raises(RuntimeError, match="another ZAP handler already serves this context"):
        Authenticator(ctx)


def test_an_empty_allow_list_lets_no_one_in():
    ctx = zmq.Context()
    server_pub, server_sec = _pair()
    sock = ctx.socket(zmq.PULL)
    sock.linger = 0
    refused = curve_server(sock, Curve(server_pub, server_sec, frozenset()), "none")
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    c, s = _send(port, b"x", _pair(), server_pub)
    try:
        assert _received(sock, 0.5) == [] and refused.count >= 1
    finally:
        s.close(), c.term(), sock.close()
        release(ctx)
        ctx.term()
