"""The control socket: ipc peers are named "ipc"; tcp without CURVE and an allow-list is
refused before it binds."""

import pytest
import zmq

from redline.pipeline.transport.control_socket import ControlSocket, request
from redline.pipeline.transport.curve import Curve


def test_an_ipc_request_is_read_with_its_key_id_and_answered(tmp_path):
    ctx = zmq.Context()
    sock = ControlSocket(ctx, f"ipc://{tmp_path}/control")
    import threading

    answers = []
    t = threading.Thread(target=lambda: answers.append(request(sock.address, b"hi", 10)))
    t.start()
    try:
        assert sock.sock.poll(10_000)
        req = sock.recv()
        assert (req.key_id, req.body) == ("ipc", b"hi")
        sock.reply(req.envelope, b"hello")
        t.join(10)
    finally:
        sock.close()
        ctx.term()
    assert answers == [b"hello"]


@pytest.mark.parametrize("allowed", [None, frozenset()])
def test_tcp_without_curve_and_an_allow_list_is_refused(allowed):
    ctx = zmq.Context()
    public, secret = zmq.curve_keypair()
    curve = None if allowed is None else Curve(public, secret, allowed)
    with pytest.raises(ValueError, match="tcp needs CURVE with allowed client keys"):
        ControlSocket(ctx, "tcp://127.0.0.1:*", curve)
    ctx.term()  # nothing was left open
