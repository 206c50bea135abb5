"""tcp edges carry CURVE with the graph's key: a process without it cannot inject a DECISION
or end the stream (both were journaled as genuine before), and every try is counted."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from redline.feeds.events import DECISION_DTYPE
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.runtime import Runtime
from redline.pipeline.observe.journal import read_journal
from redline.pipeline.transport.curve import Curve, read_secret, write_keypair
from redline.pipeline.transport.zmq_edge import ZmqRecvPort, ZmqSendPort

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "control"))
from forger import FORGED_INSTRUMENT  # noqa: E402
from running_graph import GRAPH, RunningGraph, fake_arbiter  # noqa: E402


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _forge(address: str, seconds: float, server_key: str = "") -> subprocess.Popen:
    args = [sys.executable, str(HERE / "forger.py"), address, str(seconds)]
    return subprocess.Popen([*args, server_key] if server_key else args)


def _drain(port: ZmqRecvPort, wait_s: float) -> list:
    got, end = [], time.monotonic() + wait_s
    while time.monotonic() < end:
        if port.sock.poll(20) and (m := port.take()) is not None:
            got.append(m)
    return got


def test_forged_frames_on_a_tcp_edge_are_refused_counted_and_never_journaled(tmp_path):
    _, secret = write_keypair(tmp_path / "keys", "graph")
    address = f"tcp://127.0.0.1:{_port()}"
    extra = f'\n[security]\ncurve_secret_key_file = "{secret}"\n'
    with RunningGraph(tmp_path, extra, decisions=address) as g:
        g.wait_decisions(10)
        graph_public = read_secret(secret)[0].decode()
        forgers = [_forge(address, 1.0), _forge(address, 1.0, graph_public)]
        assert [f.wait(30) for f in forgers] == [0, 0]
        mid = g.wait_decisions(g.decisions + 20)  # the forged end of stream ended nothing
        refused = g.rt.stats()["edges"]["decisions"]["refused"]
    assert g.code == 0
    d = read_journal(g.journal)
    assert FORGED_INSTRUMENT not in set(d["instrument_id"].tolist())
    assert len(d) == g.rt.nodes["strategy"].decisions > mid  # the real stream, whole
    assert refused >= 2  # both forgers, each handshake they tried
    assert g.rt.stats()["edges"]["decisions"]["refused"] >= refused


def test_without_curve_the_same_forgery_gets_through(tmp_path):
    """Why the edge needs CURVE: an insecure tcp edge reads the forger's DECISION and EOS."""
    ctx = zmq.Context()
    address = f"tcp://127.0.0.1:{_port()}"
    port = ZmqRecvPort(ctx, address, 100)
    forger = _forge(address, 0.5)
    try:
        got = []
        while forger.poll() is None:  # read for as long as the forger sends
            got += _drain(port, 0.1)
        got += _drain(port, 0.2)
        assert forger.returncode == 0
    finally:
        port.close()
        ctx.term()
    assert any(m[0] is None for m in got)  # an end of stream from a stranger
    forged = [m[0] for m in got if m[0] is not None]
    assert forged and forged[0]["instrument_id"][0] == FORGED_INSTRUMENT


def test_a_writer_with_the_graph_key_is_read_and_one_without_is_not(tmp_path):
    public, secret = zmq.curve_keypair()
    curve = Curve(public, secret, frozenset({public}))
    ctx = zmq.Context()
    address = f"tcp://127.0.0.1:{_port()}"
    reader = ZmqRecvPort(ctx, address, 100, curve)
    ours = ZmqSendPort(ctx, address, 100, curve)
    other_pub, other_sec = zmq.curve_keypair()
    stranger = ZmqSendPort(ctx, address, 100, Curve(other_pub, other_sec, frozenset()))
    stranger.sock.curve_serverkey = public  # knows whom it talks to, but not the graph's key
    rec = np.zeros(1, DECISION_DTYPE)
    rec["instrument_id"] = 7
    fake = rec.copy()
    fake["instrument_id"] = 8
    try:
        assert ours.try_send(rec, 1, 1)
        stranger.try_send(fake, 1, 1)  # queued at the stranger: its handshake never completes
        stranger.try_send(None, 0, 0)
        got = _drain(reader, 1.0)
    finally:
        for p in (reader, ours, stranger):
            p.close()
        from redline.pipeline.transport.zap import release

        release(ctx)
        ctx.term()
    assert [(m[0]["instrument_id"].tolist() if m[0] is not None else None) for m in got] == [[7]]
    assert reader.refused >= 1


def test_a_tcp_edge_without_the_graph_key_is_a_config_error(tmp_path):
    text = GRAPH.format(name="t", d=tmp_path, decisions="tcp://127.0.0.1:7001")
    with pytest.raises(
        ValueError, match=r"edge 'decisions'.*needs the graph's CURVE key.*insecure"
    ):
        Runtime(gc.parse(text), arbiter_factory=fake_arbiter())
    insecure = gc.parse(text + "\n[security]\ninsecure = true\n")
    Runtime(insecure, arbiter_factory=fake_arbiter()).close()  # loopback tests may opt out
