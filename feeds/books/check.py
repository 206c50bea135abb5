"""Check a rebuilt book against the venue's own top-of-book stream.

Binance pushes `bookTicker` on every best-level change and diff-depth in
~50 ms batches, unsynchronised: the ticker often arrives first. So the
comparison is by update id, never by arrival: after every applied depth
event (its LAST delta), the book's best bid and ask, price and size, must
equal those of the last quote whose `seq` (`u`) is at or below the event's.
"""

from __future__ import annotations

import numpy as np

from redline.feeds.events import Flag


def match_top_to_quotes(book: np.ndarray, top: np.ndarray, quotes: np.ndarray) -> dict[str, float]:
    """Compare `top` (l2.TOP_DTYPE after each delta of `book`) with the
    quote stream by update id. Quotes must be in `seq` order (Binance's `u`
    only grows). Returns counts and match rates over the checked events."""
    qseq = quotes["seq"]
    if len(qseq) > 1 and not bool(np.all(qseq[1:] >= qseq[:-1])):
        raise ValueError("quotes are not in update-id (seq) order")
    end = ((book["flags"] & Flag.LAST) != 0) & ((book["flags"] & Flag.SNAPSHOT) == 0)
    rows = np.flatnonzero(end)
    q = np.searchsorted(qseq, book["seq"][rows], side="right") - 1
    has_quote = q >= 0
    rows, q = rows[has_quote], q[has_quote]
    t, qq = top[rows], quotes[q]
    px_ok = (t["bid_px"] == qq["bid_px"]) & (t["ask_px"] == qq["ask_px"])
    sz_ok = (t["bid_sz"] == qq["bid_sz"]) & (t["ask_sz"] == qq["ask_sz"])
    n = len(rows)
    first_bad = np.flatnonzero(~(px_ok & sz_ok))
    return {
        "events_checked": n,
        "events_without_prior_quote": int((~has_quote).sum()),
        "price_match": float(px_ok.mean()) if n else float("nan"),
        "size_match": float(sz_ok.mean()) if n else float("nan"),
        "both_match": float((px_ok & sz_ok).mean()) if n else float("nan"),
        "crossed": int(t["crossed"].sum()),
        "invalid": int((t["valid"] == 0).sum()),
        "first_mismatch_delta": int(rows[first_bad[0]]) if len(first_bad) else -1,
    }
