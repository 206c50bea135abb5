"""Binance diff-depth sync, compiled: depth events and REST snapshots in
arrival order -> the L2 deltas a book should apply.

The rules (Binance's docs), with L = the snapshot's lastUpdateId: hold events
until a snapshot arrives. Futures (USD-M, COIN-M): drop events with u < L; the
first applied must have U <= L <= u; then each event's `pu` must equal the
previous event's `u`. Spot: drop events with u <= L; the first applied must
have U <= L + 1 <= u; then each U must be the previous u + 1. Spot runs the
same loop with `next_id` = 1 (L + 1 is the first id it needs) and pu = U - 1. A break is a gap: the first delta after it is flagged GAP_BEFORE
and counted, and events keep flowing (the book is invalid) while being held
for re-application after the next snapshot. Held events applied after a
snapshot carry its `ts_recv` (when they could first be applied) and
BAD_TS_RECV.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from redline.feeds import events as ev

# counters of the sync loop, in this order
SNAPSHOTS, APPLIED, DROPPED_STALE, GAPS, UNSYNCED, REPLAYED = range(6)
COUNTERS = ("snapshots", "applied", "dropped_stale", "gaps", "unsynced", "replayed")

_F_SNAP, _F_BAD, _F_LAST, _F_GAP = (
    int(ev.Flag.SNAPSHOT),
    int(ev.Flag.BAD_TS_RECV),
    int(ev.Flag.LAST),
    int(ev.Flag.GAP_BEFORE),
)
_A_ADD, _A_UPDATE, _A_DELETE, _A_CLEAR = (
    int(ev.BookAction.ADD),
    int(ev.BookAction.UPDATE),
    int(ev.BookAction.DELETE),
    int(ev.BookAction.CLEAR),
)


@nb.njit(cache=True, inline="always")
def _stamp(o_ids, n):
    """Instrument and source ids of output record n: written with its other fields, while
    its cache line is in hand, rather than in two more passes over the whole output."""
    o_iid, o_src, iid, src = o_ids
    o_iid[n], o_src[n] = iid, src


@nb.njit(cache=True)
def _emit(e, ts_use, flags0, action_nonzero, t_ev, seq, lstart, lend, px, sz, side,
          o_ts, o_tev, o_seq, o_side, o_act, o_px, o_sz, o_flags, o_ids, n):  # fmt: skip
    """Deltas of one depth event (or snapshot) from index n; returns new n,
    or -1 when the output has no room for them."""
    if n < 0 or n + lend[e] - lstart[e] > o_ts.shape[0]:
        return -1
    for j in range(lstart[e], lend[e]):
        _stamp(o_ids, n)
        o_ts[n], o_tev[n], o_seq[n], o_side[n] = ts_use, t_ev[e], seq[e], side[j]
        o_px[n], o_sz[n] = px[j], sz[j]
        o_act[n] = action_nonzero if sz[j] > 0 else _A_DELETE
        o_flags[n] = flags0 | (_F_LAST if j == lend[e] - 1 else 0)
        flags0 &= ~_F_GAP  # the gap mark goes on the first delta only
        n += 1
    return n


@nb.njit(cache=True, nogil=True)
def sync(is_snap, ts, t_ev, U, u, pu, lstart, lend, px, sz, side,
          o_ts, o_tev, o_seq, o_side, o_act, o_px, o_sz, o_flags, o_ids, counters, next_id):  # fmt: skip
    """Apply the sync rules to one symbol's depth events and snapshots
    (`is_snap`, in arrival order; level ranges [lstart, lend) of px/sz/side)
    and write the deltas into the o_* columns (`o_ids`: the instrument_id and
    source_id columns and the values for them). Returns how many, or -1 when
    the columns are too short (the caller retries with more room)."""
    n = 0
    held = np.empty(len(is_snap), np.int64)
    n_held = 0
    seen_snapshot = False
    waiting_first = False
    valid = False
    last_u = -1
    snap_id = 0
    for e in range(len(is_snap)):
        if is_snap[e]:
            counters[SNAPSHOTS] += 1
            if n < 0 or n >= o_ts.shape[0]:
                return -1
            empty = lstart[e] == lend[e]
            _stamp(o_ids, n)
            o_ts[n], o_tev[n], o_seq[n], o_side[n] = ts[e], t_ev[e], u[e], 0
            o_px[n], o_sz[n], o_act[n] = 0, 0, _A_CLEAR
            o_flags[n] = _F_SNAP | (_F_LAST if empty else 0)
            n += 1
            n = _emit(e, ts[e], _F_SNAP, _A_ADD, t_ev, u, lstart, lend, px, sz, side,
                      o_ts, o_tev, o_seq, o_side, o_act, o_px, o_sz, o_flags, o_ids, n)  # fmt: skip
            seen_snapshot, waiting_first, valid = True, True, True
            snap_id = u[e] + next_id
            events = held[:n_held].copy()
            n_held = 0
            replay_ts = ts[e]
            extra = _F_BAD
            for h in events:
                if u[h] < snap_id:
                    counters[DROPPED_STALE] += 1
                    continue
                counters[REPLAYED] += 1
                flag = extra
                if waiting_first:
                    waiting_first = False
                    if U[h] > snap_id:
                        flag |= _F_GAP
                elif pu[h] != last_u:
                    flag |= _F_GAP
                if flag & _F_GAP:
                    counters[GAPS] += 1
                    valid = False
                n = _emit(h, replay_ts, flag, _A_UPDATE, t_ev, u, lstart, lend, px, sz, side,
                          o_ts, o_tev, o_seq, o_side, o_act, o_px, o_sz, o_flags, o_ids, n)  # fmt: skip
                counters[APPLIED] += 1
                last_u = u[h]
                if not valid:
                    held[n_held] = h
                    n_held += 1
            continue
        if not seen_snapshot:
            held[n_held] = e
            n_held += 1
            continue
        flag = 0
        if waiting_first:
            if u[e] < snap_id:
                counters[DROPPED_STALE] += 1
                continue
            waiting_first = False
            if U[e] > snap_id:
                flag = _F_GAP
        elif pu[e] != last_u:
            flag = _F_GAP
        if flag:
            counters[GAPS] += 1
            valid = False
        n = _emit(e, ts[e], flag, _A_UPDATE, t_ev, u, lstart, lend, px, sz, side,
                  o_ts, o_tev, o_seq, o_side, o_act, o_px, o_sz, o_flags, o_ids, n)  # fmt: skip
        counters[APPLIED] += 1
        last_u = u[e]
        if not valid:  # keep for re-application after the next snapshot
            held[n_held] = e
            n_held += 1
    counters[UNSYNCED] = n_held
    return n  # -1 when the output buffer was too small
