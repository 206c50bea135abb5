"""A tcp control endpoint: CURVE with an allow-list. An allowed client is answered and
journaled under its key id; a wrong key, or none, gets nothing and is counted."""

import json
import socket
import sys
from pathlib import Path

import pytest

from redline.pipeline.control.client import NO_ANSWER, call
from redline.pipeline.control.journal import control_journal_path, read_commands
from redline.pipeline.graph import config as gc
from redline.pipeline.transport.control_socket import request
from redline.pipeline.transport.curve import key_id, write_keypair

sys.path.insert(0, str(Path(__file__).parent))
from running_graph import RunningGraph


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keys(tmp_path: Path, name: str) -> tuple[Path, Path]:
    return write_keypair(tmp_path / "keys", name)


def test_tcp_control_lets_in_only_allowed_keys_and_counts_the_rest(tmp_path):
    graph_pub, graph_sec = _keys(tmp_path, "graph")
    ops_pub, ops_sec = _keys(tmp_path, "ops")
    _, intruder_sec = _keys(tmp_path, "intruder")
    address = f"tcp://127.0.0.1:{_port()}"
    extra = f"""
[control]
address = "{address}"
curve_secret_key_file = "{graph_sec}"
allowed_client_keys = ["{ops_pub.read_text().strip()}"]
"""
    with RunningGraph(tmp_path, extra) as g:
        g.wait_decisions(10)
        assert g.address == address
        ops = {"address": address, "server_key": str(graph_pub), "client_key": str(ops_sec)}
        code, text = call(["status"], **ops)
        assert code == 0 and json.loads(text)["graph"] == g.name
        # a key not on the list: no answer, and the graph counts the refusal
        code, text = call(["kill-switch", "on"], address=address, server_key=str(graph_pub),
                          client_key=str(intruder_sec), timeout_s=1.0)  # fmt: skip
        assert code == NO_ANSWER and "refused this client's key" in text
        # no CURVE at all (a plain client): no answer either
        assert request(address, b'{"verb": "drain"}', timeout_s=1.0) is None
        before = g.decisions
        status = json.loads(call(["status"], **ops)[1])
        assert status["control"]["refused"] >= 2  # each refused handshake, retries included
        assert status["kill_switch"] is False and status["draining"] is False
        g.wait_decisions(before + 20)  # deciding all along
    assert g.code == 0
    lines = read_commands(control_journal_path(g.journal))
    ops_id = key_id(ops_pub.read_text().strip())
    assert [(x["verb"], x["key_id"]) for x in lines] == [("status", ops_id), ("status", ops_id)]
    assert len(ops_id) == 8


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (
            '[control]\naddress = "tcp://127.0.0.1:7100"\n',
            "needs curve_secret_key_file and allowed",
        ),
        ('[control]\naddress = "udp://x:1"\n', "use ipc://PATH or tcp://HOST:PORT"),
        ('[control]\nallowed_client_keys = ["short"]\n', "allowed_client_keys[0]"),
    ],
)
def test_a_tcp_control_address_without_keys_is_a_one_line_config_error(tmp_path, extra, error):
    from running_graph import GRAPH

    text = GRAPH.format(name="t", d=tmp_path, decisions=f"ipc://{tmp_path}/d") + extra
    with pytest.raises(gc.GraphError, match="control") as exc:
        gc.parse(text, "g.toml")
    assert error in str(exc.value) and "\n" not in str(exc.value)


def test_a_control_port_in_use_fails_the_start_in_one_line(tmp_path):
    _, graph_sec = _keys(tmp_path, "graph")
    ops_pub, _ = _keys(tmp_path, "ops")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"tcp://127.0.0.1:{busy.getsockname()[1]}"
        extra = f"""
[control]
address = "{address}"
curve_secret_key_file = "{graph_sec}"
allowed_client_keys = ["{ops_pub.read_text().strip()}"]
"""
        with pytest.raises(ValueError) as exc:
            RunningGraph(tmp_path, extra)
    assert str(exc.value).startswith(f"control address {address}: cannot bind")
    assert "\n" not in str(exc.value)


def _scrape(port: int) -> dict[str, float]:
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    except OSError:  # not serving yet
        return {}
    lines = text.decode().splitlines()
    return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1])
            for ln in lines if ln.startswith("redline_") and " " in ln}  # fmt: skip


def test_refused_handshakes_of_both_planes_are_on_metrics(tmp_path):
    import time

    import zmq

    graph_pub, graph_sec = _keys(tmp_path, "graph")
    ops_pub, _ = _keys(tmp_path, "ops")
    _, intruder_sec = _keys(tmp_path, "intruder")
    address, edge = f"tcp://127.0.0.1:{_port()}", f"tcp://127.0.0.1:{_port()}"
    extra = f"""
[control]
address = "{address}"
curve_secret_key_file = "{graph_sec}"
allowed_client_keys = ["{ops_pub.read_text().strip()}"]

[security]
curve_secret_key_file = "{graph_sec}"
"""
    g = RunningGraph(tmp_path, extra, decisions=edge)
    g.rt.metrics_port = port = _port()
    control = 'redline_refused_handshakes_total{endpoint="control",plane="control"}'
    data = 'redline_refused_handshakes_total{endpoint="decisions",plane="data"}'
    with g:
        g.wait_decisions(10)
        deadline = time.monotonic() + 30
        while control not in (seen := _scrape(port)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert seen.get(control) == 0 and seen.get(data) == 0  # declared before any refusal
        # control plane: a client key not on the allow-list
        code, _ = call(["status"], address=address, server_key=str(graph_pub),
                       client_key=str(intruder_sec), timeout_s=1.0)  # fmt: skip
        assert code == NO_ANSWER
        # data plane: a plain (NULL) peer pushing to the tcp decisions edge
        ctx = zmq.Context()
        push = ctx.socket(zmq.PUSH)
        push.linger = 0
        push.connect(edge)
        while (seen := _scrape(port)).get(data, 0) < 1 or seen.get(control, 0) < 1:
            assert time.monotonic() < deadline, {k: v for k, v in seen.items() if "refused" in k}
            time.sleep(0.2)
        push.close()
        ctx.term()
        status = json.loads(call(["status"], address=address, server_key=str(graph_pub),
                                 client_key=str(tmp_path / "keys" / "ops.secret"))[1])  # fmt: skip
        # the endpoint's own count agrees with what /metrics says (scraped every 0.2 s)
        assert status["control"]["refused"] >= seen[control] >= 1
        assert status["edges_refused"]["decisions"] >= seen[data] >= 1
    assert g.code == 0
