"""The frame arbiter node: the arbiter node of a driving graph, a decision asked per fused frame.

The same node as the trading graph's (nodes/arbiter.py: both workers get every frame, the
arbiter picks an answer by the deadline, a worker can be killed and is restarted), except that
every fused SENSOR frame (nodes/sync.py) asks for a decision, not a quote, and each answer goes
out with its frame's readings (gap, closing, ego speed, health bits) for the planner:
`FRAME_ANSWER_DTYPE`. A record of any other kind is counted as undecided, as there.
"""

from __future__ import annotations

import numpy as np

from redline.feeds.events import DECISION_DTYPE, RecordType
from redline.pipeline.graph.nodes.arbiter import ArbiterNode
from redline.pipeline.graph.nodes.sync import V_CLOSING, V_GAP, V_HEALTH, V_SPEED

# What the planner reads: the decision-to-be (its score the model's acceleration) and the frame.
FRAME_ANSWER_DTYPE = np.dtype(
    [*DECISION_DTYPE.descr, ("gap", "<f8"), ("closing", "<f8"), ("speed", "<f8"),
     ("health", "<i8")]
)  # fmt: skip


class FrameArbiterNode(ArbiterNode):
    """Every fused frame to both workers, a decision asked on each (module docstring)."""

    kind = "frame_arbiter"

    def __init__(self, name, spec, clock, arbiter) -> None:
        super().__init__(name, spec, clock, arbiter)
        self._frames: dict[int, tuple[float, float, float, int]] = {}  # seq -> readings

    def _undecided(self, rtype: int, n: int) -> None:
        if rtype != RecordType.SENSOR:  # frames are what this node decides on
            super()._undecided(rtype, n)

    def _submit(self, records: np.ndarray, ts_feed: int, taken: int) -> None:
        rtype = self._rtype(records)
        if rtype != RecordType.SENSOR:
            super()._submit(records, ts_feed, taken)
            return
        v = records["values"]
        for seq, gap, closing, speed, health in zip(
            records["seq"].tolist(), v[:, V_GAP].tolist(), v[:, V_CLOSING].tolist(),
            v[:, V_SPEED].tolist(), v[:, V_HEALTH].tolist(), strict=True,
        ):  # fmt: skip
            self._frames[seq] = (gap, closing, speed, int(health))
        self.arb.submit_batch(records, decide=True, ts_feed=ts_feed, ts_features=taken,
                              rtype=rtype)  # fmt: skip
        self.asked += len(records)

    def _emit(self, batch) -> int:
        recs = batch.records
        n = len(recs)
        if not n:
            return 0
        out = self._answers(batch, FRAME_ANSWER_DTYPE)
        readings = [self._frames.pop(s) for s in recs["input_seq"].tolist()]
        out["gap"], out["closing"], out["speed"], out["health"] = zip(*readings, strict=True)
        self.output.send(out, stamp_ns=self.clock.now_ns())
        return n
