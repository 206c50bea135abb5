"""The features node: per-instrument features kept current as events pass (optional)."""

from __future__ import annotations

from typing import Any

import numpy as np

from redline.feeds.events import RecordType, record_type_of
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.nodes.base import Node


class FeaturesNode(Node):
    """Per-instrument feature state kept current as events pass (the design's
    prefetch stage: what the next decision needs is ready before it is asked
    for); stamps `ts_features` on the records it hands on.

    The state is the workers' own kind, `engine.KernelFeatures` (the numba
    kernel of `kernels/features.py`), updated by every QUOTE and TRADE; other
    records pass through. The workers still keep their own resident copy (a
    failover must not depend on this process), so this node is optional: a
    graph without it stamps `ts_features` in the arbiter.
    """

    kind = "features"

    def __init__(self, name, spec: gc.FeaturesSpec, clock) -> None:
        super().__init__(name, spec, clock)
        from redline.kernels.feature_state import KernelFeatures

        self.state = KernelFeatures(spec.max_instruments)
        self._row = np.zeros(self.state.k, np.float32)  # [K] scratch: features after an event
        self._rtypes: dict[np.dtype, int] = {}
        self.updates = 0

    def step(self) -> int:
        rx = self.inputs[0]
        n = 0
        if self.held_back():
            return 0
        for records, _, ts_feed in rx.recv():
            rtype = self._rtypes.get(records.dtype)
            if rtype is None:
                rtype = self._rtypes[records.dtype] = int(record_type_of(records.dtype))
            if rtype in (RecordType.QUOTE, RecordType.TRADE):
                update, row = self.state.update, self._row
                for i in range(len(records)):
                    update(rtype, records[i : i + 1], row)
                self.updates += len(records)
            self.output.send(records, stamp_ns=self.clock.now_ns(), feed_ns=ts_feed)
            n += len(records)
        self.events += n
        if rx.ended and not self.ending:
            self._end()
        return n

    def features(self, instrument_id: int) -> np.ndarray:
        """The instrument's current features (float32 [N_FEATURES]); KeyError if never seen."""
        return self.state.state.features(self.state.inst.index[instrument_id])

    def stats(self) -> dict[str, Any]:
        st = self.state
        rejected = sum(st.state.rejected(r) for r in st.inst.index.values())
        return {
            **super().stats(),
            "updates": self.updates,
            "instruments": len(st.inst.index),
            "rejected": rejected,
        }
