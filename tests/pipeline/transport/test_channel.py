"""Worker links over tcp: the worker lets in only the graph's key. A foreign peer gets none of
its answers and cannot stop it; the worker counts it and says so in its heartbeats."""

import socket
import time

import pytest
import zmq

from redline.pipeline.transport.channel import Channel
from redline.pipeline.transport.curve import write_keypair
from redline.pipeline.workers.link import ProcessLink
from redline.pipeline.workers.protocol import Kind, header
from redline.replay_data import DIR


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(link: ProcessLink, kind: Kind, timeout_s: float = 60.0, until=lambda r: True):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert not link.exited(), "the worker exited"
        for reply in link.recv():
            if reply.kind == kind and until(reply):
                return reply
        link.channel.poll(20)
    raise AssertionError(f"no {kind.name} within {timeout_s} s")


def test_a_foreign_peer_on_a_tcp_worker_link_is_refused_and_counted(tmp_path):
    _, secret = write_keypair(tmp_path, "graph")
    endpoint = f"tcp://127.0.0.1:{_port()}"
    link = ProcessLink("A", endpoint, DIR / "model", heartbeat_ms=20, curve_file=str(secret))
    link.start()
    ctx = zmq.Context()
    try:
        _wait(link, Kind.READY)
        strangers = []
        for key in (None, zmq.curve_keypair()):  # plain ZeroMQ, and a CURVE key of its own
            s = ctx.socket(zmq.DEALER)
            s.linger = 0
            if key is not None:
                s.curve_publickey, s.curve_secretkey = key
                s.curve_serverkey = link.curve.public  # a public key is no secret
            s.connect(endpoint)
            s.send_multipart([header(Kind.STOP)])  # would end the worker if it were read
            strangers.append(s)
        _wait(link, Kind.HEARTBEAT, until=lambda r: r.stamps[1] >= 2)  # counted: both
        assert link.refused >= 2 and not link.exited()  # the STOPs never reached it
        link.send([header(Kind.SNAPSHOT)])
        assert _wait(link, Kind.STATE).kind == Kind.STATE  # and it still serves its arbiter
        assert not any(s.poll(100) for s in strangers)  # nothing of the worker's reached them
    finally:
        for s in strangers:
            s.close()
        ctx.term()
        link.stop()


def test_a_tcp_worker_endpoint_without_the_graph_key_is_refused():
    with pytest.raises(ValueError, match="a tcp worker link needs the graph's CURVE key"):
        Channel.bind(f"tcp://127.0.0.1:{_port()}")
    with pytest.raises(ValueError, match="a tcp worker link needs the graph's CURVE key"):
        Channel.connect(f"tcp://127.0.0.1:{_port()}")
    Channel.bind(f"tcp://127.0.0.1:{_port()}", insecure=True).close()  # loopback tests only
