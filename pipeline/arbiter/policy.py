"""Which workers a request asks, and when hedge asks the standby.

- race, compare: every worker that holds live state is asked; one in service answers to
  decide, one being readmitted (VERIFYING) answers only to be checked (its `shadow` bit).
- hedge: the primary (the first worker in service) is asked; every `audit_every`-th request
  also asks the standby, so silent wrong values are caught under hedge too; the standby is
  asked later when the primary has not answered within the hedge delay: fixed, or the
  primary's running p95 round trip (capped at half the budget).
"""

from __future__ import annotations

import numpy as np

from redline.pipeline.arbiter.breaker import Breaker, Health
from redline.pipeline.arbiter.config import ArbiterConfig, Policy


class AskPolicy:
    def __init__(self, cfg: ArbiterConfig, breakers: tuple[Breaker, Breaker]) -> None:
        self.cfg = cfg
        self.hedge = cfg.policy == Policy.HEDGE
        self.breakers = breakers
        self.audits = 0  # hedge requests that also asked the standby
        self._rtt = np.zeros(256, np.int64)  # primary round trips, for the p95
        self._n_rtt = 0
        fixed = cfg.hedge_delay_ns
        self.delay_ns = fixed if fixed is not None else cfg.budget_ns // 4  # until samples
        self.samples_rtt = self.hedge and fixed is None

    def targets(self, event_no: int) -> tuple[bool, bool]:
        """Which workers get the ASK flag on event `event_no`."""
        up = [b.serving for b in self.breakers]
        verifying = [b.health == Health.VERIFYING for b in self.breakers]
        if not self.hedge:
            return (up[0] or verifying[0], up[1] or verifying[1])
        p = self.primary()
        every = self.cfg.audit_every
        audit = every and event_no % every == 0 and all(up)
        if audit:
            self.audits += 1
        ask = [verifying[0], verifying[1]]
        if p >= 0:
            ask[p] = True
            if audit:
                ask[1 - p] = True
        return (ask[0], ask[1])

    def ask_bits(self, ask: tuple[bool, bool]) -> tuple[int, int]:
        """(asked, shadow) masks for a request that asks `ask`: workers in service answer
        it, one being verified answers only to be checked."""
        asked = shadow = 0
        for w, b in enumerate(self.breakers):
            if ask[w] and b.receives_events:
                if b.serving:
                    asked |= 1 << w
                else:
                    shadow |= 1 << w
        return asked, shadow

    def primary(self) -> int:
        """The first worker in service, or -1."""
        for w, b in enumerate(self.breakers):
            if b.serving:
                return w
        return -1

    def round_trip(self, rtt_ns: int) -> None:
        """One primary round trip; the p95 is refreshed every 32 samples."""
        self._rtt[self._n_rtt % self._rtt.size] = rtt_ns
        self._n_rtt += 1
        if self._n_rtt % 32 == 0:
            p95 = int(np.percentile(self._rtt[: min(self._n_rtt, self._rtt.size)], 95))
            self.delay_ns = min(p95, self.cfg.budget_ns // 2)
