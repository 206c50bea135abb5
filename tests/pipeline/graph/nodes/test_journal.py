"""The journal node in memory: decisions in, journaled, counted and timed."""

import numpy as np

from redline.feeds.clock import ReplayClock
from redline.feeds.events import Origin
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.harness import Harness
from redline.pipeline.graph.nodes import JournalNode
from redline.pipeline.observe.journal import read_journal


def test_every_decision_is_journaled_counted_and_timed(tmp_path, make_decisions):
    clock = ReplayClock(1_800_000_000_000_000_000)
    spec = gc.JournalSpec(in_="decisions", path=str(tmp_path / "j.arrow"))
    h = Harness(JournalNode("journal", spec, clock))
    d = make_decisions(300, seed=3)
    h.push(d[:120])
    h.push(d[120:])
    h.end()
    h.run()
    assert h.node.done
    back = read_journal(tmp_path / "j.arrow")
    np.testing.assert_array_equal(back["input_seq"], d["input_seq"])
    st = h.node.stats()
    assert st["decisions"] == 300
    want = {o.name.lower(): int((d["origin"] == o).sum()) for o in Origin}
    assert {k: v for k, v in st["decisions_by_origin"].items() if v} == {
        k: v for k, v in want.items() if v
    }
    assert st["deadline_misses"] == int((d["ts_decision"] > d["deadline"]).sum()) > 0
    assert st["latency_samples"] + st["latency_excluded"] == 300
    assert st["latency_ns"]["p50"] > 0
