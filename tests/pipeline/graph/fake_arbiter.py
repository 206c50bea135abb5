"""Test double of the workers' Arbiter (same submit/poll/close/stats surface):
answers every ask on the next poll, in process, with a score that alternates
by input seq (+0.9 even, -0.9 odd), so graph tests need no worker processes.

Also runnable as a graph process: `python fake_arbiter.py GRAPH JSON [NODE...]`.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import numpy as np

from redline.feeds.events import DECISION_DTYPE, Origin


class Decisions(NamedTuple):
    records: np.ndarray
    outputs: np.ndarray
    alarms: np.ndarray


class FakeArbiter:
    links = ()
    breakers = ()
    versions = ()

    def __init__(self, node, clock, graph) -> None:
        self.clock = clock
        self.budget_ns = graph.budget_ns
        self.pending: list[np.ndarray] = []
        self.events = 0
        self.asked = 0
        self.closed = False
        self.counts = {"failovers": 0}

    def submit(
        self,
        record: np.ndarray,
        *,
        decide: bool = True,
        ts_feed: int = 0,
        ts_features: int = 0,
        rtype: int | None = None,
        raw=None,
    ) -> int:
        self.events += 1
        if decide:
            self.asked += 1
            rec = np.zeros(1, DECISION_DTYPE)
            for f in ("ts_event", "ts_recv", "instrument_id"):
                rec[f] = record[f]
            rec["input_seq"] = record["seq"]
            rec["input_source_id"] = record["source_id"]
            rec["ts_feed"] = ts_feed
            rec["ts_features"] = ts_features
            rec["ts_request"] = now = self.clock.now_ns()
            rec["deadline"] = now + self.budget_ns
            self.pending.append(rec)
        return self.events

    def submit_batch(self, records, *, decide=True, ts_feed=0, ts_features=0, rtype=None):
        decides = [decide] * len(records) if isinstance(decide, bool) else decide
        first = self.events + 1
        for r, d in zip(records, decides, strict=True):
            self.submit(r, decide=d, ts_feed=ts_feed, ts_features=ts_features, rtype=rtype)
        return first

    def poll(self) -> Decisions:
        if not self.pending:
            return Decisions(
                np.zeros(0, DECISION_DTYPE), np.zeros((0, 1), np.float32), np.zeros(0, bool)
            )
        recs = np.concatenate(self.pending)
        self.pending = []
        now = self.clock.now_ns()
        for f in ("ts_worker_start", "ts_worker_end", "ts_answer", "ts_decision"):
            recs[f] = now
        recs["origin"] = Origin.WORKER_A
        recs["model_version"] = 1
        score = np.where(recs["input_seq"] % 2 == 0, 0.9, -0.9).astype(np.float32)
        return Decisions(recs, score[:, None], np.zeros(len(recs), bool))

    wall_offset_ns = 0  # no workers: nothing happens to them

    def events_log(self) -> list:
        return []

    def close(self) -> None:
        self.closed = True

    def stats(self) -> dict:
        return {"events": self.events, "decisions": self.asked, "failovers": 0}


if __name__ == "__main__":
    from redline.pipeline.cli.run import run_graph
    from redline.pipeline.graph import config as graph_config

    graph, json_path, *nodes = sys.argv[1:]
    sys.exit(run_graph(graph_config.load(graph), nodes, json_path, arbiter_factory=FakeArbiter))
