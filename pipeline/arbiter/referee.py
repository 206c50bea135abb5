"""Who is right when answers differ, and whether a worker being readmitted answers right.

Both use a reference: the peer's answer when the peer is in service, else the in-process
fallback computing the same event on its own replica of the state (2-out-of-3). Without a
reference nothing is blamed: the disagreement is only counted.
"""

from __future__ import annotations

import numpy as np

from redline.pipeline.arbiter.breaker import Breaker, Health, Trip
from redline.pipeline.arbiter.checks import AnswerCheck
from redline.pipeline.arbiter.fallback import CpuFallback
from redline.pipeline.arbiter.inflight import InflightTable, Request
from redline.pipeline.arbiter.recovery import Recovery


class Referee:
    def __init__(
        self,
        table: InflightTable,
        check: AnswerCheck,
        fallback: CpuFallback | None,
        breakers: tuple[Breaker, Breaker],
        recovery: Recovery,
    ) -> None:
        self.table = table
        self.check = check
        self.fallback = fallback
        self.breakers = breakers
        self.recovery = recovery
        self._ref = np.zeros(check.n_out, np.float32)  # the fallback's answer, scratch

    def blame(self, req: Request, now: int) -> None:
        """Two answers to `req` differ: take out every worker the fallback outvotes."""
        if self.fallback is None or not self.fallback.answer_into(req.event_no, self._ref):
            return  # no referee: counted by the caller, nobody blamed
        answers = self.table.answers[self.table.slot(req.event_no)]
        for w in (0, 1):
            if req.valid >> w & 1 and not self.check.agree_one(answers[w], self._ref):
                self.recovery.trip(w, Trip.DIVERGENCE, now)

    def verify(self, req: Request, w: int, now: int) -> bool:
        """Check shadow worker w's valid answer to `req` once a reference exists; True when
        this check readmitted it."""
        slot = self.table.slot(req.event_no)
        answers = self.table.answers[slot]
        peer = 1 - w
        if req.valid >> peer & 1 and not req.shadow >> peer & 1:
            ref = answers[peer]
        elif self.fallback is not None and self.fallback.answer_into(req.event_no, self._ref):
            ref = self._ref
        else:
            return False
        req.checked = True
        b = self.breakers[w]
        if b.health != Health.VERIFYING:
            return False
        if self.table.stamps[slot, w, 4] - self.table.wall_offset > req.deadline:
            return False  # late: proves nothing either way; slowness is the SLOW window's job
        b.verified(self.check.agree_one(answers[w], ref), now)
        if b.health == Health.OUT:
            self.recovery.taken_out(w, Trip.VERIFY_FAILED, now)
        return b.serving
