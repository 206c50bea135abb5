"""The control endpoint of a running graph (the real runtime, ipc edges, a fake arbiter):
answers, errors that never stop the graph, the kill switch, drain, the command journal."""

import json
import sys
from pathlib import Path

import numpy as np

from redline.feeds.events import Side
from redline.pipeline.control.client import call
from redline.pipeline.control.journal import control_journal_path, read_commands
from redline.pipeline.observe.journal import read_journal
from redline.pipeline.transport.control_socket import request

sys.path.insert(0, str(Path(__file__).parent))
from running_graph import RunningGraph


def test_status_round_trip_over_ipc(tmp_path):
    with RunningGraph(tmp_path) as g:
        g.wait_decisions(10)
        assert g.address.startswith("ipc://") and g.address.endswith("/control")
        code, text = call(["status"], address=g.address)
        assert code == 0
        status = json.loads(text)
        assert status["graph"] == g.name
        assert status["nodes"] == ["feed", "arbiter", "strategy", "journal"]
        assert status["decisions"] >= 10 and status["events"] >= status["decisions"]
        assert status["kill_switch"] is False and status["draining"] is False
        assert status["control"]["accepted"] == 1 and status["control"]["refused"] == 0
    assert g.code == 0


def test_malformed_commands_are_answered_and_the_graph_keeps_deciding(tmp_path):
    with RunningGraph(tmp_path) as g:
        before = g.wait_decisions(10)
        bad = [b"not json", b'{"verb": "explode"}', b'{"verb": "kill-switch"}',
               b'{"verb": "swap", "args": ["no-version"]}', b"[1, 2]", b"\xff\xfe"]  # fmt: skip
        for body in bad:
            reply = json.loads(request(g.address, body, timeout_s=10))
            assert reply["ok"] is False and reply["error"]
        assert "unknown verb 'explode'" in json.loads(request(g.address, bad[1], 10))["error"]
        g.wait_decisions(before + 50)  # still deciding after every one of them
        status = json.loads(call(["status"], address=g.address)[1])
        assert status["control"]["malformed"] == len(bad) + 1
        assert status["control"]["accepted"] == 1  # only this status was a command
    assert g.code == 0


def test_swap_without_a_swap_handler_is_an_error_reply(tmp_path):
    with RunningGraph(tmp_path) as g:
        g.wait_decisions(1)
        code, text = call(["swap", "demo@2"], address=g.address)
        assert (code, text) == (1, "error: swap: this graph has no swap handler")
        code, text = call(["rollback"], address=g.address)
        assert (code, text) == (1, "error: rollback: this graph has no rollback handler")


def test_a_registered_swap_handler_gets_model_and_version(tmp_path):
    with RunningGraph(tmp_path) as g:
        seen = []

        async def swap(model: str, version: str) -> dict:
            seen.append((model, version))
            return {"serving": f"{model}@{version}"}

        g.rt.control_handlers.register("swap", swap)
        code, text = call(["swap", "demo@2"], address=g.address)
        assert code == 0 and json.loads(text) == {"serving": "demo@2"}
        assert seen == [("demo", "2")]


def test_kill_switch_on_stops_every_order_and_off_resumes(tmp_path):
    with RunningGraph(tmp_path) as g:
        g.wait_decisions(50)
        code, text = call(["kill-switch", "on"], address=g.address)
        assert code == 0 and json.loads(text)["kill_switch"] is True
        on_at = json.loads(text)["decisions"]  # decided before the switch: the rest after
        g.wait_decisions(on_at + 200)
        assert json.loads(call(["status"], address=g.address)[1])["kill_switch"] is True
        code, text = call(["kill-switch", "off"], address=g.address)
        off_at = json.loads(text)["decisions"]
        g.wait_decisions(off_at + 50)
    assert g.code == 0
    d = read_journal(g.journal)
    d = d[np.argsort(d["seq"])]  # the strategy's own numbering: the order it decided in
    sides = d["side"]
    assert (sides[:on_at] != Side.NONE).all()  # every quote traded before (|score| 0.9)
    assert (sides[on_at:off_at] == Side.NONE).all() and off_at - on_at >= 200
    assert (sides[off_at:] != Side.NONE).all()  # trading again once it is off
    assert len(d) == g.rt.nodes["strategy"].decisions  # every decision still journaled


def test_drain_ends_the_graph_cleanly_and_every_command_is_journaled(tmp_path):
    with RunningGraph(tmp_path) as g:
        g.wait_decisions(10)
        call(["status"], address=g.address)
        call(["swap", "m@1"], address=g.address)
        request(g.address, b"garbage", timeout_s=10)
        code, text = call(["drain"], address=g.address)
        assert code == 0 and json.loads(text)["draining"] is True
        assert g.join() == 0
    lines = read_commands(control_journal_path(g.journal))
    assert [(x["verb"], x["args"], x["ok"], x["key_id"]) for x in lines] == [
        ("status", [], True, "ipc"),
        ("swap", ["m@1"], False, "ipc"),
        ("drain", [], True, "ipc"),
    ]  # the garbage was not a command: answered, counted, not journaled
    assert lines[1]["error"] == "swap: this graph has no swap handler"
    assert all(x["ts_ns"] > 0 for x in lines)
