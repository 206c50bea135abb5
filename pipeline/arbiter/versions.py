"""Which model version answers which event: the arbiter's side of a hot swap (issue 19).

    models = ModelVersions(links)
    models.load(w, plan_dir, vid, rows)  # LOAD to worker w: load beside, warm, canary
    models.flip(vid, first_event)         # USE to both workers: the flip, between two requests
    models.expected(event_no)             # the version that must have answered it (0: any)
    models.replay(w)                      # a restarted worker: LOAD + USE again, before RESTORE
    models.drop(vid)                      # DROP: the old version leaves the workers
    models.shadow(old, every, period_ns)  # SHADOW: time the old one beside the new (the watch)
    models.take_shadowed()                # the paired times the workers reported since

The flip is a point in the event numbers: every event from `first_event` on is answered by the
new version, every event before by the old one, whoever answers and whenever (a late ASK, a
restarted worker). An answer tagged with another version than `expected` is refused like a bad
output: no decision comes from a version that was not flipped to, or from a half-loaded one.
The swap's sequencing (canary, confirm, rollback) is swap.py's; this only keeps the record.
"""

from __future__ import annotations

import numpy as np

from redline.pipeline.arbiter.config import WorkerLink
from redline.pipeline.workers.protocol import Kind, Reply, header


class ModelVersions:
    def __init__(self, links: tuple[WorkerLink, WorkerLink]) -> None:
        self.links = links
        self.schedule: list[tuple[int, int]] = []  # (first event number, version), ascending
        self.loaded: dict[int, str] = {}  # version -> plan dir, loaded beside the first one
        self.labels: dict[int, str] = {}  # version -> "name@version" (the registry's name)
        self.loads: list[Reply | None] = [None, None]  # the latest LOADED of each worker
        self.replaying = [0, 0]  # LOADs replayed to a restarted worker, not yet answered
        self.wrong_version = 0  # answers refused: tagged with another version than expected
        self.shadowing = (0, 1, 0)  # (version, every, period ns) the workers time in shadow
        # SHADOWED reports not taken yet: (worker, shadow version, serving version, [m, 3]
        # int64 rows, serving ns, shadow ns per model call)
        self.shadowed: list[tuple[int, int, int, np.ndarray]] = []
        self._cut = 0  # events from here on: `_current`
        self._current = 0  # 0: no flip yet, any version is accepted

    @property
    def current(self) -> int:
        return self._current

    def expected(self, event_no: int) -> int:
        """The version that answers `event_no`; 0 before any flip (then the workers' own)."""
        if event_no >= self._cut:
            return self._current
        for first, v in reversed(self.schedule):
            if event_no >= first:
                return v
        return 0

    def tag_ok(self, event_no: int, version: int) -> bool:
        """Whether an answer to `event_no` tagged `version` comes from the right version."""
        want = self.expected(event_no)
        if want == 0 or want == version:
            return True
        self.wrong_version += 1
        return False

    def tags_ok(self, first: int, last: int, version: int) -> bool | None:
        """`tag_ok` for a batch of ascending events `first..last` at once: True or False when
        one answer holds for all, None when the batch spans a flip (check each)."""
        if first >= self._cut or self.expected(first) == self.expected(last):
            return self.tag_ok(first, version)
        return None

    def label(self, version: int) -> str:
        if version == 0:
            return "none"  # the safe default: no model
        return self.labels.get(version, str(version))

    def load(self, w: int, plan_dir: str, version: int, rows: int) -> bool:
        """LOAD to worker w (its LOADED comes back through `on_loaded`); False: not sent."""
        self.loads[w] = None
        head = header(Kind.LOAD, rows, version=version)
        return self.links[w].send([head, str(plan_dir).encode()])

    def on_loaded(self, w: int, msg: Reply) -> str:
        """A LOADED or SHADOWED from worker w; returns why a replayed load failed (else "")."""
        if msg.kind == Kind.SHADOWED:
            size = len(msg.payload or b"")
            if self.shadowing[0] and size == msg.id * 24:  # else late, or malformed: dropped
                pairs = np.frombuffer(msg.payload, np.int64).reshape(-1, 3).copy()
                self.shadowed.append((w, msg.version, msg.stamps[0], pairs))
            return ""
        if self.replaying[w]:  # a restarted worker's LOADs are not a swap's
            self.replaying[w] -= 1
            return bytes(msg.payload or b"").decode(errors="replace") if msg.stamps[3] else ""
        self.loads[w] = msg
        return ""

    def flip(self, version: int, first_event: int, base: int) -> None:
        """From `first_event` on, `version` answers; `base`: the version serving until the
        first flip (the workers' READY version)."""
        if not self.schedule:
            self.schedule.append((0, base))
        self.schedule.append((first_event, version))
        self._cut, self._current = first_event, version
        for link in self.links:
            link.send([header(Kind.USE, first_event, version=version)])

    def shadow(self, version: int, every: int = 1, period_ns: int = 50_000_000) -> None:
        """SHADOW to both workers: time `version` beside the serving one on one model call in
        `every`, report every `period_ns` (workers/versions.py); version 0 stops."""
        self.shadowing = (version, every, period_ns)
        if not version:
            self.shadowed.clear()
        for link in self.links:
            link.send(self._shadow_frames())

    def take_shadowed(self) -> list[tuple[int, int, int, np.ndarray]]:
        out, self.shadowed = self.shadowed, []
        return out

    def _shadow_frames(self) -> list:
        version, every, period_ns = self.shadowing
        return [header(Kind.SHADOW, period_ns, version=version), np.uint32(every).tobytes()]

    def drop(self, version: int) -> None:
        self.loaded.pop(version, None)
        for link in self.links:
            link.send([header(Kind.DROP, version=version)])

    def replay(self, w: int, base: int) -> None:
        """Worker w (re)started on the first version: load the others and replay the flips,
        before its state is rebuilt (its messages are handled in order)."""
        link = self.links[w]
        self.replaying[w] = 0
        for version, plan_dir in self.loaded.items():
            self.replaying[w] += 1
            link.send([header(Kind.LOAD, 0, version=version), plan_dir.encode()])
        for first, version in self.schedule:
            if version in self.loaded or version == base:
                link.send([header(Kind.USE, first, version=version)])
        if self.shadowing[0] in self.loaded or self.shadowing[0] == base != 0:
            link.send(self._shadow_frames())  # the swap's watch goes on in the new process
