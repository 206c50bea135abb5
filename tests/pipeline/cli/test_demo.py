"""`redline demo` end to end, small: real publisher process, real ZeroMQ, two
worker processes, chaos on; asserts the contract of the summary."""

import json

from redline.feeds.events import Origin
from redline.pipeline.cli import main as cli
from redline.pipeline.cli.demo import RECORDINGS, count_events
from redline.pipeline.observe.journal import read_journal
from redline.replay_data import DIR


def test_demo_accounts_for_every_event_and_fails_over(tmp_path):
    out = tmp_path / "demo.json"
    argv = ["demo", "--seconds", "3", "--speed", "3", "--out", str(tmp_path), "--json", str(out)]
    assert cli.main([*argv, "--no-progress"]) == 0
    f = json.loads(out.read_text())
    for key in ("events", "decisions", "decisions_by_origin", "lost_decisions", "deadline_misses",
                "failovers", "latency_ns", "stages", "events_per_s", "peak_rss_mb"):  # fmt: skip
        assert key in f, key
    assert f["events"] == count_events([str(DIR / r) for r in RECORDINGS], 3, (1,)) > 0
    assert f["lost_decisions"] == 0
    assert sum(f["decisions_by_origin"].values()) == f["decisions"] > 0
    # every event the feed accepted: sent to the workers, filtered (other instrument) or conflated
    arb = f["arbiter_node"]
    assert f["events"] == arb["events"] + arb["filtered"] + f["conflated"]["ticks"]
    assert f["killed_worker_pid"] and f["failovers"] >= 1
    d = read_journal(tmp_path / "journal.arrow")
    assert len(d) == f["decisions"]
    assert f["deadline_misses"] == int((d["ts_decision"] > d["deadline"]).sum())
    assert set(f["latency_ns"]) == {"p50", "p99", "p999", "max"} and f["latency_ns"]["p50"] > 0
    assert {Origin(o).name.lower() for o in set(d["origin"])} <= set(f["decisions_by_origin"])
    assert (tmp_path / "latency_histograms.png").stat().st_size > 0
