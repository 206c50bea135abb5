"""The sync node: sensor streams -> fused frames, one SENSOR record per frame, for the planner.

A fused frame (`sensor_id` FUSED_SENSOR_ID, `seq` and `frame_id` the frame number, `ts_event`
the frame's source time, `ts_recv` the latest arrival among its inputs, so the decision's
deadline runs from when its last input came) carries in `values`:

    [0:4] the model's inputs (kernels/plans/driving_model.py: what a worker's one-event window
          reads); finite even when an input is blanked, so a worker never answers NaN for it
    [4:7] gap m, closing speed m/s, ego speed m/s (NaN where the sync blanked the input)
    [7]   Health bits (strategies/acc_aeb.py): STALE_INPUT when an input is stale or missing

With a closed loop attached (`attach`, venue/driving_loop.LiveLoop) the node is the loop's
sensor model: each frame's gap, closing and ego speed are what the simulated ego sees at the
frame's source time, and a frame goes out only once every earlier frame was commanded, so the
world moves in step with the graph's decisions (a simulator waiting on its controller). With
`behind = "latest"` a frame that a newer one overtook while both waited is superseded (counted,
never sent): the planner always gets the newest world, so a slow host costs frames, not a lag
that grows. Without a loop the recorded readings go through as they are.

Records of other kinds, or of sensors the frame does not use, are counted (`ignored`), never
silently dropped.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from redline.feeds import events as ev
from redline.feeds.sync import ApproximateSync, Frames, LatestSync
from redline.kernels.plans import driving_model
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.nodes.base import Node
from redline.strategies.acc_aeb import Health

FUSED_SENSOR_ID = 0
FUSED_SOURCE_ID = 200
V_GAP, V_CLOSING, V_SPEED, V_HEALTH = 4, 5, 6, 7
_RANGE, _CLOSING, _SPEED = 0, 1, 0  # values of the range sensor (radar) and the speed sensor
_MAX_WAITING = 64  # fused frames held for the closed loop before intake stops (backpressure)
_FAR = 150.0  # the model's input where the range is blanked (its answer is not used then)


class SyncNode(Node):
    """SENSOR records -> fused frames (module docstring)."""

    kind = "sync"

    def __init__(self, name, spec: gc.SyncSpec, clock) -> None:
        super().__init__(name, spec, clock)
        ids = (spec.range_sensor, spec.speed_sensor)
        if spec.policy == "latest":
            ages = tuple(ms * 1_000_000 for ms in spec.max_age_ms)
            self.sync: LatestSync | ApproximateSync = LatestSync(ids, spec.trigger, ages)
        else:
            self.sync = ApproximateSync(ids, spec.slop_ms * 1_000_000)
        self.loop = None  # venue.driving_loop.LiveLoop when the loop is closed
        self.frames = 0  # fused frames sent
        self.superseded = 0  # behind = "latest": frames a newer one overtook, never sent
        self.stale = np.zeros(2, np.int64)  # frames with (range, speed) stale ...
        self.missing = np.zeros(2, np.int64)  # ... or missing
        self.ignored = 0  # records of other kinds
        self._waiting: deque[np.ndarray] = deque()  # fused frames not yet sent (one each)
        driving_model.inputs(_FAR, 0.0, 0.0)  # compiled (numba) now, not on the first frame

    def attach(self, loop) -> None:
        """Close the loop: frames see `loop`'s ego, and wait for its commands."""
        self.loop = loop

    def held_back(self) -> bool:
        """Also held while `_MAX_WAITING` frames wait for the loop: input is left unread, and
        the runtime must not take that ready input for work (it would spin, and the planner on
        the same loop, whose commands free the frames, would never run)."""
        return len(self._waiting) >= _MAX_WAITING or super().held_back()

    def timeout_s(self) -> float | None:
        if self._waiting:
            return 0.0005  # a frame waits for the loop's command: look again soon
        return super().timeout_s()

    def step(self) -> int:
        rx = self.inputs[0]
        n = 0
        if not self.held_back() and not rx.ended:
            for records, _, _ in rx.recv():
                n += len(records)
                if records.dtype != ev.SENSOR_DTYPE:
                    self.ignored += len(records)
                    continue
                self._take(self.sync.feed(records))
        if rx.ended and isinstance(self.sync, ApproximateSync) and not self.ending:
            self._take(self.sync.flush())  # the last set; flush again is a no-op
        self.events += n
        n += self._send_ready()
        if rx.ended and not self._waiting and not self.ending:
            self._end()
        return n

    def _take(self, frames: Frames) -> None:
        if not len(frames.ts_ns):
            return
        self.stale += frames.stale.sum(axis=0)
        self.missing += frames.missing.sum(axis=0)
        health = np.where((frames.stale | frames.missing).any(axis=1), int(Health.STALE_INPUT), 0)
        recs = frames.records  # [n, 2]: range sensor, speed sensor
        out = ev.empty(ev.RecordType.SENSOR, len(frames.ts_ns))
        out["ts_event"] = frames.ts_ns
        out["ts_recv"] = recs["ts_recv"].max(axis=1)
        out["sensor_id"] = FUSED_SENSOR_ID
        out["source_id"] = FUSED_SOURCE_ID
        out["values"][:, V_GAP] = recs["values"][:, 0, _RANGE]
        out["values"][:, V_CLOSING] = recs["values"][:, 0, _CLOSING]
        out["values"][:, V_SPEED] = recs["values"][:, 1, _SPEED]
        out["values"][:, V_HEALTH] = health
        self._waiting.extend(out[i : i + 1] for i in range(len(out)))

    def _send_ready(self) -> int:
        """Frames whose turn has come (all of them in open loop); returns how many went."""
        sent = []
        loop = self.loop
        while self._waiting and (loop is None or loop.commands >= self.frames + len(sent)):
            if loop is not None and self.spec.behind == "latest":
                while len(self._waiting) > 1:
                    self._waiting.popleft()
                    self.superseded += 1
            frame = self._waiting.popleft()
            v = frame["values"][0]
            if loop is not None:  # what the simulated ego's sensors see now; blanks stay blank
                gap, closing, speed = loop.sense(int(frame["ts_event"][0]))
                if np.isfinite(v[V_GAP]):
                    v[V_GAP], v[V_CLOSING] = gap, closing
                if np.isfinite(v[V_SPEED]):
                    v[V_SPEED] = speed
            gap, closing, speed = (float(x) if np.isfinite(x) else None for x in v[4:7])
            v[:4] = driving_model.inputs(_FAR if gap is None else gap, closing or 0.0,
                                         speed or 0.0)[0]  # fmt: skip
            sent.append(frame)
            if loop is not None:
                break  # the next one waits for this one's command
        if not sent:
            return 0
        out = np.concatenate(sent)
        no = np.arange(self.frames + 1, self.frames + 1 + len(out), dtype=np.uint64)
        out["seq"], out["frame_id"] = no, no
        self.frames += len(out)
        self.output.send(out, stamp_ns=self.clock.now_ns())
        return len(out)

    def held(self) -> int:
        return len(self._waiting)

    def stats(self) -> dict[str, Any]:
        names = ("range", "speed")
        sync = self.sync
        unmatched = getattr(sync, "unmatched", np.zeros(2, np.int64))  # approximate only
        return {
            **super().stats(),
            "frames": self.frames,
            "superseded": self.superseded,
            "stale": dict(zip(names, self.stale.tolist(), strict=True)),
            "missing": dict(zip(names, self.missing.tolist(), strict=True)),
            "out_of_order": dict(zip(names, sync.out_of_order.tolist(), strict=True)),
            "unmatched": dict(zip(names, unmatched.tolist(), strict=True)),
            "ignored": self.ignored + sync.ignored,
        }
