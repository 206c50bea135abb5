"""`redline ctl`: exit 0 done, 1 an error reply, 2 bad input, 3 no answer (one line)."""

import json
import sys
from pathlib import Path

import pytest

from redline.pipeline.cli.main import main

sys.path.insert(0, str(Path(__file__).parent))
from running_graph import RunningGraph


def test_ctl_finds_the_running_graph_and_exits_by_the_answer(tmp_path, capsys):
    with RunningGraph(tmp_path) as g:
        g.wait_decisions(10)
        assert main(["ctl", "--graph", g.name, "status"]) == 0
        assert json.loads(capsys.readouterr().out)["graph"] == g.name
        assert main(["ctl", "--address", g.address, "swap", "demo@2"]) == 1
        assert capsys.readouterr().err == "error: swap: this graph has no swap handler\n"
        assert main(["ctl", "--graph", g.name, "restart-worker", "A"]) == 1  # the fake has none
        assert "restart-worker: worker A is not running" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["explode"], "unknown verb 'explode'; valid: status, swap"),
        (["kill-switch"], "kill-switch: takes 1 argument(s), got 0; usage: kill-switch on|off"),
        (["kill-switch", "maybe"], "kill-switch: 'maybe'; usage: kill-switch on|off"),
        (["swap", "demo"], "swap: 'demo' is not MODEL@VERSION"),
        (["restart-worker", "C"], "restart-worker: 'C'; usage: restart-worker A|B"),
        (["--address", "tcp://127.0.0.1:9", "status"], "tcp needs --server-key FILE"),
        (["--timeout", "0", "status"], "--timeout must be > 0"),
    ],
)
def test_ctl_bad_input_exits_2_with_one_line_before_sending(capsys, argv, error):
    assert main(["ctl", *argv]) == 2
    err = capsys.readouterr().err
    assert error in err and err.count("\n") == 1


def test_ctl_times_out_with_one_line_when_no_graph_answers(tmp_path, capsys):
    address = f"ipc://{tmp_path}/nobody"
    assert main(["ctl", "--address", address, "--timeout", "0.3", "status"]) == 3
    assert capsys.readouterr().err == (
        f"no answer from {address} within 0.3 s: is the graph running?\n"
    )


def test_ctl_without_a_running_graph_says_how_to_start_one(capsys):
    assert main(["ctl", "--graph", "no-such-graph", "status"]) == 2
    err = capsys.readouterr().err
    assert "no running graph 'no-such-graph' found" in err and "redline demo" in err
