"""The L2 venue's queue models (venue/l2.py, `--queue`): how a level's decrease moves the queue
ahead of our orders resting there.

A trade at our price by an aggressor of the other side takes the queue ahead first (l2.py's
`_trade`, every model); a decrease of the level that trades at it do not explain is a cancel,
and the queue ahead never exceeds the level's size. Of a cancel:
- risk_averse: nothing comes from ahead of us (only trades advance us);
- power (n) / log: of a decrease d of the level not explained by trades at it since its last
  change, the share f(ahead) / (f(ahead) + f(behind)) comes from ahead of us, the rest from
  behind (more from ahead if behind has less than its share), with f(x) = x^n or log(1 + x):
  the longer the queue ahead of us against the one behind, the likelier a cancel was ahead.
  (hftbacktest's probabilistic queue models, written from its documentation.)
- exact: L3 (order by order) data only, turned into level deltas that carry the priority of
  the order each comes from (feeds/books/l3_levels.py). Our order's join mark is the largest
  priority its instrument had applied when it rested; a cancel (or a size cut) of an order
  whose priority is at most that mark was ahead of us, any other was behind. Trades at the
  level are followed by one decrease per order they filled: those decreases use up the traded
  volume first, so the queue ahead moves once, by the trade. After a snapshot (CLEAR ... LAST)
  nobody's place relative to ours is known: every order in it counts as ahead of ours when it
  goes (the join mark becomes the largest priority after it), and the queue ahead is capped
  at the size shown, as in every model.
"""

from __future__ import annotations

import math

import numba as nb

from redline.venue.l1 import C_INST, C_LIMIT, C_QORD, N_REST

MODELS = ("risk_averse", "power", "log", "exact")
RISK_AVERSE, POWER, LOG, EXACT = range(4)


@nb.njit(cache=True, inline="always")
def _f(x, qm) -> float:
    return math.log1p(x) if qm[0] == LOG else x ** qm[1]


@nb.njit(cache=True, inline="always")
def level_moved(j, s, px, prev, new, pr, qm, ex, qa, qt, qj, rest, cnt) -> None:
    """The level at `px` of side `s` went from `prev` to `new` lots by a delta of priority `pr`
    (-1: none, L2 data): the queue ahead of our orders resting there moves as the model says."""
    for slot in range(cnt[N_REST]):
        k = rest[slot]
        if ex[k, C_INST] != j or ex[k, C_LIMIT] != px or (ex[k, C_QORD] > 0) != (s == 0):
            continue
        q = qa[k]
        if qm[0] == EXACT:
            # one trade, then a decrease per order it filled: use its volume up bit by bit
            traded = min(float(prev - new), qt[k])
            qt[k] -= traded
            if 0 <= pr <= qj[k]:  # the order had its place before ours: it was ahead
                q -= prev - new - traded
        else:
            d = prev - new - qt[k]  # the decrease no trade at the level explains: cancels
            if qm[0] != RISK_AVERSE and d > 0 and q > 0:
                behind = max(prev - qt[k] - q, 0.0)  # the level before these cancels, less us
                fa, fb = _f(q, qm), _f(behind, qm)
                ahead = d * fa / (fa + fb)
                if d - ahead > behind:  # behind us cannot lose more than it holds
                    ahead = d - behind
                q -= ahead
            qt[k] = 0.0
        qa[k] = max(0.0, min(q, float(new)))
