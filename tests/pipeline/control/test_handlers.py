"""The graph's own handlers on real workers: `restart-worker` takes a worker through the crash
path (out, restarted, rebuilt, readmitted) while its peer keeps deciding."""

import json
import sys
import time
from pathlib import Path

import pytest

from redline.pipeline.control.client import call

sys.path.insert(0, str(Path(__file__).parent))
from running_graph import RunningGraph


@pytest.mark.slow
def test_restart_worker_replaces_the_process_and_the_graph_keeps_deciding(tmp_path):
    with RunningGraph(tmp_path, real_workers=True) as g:
        g.wait_decisions(20, timeout_s=120)
        before = json.loads(call(["status"], address=g.address, timeout_s=30)[1])
        old_pid = before["workers"]["B"]["pid"]
        code, text = call(["restart-worker", "B"], address=g.address, timeout_s=30)
        assert code == 0 and json.loads(text)["stopped_pid"] == old_pid
        decided = g.decisions
        deadline = time.monotonic() + 120
        while True:  # recovery: B out, restarted (a new process), rebuilt, back UP
            status = json.loads(call(["status"], address=g.address, timeout_s=30)[1])
            b = status["workers"]["B"]
            if b["pid"] not in (None, old_pid) and b["health"] == "UP":
                break
            assert time.monotonic() < deadline, f"worker B not back: {b}"
            time.sleep(0.1)
        assert status["faults"]["restarts"] >= 1 and b["trips"]["crash"] >= 1
        g.wait_decisions(decided + 20, timeout_s=60)  # deciding throughout
    assert g.code == 0


@pytest.mark.slow
def test_ctl_swap_flips_to_the_new_version_and_rollback_flips_back(tmp_path):
    with RunningGraph(tmp_path, real_workers=True) as g:
        g.wait_decisions(20, timeout_s=120)
        code, text = call(["rollback"], address=g.address, timeout_s=30)
        assert code == 1 and "no previous version is warm" in text  # nothing swapped yet
        code, text = call(["swap", "demo@2"], address=g.address, timeout_s=60)
        assert code == 0, text
        swapped = json.loads(text)
        assert swapped["version"] == "demo@2" and swapped["flipped_at_event"] > 0
        g.wait_decisions(g.decisions + 50, timeout_s=60)
        code, text = call(["rollback"], address=g.address, timeout_s=60)
        assert code == 0 and json.loads(text)["serving"] == "demo@1", text
        g.wait_decisions(g.decisions + 50, timeout_s=60)
        by_version = g.rt.nodes["arbiter"].arb.stats()["decisions_by_version"]
        assert by_version.get("demo@2", 0) > 0 and by_version.get("demo@1", 0) > 0, by_version
        code, text = call(["swap", "demo@9"], address=g.address, timeout_s=30)
        assert code == 1 and "demo@9" in text  # not in the registry: refused, still serving
        g.wait_decisions(g.decisions + 20, timeout_s=60)
    assert g.code == 0
