"""Records that two input files of one import both hold, kept once.

Two files can carry the same venue record: a Databento MBP-1 (or TBBO) file holds every trade
as a record with action 'T', which the trades file of the same window holds too; two files
of overlapping windows hold the records of the overlap. A record is a repeat when an earlier
file already gave an equal one (every field, so two trades of one packet that share
`ts_recv` and `seq` but differ in price or size are both kept). Equal records within one
file are the venue's and are all kept: the k-th copy in a later file is dropped only when
the earlier files hold more than k.
"""

from __future__ import annotations

import numpy as np
import numpy.lib.recfunctions as rfn


def drop_repeats(parts: list[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """Each part (in priority order) less the records earlier parts already hold, and how
    many were dropped from each."""
    kept: list[np.ndarray] = []
    dropped: list[int] = []
    for recs in parts:
        fresh = recs[_unseen(kept, recs)] if kept and len(recs) else recs
        kept.append(fresh)
        dropped.append(len(recs) - len(fresh))
    return kept, dropped


def _unseen(earlier: list[np.ndarray], new: np.ndarray) -> np.ndarray:
    """Mask of the records of `new` the `earlier` parts do not already hold."""
    ts = new["ts_recv"]
    lo, hi = ts.min(), ts.max()
    # equal records have equal stamps: only earlier records inside new's span can match,
    # so files of windows that do not overlap cost one comparison each
    near = [e[(e["ts_recv"] >= lo) & (e["ts_recv"] <= hi)] for e in earlier]
    held = np.concatenate([e for e in near if len(e)] or [new[:0]])
    if not len(held):
        return np.ones(len(new), bool)
    _, group = np.unique(_as_bytes(np.concatenate([held, new])), return_inverse=True)
    group = group.ravel()
    copies_held = np.bincount(group[: len(held)], minlength=int(group.max()) + 1)
    mine = group[len(held) :]
    return _copy_index(mine) >= copies_held[mine]


def _as_bytes(records: np.ndarray) -> np.ndarray:
    """One opaque value per record, equal when every field is. The fields are packed first:
    padding bytes are not copied field by field, so they may differ between equal records."""
    packed = rfn.repack_fields(records)
    return packed.view(np.dtype((np.void, packed.dtype.itemsize)))


def _copy_index(group: np.ndarray) -> np.ndarray:
    """For each item, how many equal items come before it (0 for the first of its group)."""
    order = np.argsort(group, kind="stable")
    g = group[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(g)]))
    out = np.empty(len(group), np.int64)
    out[order] = np.arange(len(g)) - run_start
    return out
