"""Where a graph's control endpoint is: published, found, withdrawn, stale files ignored."""

import json
import os
import subprocess
import sys

import pytest

from redline.pipeline.control import discovery
from redline.pipeline.transport import run_dir


@pytest.fixture(autouse=True)
def _private_base(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # not the user's real graphs


def test_published_graph_is_found_and_withdrawn():
    path = discovery.publish("demo", "ipc:///x/control")
    assert path.parent.stat().st_mode & 0o777 == 0o700  # only the owner may read or write it
    found = discovery.find()
    assert found == {"graph": "demo", "address": "ipc:///x/control", "pid": os.getpid(),
                     "server_key": ""}  # fmt: skip
    assert discovery.find("demo")["address"] == "ipc:///x/control"
    discovery.withdraw(path, "ipc:///other")  # not ours any more: kept
    assert path.exists()
    discovery.withdraw(path, "ipc:///x/control")
    assert not path.exists()
    with pytest.raises(FileNotFoundError, match="no running graph found"):
        discovery.find()


def test_two_runs_of_one_graph_keep_their_own_files_and_must_be_told_apart():
    path = discovery.publish("demo", "ipc:///one")
    other = path.with_name("demo.1.json")  # pid 1 (init) is alive: another run of "demo"
    other.write_text(json.dumps({"graph": "demo", "address": "ipc:///two", "pid": 1}))
    with pytest.raises(ValueError, match=r"several graphs are running: demo .*ipc:///one"):
        discovery.find("demo")
    discovery.withdraw(path, "ipc:///one")
    assert discovery.find("demo")["address"] == "ipc:///two" and other.exists()


def test_several_graphs_need_a_name_and_a_dead_ones_file_is_removed():
    discovery.publish("a", "ipc:///a")
    discovery.publish("b", "ipc:///b")
    with pytest.raises(ValueError, match=r"several graphs are running: a \(pid \d+, ipc:///a\), b"):
        discovery.find()
    assert discovery.find("b")["address"] == "ipc:///b"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = run_dir.control_dir() / f"c.{int(dead.stdout)}.json"
    stale.write_text(json.dumps({"graph": "c", "address": "ipc:///c", "pid": int(dead.stdout)}))
    assert [g["graph"] for g in discovery.running()] == ["a", "b"]
    assert not stale.exists()
