"""Fault injection for tests and demos: make a worker misbehave at a given request count.

A fault is written `KIND@N[:ARG]`, several joined by commas: `crash@100`, `hang@50`,
`delay@10:0.02` (sleep 20 ms on every answer from the 10th on), `nan@5`, `wrong@5:0.5` (add 0.5
to every output from the 5th answer on), `slow@10:0.02` (every model call, of any version, takes
20 ms longer: a host whose compute slowed down), `slow_new@10:0.02` (the same for the versions a
hot swap loaded, not the one the worker started with: a slower new model). N counts answers
this worker computed since it started (or since the fault was sent, for `FAULT` messages: N is
then relative). Given on the worker's command line (`--fault`) or sent at run time
(`Arbiter.inject`).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from enum import StrEnum

import numpy as np


class FaultKind(StrEnum):
    CRASH = "crash"  # SIGKILL itself: no goodbye, like a segfault in a CUDA driver
    HANG = "hang"  # stop answering and heartbeating, forever
    DELAY = "delay"  # sleep ARG seconds before each answer
    NAN = "nan"  # answers are NaN
    WRONG = "wrong"  # answers are off by ARG (a silent wrong value)
    SLOW = "slow"  # each model call sleeps ARG seconds (engines.py calls `model_call`)
    SLOW_NEW = "slow_new"  # the same, only for versions loaded by a hot swap's LOAD


_DEFAULT_ARG = {
    FaultKind.DELAY: 0.01,
    FaultKind.WRONG: 1.0,
    FaultKind.SLOW: 0.01,
    FaultKind.SLOW_NEW: 0.01,
}
_MODEL = (FaultKind.SLOW, FaultKind.SLOW_NEW)  # faults of the model call, not of the answer


@dataclass(frozen=True, slots=True)
class FaultSpec:
    kind: FaultKind
    at: int  # answer count at which it starts
    arg: float = 0.0

    @classmethod
    def parse(cls, text: str) -> list[FaultSpec]:
        """`"nan@5,delay@10:0.02"` -> specs; a bad spec raises ValueError naming it."""
        specs = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            head, _, arg = part.partition(":")
            kind, sep, at = head.partition("@")
            try:
                k = FaultKind(kind)
                n = int(at) if sep else 0
                a = float(arg) if arg else _DEFAULT_ARG.get(k, 0.0)
            except ValueError:
                valid = "|".join(f.value for f in FaultKind)
                raise ValueError(
                    f"fault spec {part!r}: expected ({valid})@N[:ARG], e.g. 'delay@10:0.02'"
                ) from None
            if n < 0:
                raise ValueError(f"fault spec {part!r}: N must be >= 0")
            specs.append(cls(k, n, a))
        return specs


class FaultPlan:
    """The faults armed in one worker; `before_answer`/`after_answer` wrap each answer."""

    __slots__ = ("answers", "slow", "specs")

    def __init__(self, specs: list[FaultSpec] | None = None) -> None:
        self.specs: list[FaultSpec] = []
        self.slow: list[FaultSpec] = []  # the model-call faults: engines check it per call
        self.answers = 0
        self._add(specs or [])

    def arm(self, text: str, relative: bool = True) -> None:
        """Add faults; with `relative`, N counts from now."""
        base = self.answers if relative else 0
        self._add([FaultSpec(s.kind, s.at + base, s.arg) for s in FaultSpec.parse(text)])

    def _add(self, specs: list[FaultSpec]) -> None:
        self.specs += [s for s in specs if s.kind not in _MODEL]
        self.slow.extend(s for s in specs if s.kind in _MODEL)  # in place: engines hold it

    def model_call(self, new: bool) -> None:
        """Called by an engine before a model call while `slow` is not empty; `new`: the
        call is of a version loaded by LOAD."""
        for s in self.slow:
            if self.answers >= s.at and (new or s.kind == FaultKind.SLOW):
                time.sleep(s.arg)

    def before_answer(self) -> None:
        """Called before computing an answer: crash, hang or delay here."""
        self.answers += 1
        for s in self.specs:
            if self.answers < s.at:
                continue
            if s.kind == FaultKind.CRASH:
                os.kill(os.getpid(), signal.SIGKILL)
            elif s.kind == FaultKind.HANG:
                while True:  # no answers, no heartbeats: the arbiter must notice
                    time.sleep(3600)
            elif s.kind == FaultKind.DELAY:
                time.sleep(s.arg)

    def before_answers(self, k: int) -> None:
        """`before_answer` for each of k answers computed in one model call."""
        if not self.specs:  # the usual case: no Python call per answer
            self.answers += k
            return
        for _ in range(k):
            self.before_answer()

    def after_answers(self, out: np.ndarray) -> None:
        """`after_answer` on each row of out [k, N], the k answers counted by `before_answers`:
        row j is answer number `answers - k + 1 + j`, so a fault starts mid-batch."""
        if self.specs:
            first = self.answers - len(out) + 1
            for j in range(len(out)):
                self._corrupt(out[j], first + j)

    def after_answer(self, out: np.ndarray) -> None:
        """Called on the computed answer: corrupt it here."""
        self._corrupt(out, self.answers)

    def _corrupt(self, out: np.ndarray, answer: int) -> None:
        for s in self.specs:
            if answer < s.at:
                continue
            if s.kind == FaultKind.NAN:
                out[:] = np.nan
            elif s.kind == FaultKind.WRONG:
                out += np.float32(s.arg)
