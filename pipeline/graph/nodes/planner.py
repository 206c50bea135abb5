"""The planner node: frame answers -> longitudinal commands (acc_aeb), `ts_decision` stamped.

Per frame answer (nodes/frame_arbiter.py) one `acc_aeb.step`, in frame order:

- a worker's answer (origin WORKER_A/B) is the model's acceleration: it replaces the IDM term
  (CommandOrigin MODEL), clipped by the planner like the term it replaces;
- the CPU fallback's answer means no worker answered in time (both out, or too slow): the
  arbiter reports a fault, Health.FAULT;
- the safe default means nothing answered by the deadline, and a command stamped after its
  frame's deadline makes the next frame's decision late too: Health.DEADLINE_MISS;
- the sync's STALE_INPUT bit comes with the frame.

Any health bit engages the minimal-risk maneuver (unless fresh range data calls for emergency
braking). Every command is counted by its CommandOrigin, minimal-risk ones also by cause, and
goes out as a DECISION record (`score` the command in m/s^2, `side` NONE) for the journal. With a
closed loop attached (`attach`) each command is handed to it at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from redline.feeds.events import DECISION_DTYPE, Origin, Side
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.nodes.base import Node
from redline.strategies import acc_aeb
from redline.strategies.acc_aeb import CommandOrigin, Health, PlannerSettings

_WORKERS = (Origin.WORKER_A, Origin.WORKER_B)
_FRAME_S = 0.02  # a frame period before the first frame (50 Hz frames)


class PlannerNode(Node):
    """Frame answers -> commands (module docstring)."""

    kind = "planner"

    def __init__(self, name, spec: gc.PlannerSpec, clock) -> None:
        super().__init__(name, spec, clock)
        fields = {f: getattr(spec, f) for f in PlannerSettings.__struct_fields__}
        self.p = PlannerSettings(**fields).vector()
        # Cruising (command 0) until the first frame, so that command is jerk-limited too.
        self.state = acc_aeb.new_state(cruising_since_s=-_FRAME_S)
        # Compile (or load) the step now, not on the first frame: ~1 s that frames would wait.
        acc_aeb.step(acc_aeb.new_state(), self.p, 0.0, 50.0, 0.0, 20.0, 0, np.nan)
        self.loop = None  # venue.driving_loop.LiveLoop when the loop is closed
        self.commands = 0
        self.by_origin = np.zeros(len(CommandOrigin), np.int64)
        self.mrm_causes = {h.name.lower(): 0 for h in Health}
        self._late = False  # the last command went out after its deadline
        self._t0 = None  # source time of the first frame: commands are timed from it
        # Per command, for the plot: t s, command m/s^2, CommandOrigin, answer Origin.
        self.log: list[tuple[float, float, int, int]] = []

    def attach(self, loop) -> None:
        """Close the loop: every command goes to `loop` (venue.driving_loop.LiveLoop)."""
        self.loop = loop

    def step(self) -> int:
        rx = self.inputs[0]
        n = 0
        if self.held_back():
            return 0
        for answers, _, _ in rx.recv():
            out = np.zeros(len(answers), DECISION_DTYPE)
            for name in DECISION_DTYPE.names:
                out[name] = answers[name]
            out["side"] = Side.NONE
            for i in range(len(answers)):
                out["score"][i], out["ts_decision"][i] = self._command(answers[i])
            if self.output is not None:
                self.output.send(out, stamp_ns=self.clock.now_ns())
            n += len(out)
        self.events += n
        if rx.ended and not self.ending:
            self._end()
        return n

    def _command(self, a) -> tuple[float, int]:
        """One frame's command and its ts_decision."""
        origin = int(a["origin"])
        health = int(a["health"])
        if origin == Origin.FALLBACK:
            health |= Health.FAULT
        elif origin == Origin.DEFAULT:
            health |= Health.DEADLINE_MISS
        if self._late:
            health |= Health.DEADLINE_MISS
        if self._t0 is None:
            self._t0 = int(a["ts_event"])
        t_s = (int(a["ts_event"]) - self._t0) / 1e9
        model = float(a["score"]) if origin in _WORKERS else np.nan
        cmd, how = acc_aeb.step(self.state, self.p, t_s, float(a["gap"]), float(a["closing"]),
                                float(a["speed"]), health, model)  # fmt: skip
        if self.loop is not None:
            self.loop.actuate(cmd)
        now = self.clock.now_ns()
        self._late = now > int(a["deadline"])
        self.commands += 1
        self.by_origin[how] += 1
        if how == CommandOrigin.MINIMAL_RISK:
            for h in Health:
                if health & h:
                    self.mrm_causes[h.name.lower()] += 1
        self.log.append((t_s, cmd, how, origin))
        return cmd, now

    def commands_by_origin(self) -> dict[str, int]:
        return {o.name.lower(): int(self.by_origin[o]) for o in CommandOrigin}

    def stats(self) -> dict[str, Any]:
        return {
            **super().stats(),
            "commands": self.commands,
            "commands_by_origin": self.commands_by_origin(),
            "mrm_causes": dict(self.mrm_causes),
        }
