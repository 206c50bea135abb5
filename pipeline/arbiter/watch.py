"""After a swap's flip: what rolls the new version back (swap.py runs the watch; issue 19).

    watch = Watch(arb, WatchRules(), new=22, old=11)   # at the flip: the counters' baseline
    why, kept = watch.verdict()                         # every few ms until the window ends

A bad output (NaN, out of range) or a disagreement between the workers is reason enough.
Deadline misses are not, alone: an overloaded host misses deadlines whatever the version, and
a rollback would not help it (a rule that compared the misses after the flip with the rate
before the swap fired on a demo run where another job took the 2 cores: 0.3% before, 5.4%
after). So misses roll back only when the new version causes them, judged on the same
requests in the same window: meanwhile each worker times the old version (still loaded and
warm) beside the new one on the rows of each answer (SHADOW, workers/versions.py), and the
median of the paired ratios says which is slower. Both calls see the same input on the same
core microseconds apart, so a host slowdown lengthens both alike; the verdict then is a "kept"
line with both figures, said once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from redline.feeds.events import Origin

MAX_PAIRS = 4096  # paired model calls judged: the newest (bounded work per report)


@dataclass(frozen=True)
class WatchRules:
    """What rolls a new version back, within `window_s` after its flip."""

    window_s: float = 10.0
    max_bad_outputs: int = 0  # NaN / out-of-range answers
    max_disagreements: int = 0  # the workers' answers differ beyond the arbiter's rtol/atol
    # Deadline misses: decisions no worker answered in time (the fallback's or the safe
    # default). They roll back when, from `min_decisions` decisions and `min_calls` paired
    # model calls on, more than `max_miss_fraction` of the window's decisions missed AND the
    # new version took more than `max_slowdown` times as long as the old one on the same rows.
    max_miss_fraction: float = 0.05
    min_decisions: int = 50
    max_slowdown: float = 1.5
    min_calls: int = 20
    shadow_every: int = 1  # time the old version on one model call in this many (its cost)
    report_ms: float = 50.0  # how often the workers send the paired times


_COUNTED = ("bad_outputs", "disagreements", "decisions")


class Watch:
    """One flip's watch over `arb` (its counters and `models`): `new` serves, `old` is timed."""

    def __init__(self, arb, rules: WatchRules, new: int, old: int) -> None:
        self.arb, self.rules, self.new, self.old = arb, rules, new, old
        self.base = {k: arb.counts[k] for k in _COUNTED}
        self.missed0 = _missed(arb)
        self.pairs = np.zeros((0, 3), np.int64)  # [m, 3] rows, new ns, old ns per model call
        self.ratio = 0.0  # the new version's time over the old one's on `pairs`
        self.kept = False  # the "kept" line is said once

    def verdict(self) -> tuple[str, str]:
        """(why to roll back now, or ""; a "kept" line to log, or "")."""
        arb, rules = self.arb, self.rules
        d = {k: arb.counts[k] - self.base[k] for k in _COUNTED}
        self._take_pairs()
        if d["bad_outputs"] > rules.max_bad_outputs:
            return f"{d['bad_outputs']} bad outputs (NaN or out of range) after the flip", ""
        if d["disagreements"] > rules.max_disagreements:
            return f"{d['disagreements']} disagreements between the workers after the flip", ""
        misses, n = _missed(arb) - self.missed0, d["decisions"]
        if (
            n < rules.min_decisions
            or misses <= rules.max_miss_fraction * n
            or len(self.pairs) < rules.min_calls
        ):
            return "", ""
        label = arb.models.label
        figures = (
            f"{misses} of {n} decisions after the flip got no worker answer in time "
            f"({misses / n:.1%}; allowed {rules.max_miss_fraction:.1%}), and {label(self.new)} "
            f"took {self.ratio:.2f}x as long as {label(self.old)} on the same "
            f"{_per_row(self.pairs)}"
        )
        if self.ratio > rules.max_slowdown:
            return f"{figures} (allowed {rules.max_slowdown:g}x)", ""
        if self.kept:
            return "", ""
        self.kept = True
        return "", f"{figures}: the host, not the version, is slow"

    def _take_pairs(self) -> None:
        new = [p for _w, shadow, serving, p in self.arb.models.take_shadowed()
               if shadow == self.old and serving == self.new]  # fmt: skip
        if new:  # judged on the newest calls only
            self.pairs = np.concatenate([self.pairs, *new])[-MAX_PAIRS:]
            self.ratio = _slowdown(self.pairs)


def _missed(arb) -> int:
    """Decisions no worker answered in time so far: the fallback's, and the safe default for
    want of an answer (`unanswered`)."""
    return arb.counts["unanswered"] + arb.by_origin[Origin.FALLBACK]


def _slowdown(pairs: np.ndarray) -> float:
    """How many times as long the serving version took as the shadow one: the median of the
    per-call ratios of pairs [m, 3] (rows, serving ns, shadow ns); a median, so a preemption
    that lands on one call of a pair does not count."""
    return float(np.median(pairs[:, 1] / np.maximum(pairs[:, 2], 1)))


def _per_row(pairs: np.ndarray) -> str:
    """'N model calls (median A µs vs B µs per row)' of pairs [m, 3]."""
    new, old = (np.median(pairs[:, i] / pairs[:, 0]) / 1e3 for i in (1, 2))
    return f"{len(pairs)} model calls (median {new:.1f} µs vs {old:.1f} µs per row)"
