"""Model versions inside one worker engine: which one answers which event, and the previous
one timed in shadow beside the new one (the hot swap, issue 19; the arbiter's side is
pipeline/arbiter/versions.py).

    book = VersionBook(11, plan_11)     # the version the worker started with
    book.add(22, plan_22)               # LOAD: beside it, not answering yet
    book.use(501, 22)                   # USE: events from 501 on are 22's (the flip)
    book.version_of(400), book.entry_of(400)   # 11, plan_11: a late ASK keeps its version
    book.drop(11)                       # DROP: never the serving one

An entry is whatever the engine computes a version with: a plan on CPU (engines.py), a plan
with its own output and captured CUDA graph on GPU (cuda_engine.py). `Versioned` is what both
engines answer LOAD, USE, DROP and SHADOW with over their book, so the CUDA engine's flips
follow the rules the CPU tests prove; `check_same_io` is the rule for a version beside another.

`ShadowTimer`: during the swap's watch the engine also runs the previous version on the rows
each answer used, right beside the serving call, and keeps both times, (rows, serving ns,
shadow ns) per model call. Both calls see the same input on the same core within
microseconds of each other, so a host slowdown (another job, a throttled core) lengthens both
alike and only a slower model changes their ratio. The worker sends what it holds as a
SHADOWED message at most every `period_ns` (after an answer, so a backlog does not hold the
figures back).
"""

from __future__ import annotations

import time

import numpy as np

from redline.pipeline.workers.protocol import Kind, header

SHADOW_PAIRS = 1024  # model calls held between two reports (a report goes out when full)


class VersionBook:
    """Loaded versions and the flips between them, by event number."""

    def __init__(self, version: int, entry) -> None:
        self.first = version  # the version the worker started with (faults.SLOW_NEW spares it)
        self.entries = {version: entry}  # every loaded version
        self.schedule = [(0, version)]  # (first event number, version), ascending
        self.cut = 0  # events from here on are answered by `current`
        self.current = version

    def version_of(self, event_no: int) -> int:
        """The version that answers event `event_no` (the last USE at or before it)."""
        if event_no >= self.cut:
            return self.current
        for first, v in reversed(self.schedule):
            if event_no >= first:
                return v
        return self.schedule[0][1]

    def version_spans(self, event_nos: np.ndarray) -> list[tuple[int, int, int]]:
        """Ascending `event_nos` -> [(start, stop, version)]: the runs of one version."""
        if not len(event_nos) or int(event_nos[0]) >= self.cut:  # the usual case: one span
            return [(0, len(event_nos), self.current)]
        spans: list[tuple[int, int, int]] = []
        for i, no in enumerate(event_nos.tolist()):
            v = self.version_of(no)
            if spans and spans[-1][2] == v:
                spans[-1] = (spans[-1][0], i + 1, v)
            else:
                spans.append((i, i + 1, v))
        return spans

    def entry_of(self, event_no: int):
        """What computes event `event_no`; LookupError when its version was dropped."""
        v = self.version_of(event_no)
        entry = self.entries.get(v)
        if entry is None:
            raise LookupError(f"engine: model version {v} of event {event_no} is unloaded")
        return entry

    def add(self, version: int, entry) -> None:
        self.entries[version] = entry

    def use(self, first_event: int, version: int):
        """From event `first_event` on, `version` answers; returns its entry."""
        entry = self.entries.get(version)
        if entry is None:
            raise ValueError(f"USE: model version {version} is not loaded; LOAD it first")
        self.schedule.append((first_event, version))
        self.cut, self.current = first_event, version
        return entry

    def drop(self, version: int):
        """Unload `version` (never the serving one); returns its entry (None: not loaded)."""
        if version == self.current:
            raise ValueError(f"DROP: model version {version} is serving; flip away from it first")
        return self.entries.pop(version, None)


class Versioned:
    """The version calls both engines serve over their `VersionBook` (`self.book`). An
    engine sets `book`, `shadow` (a ShadowTimer), `_shadow` (the shadow version's entry, None
    when there is none), `faults` (the worker's FaultPlan) and `version`, and serves an entry
    in `_serve`."""

    def version_of(self, event_no: int) -> int:
        return self.book.version_of(event_no)

    def version_spans(self, event_nos: np.ndarray) -> list[tuple[int, int, int]]:
        return self.book.version_spans(event_nos)

    def use(self, first_event: int, version: int) -> None:
        """From event `first_event` on, `version` answers (the flip, or the flip back)."""
        self._serve(self.book.use(first_event, version), version, first_event)

    def drop(self, version: int) -> None:
        """Unload `version` (never the serving one); a shadow of it stops."""
        self.book.drop(version)
        if self.shadow.version == version:
            self.start_shadow(0)

    def start_shadow(self, version: int, every: int = 1, period_ns: int = 50_000_000) -> None:
        """Time `version` beside the serving one on one model call in `every` (0: stop)."""
        entry = self.book.entries.get(version) if version else None
        if version and entry is None:
            raise ValueError(f"SHADOW: model version {version} is not loaded; LOAD it first")
        self.shadow.start(version, every, period_ns, time.time_ns())
        self._shadow = entry

    def shadow_report(self) -> list:
        """The SHADOWED message of the times held."""
        return self.shadow.report(self.version, time.time_ns())

    def _slowed(self, version: int) -> None:
        """The armed model-call faults (tests, demos), before a call of `version`."""
        self.faults.model_call(version != self.book.first)


def check_same_io(have, new) -> None:
    """ValueError unless `new` takes the inputs and gives the outputs of `have` (a swap keeps
    the feature state and the answers' shape)."""
    for what in ("in_features", "out_features", "input_features"):
        if getattr(new, what, None) != getattr(have, what, None):
            raise ValueError(
                f"model version {new.version!r}: {what} {getattr(new, what, None)} differ "
                f"from the serving version's {getattr(have, what, None)}; a swap keeps the "
                "inputs and outputs: publish a model trained on the same features"
            )


class ShadowTimer:
    """Paired times of the serving version and a shadow one, per model call, until reported."""

    def __init__(self, cap: int = SHADOW_PAIRS) -> None:
        self.pairs = np.zeros((cap, 3), np.int64)  # [cap, 3]: rows, serving ns, shadow ns
        self.n = 0
        self.version = 0  # the shadow version (0: none)
        self.every = 1  # time one model call in `every`
        self.period_ns = 0
        self.calls = 0
        self.last_report = 0

    def start(self, version: int, every: int, period_ns: int, now_ns: int) -> None:
        self.version, self.every, self.period_ns = version, max(1, every), period_ns
        self.n = self.calls = 0
        self.last_report = now_ns

    def sample(self) -> bool:
        """Whether this model call is one to time (one in `every`)."""
        self.calls += 1
        return self.calls % self.every == 0

    def add(self, rows: int, serving_ns: int, shadow_ns: int) -> None:
        if self.n < len(self.pairs):
            self.pairs[self.n] = rows, serving_ns, shadow_ns
            self.n += 1

    def due(self, now_ns: int) -> bool:
        return self.n > 0 and (
            self.n == len(self.pairs) or now_ns - self.last_report >= self.period_ns
        )

    def report(self, serving: int, now_ns: int) -> list:
        """The SHADOWED message of what is held (then cleared): version = the shadow version,
        id = m model calls, s0 = the serving version; [hdr, int64 [m, 3]]."""
        head = header(Kind.SHADOWED, self.n, version=self.version, s0=serving)
        frames = [head, self.pairs[: self.n].tobytes()]
        self.n, self.last_report = 0, now_ns
        return frames
