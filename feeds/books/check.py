"""Check a rebuilt book against the venue's own top-of-book stream.

    report = check_books(book_deltas, quotes, by="seq")   # per instrument and in total

Binance pushes `bookTicker` on every best-level change and diff-depth in
~50 ms batches, unsynchronised: the ticker often arrives first. So the
comparison is by update id, never by arrival: after every applied depth
event (its LAST delta), the book's best bid and ask, price and size, must
equal those of the last quote whose `seq` (`u`) is at or below the event's.
"""

from __future__ import annotations

import numpy as np

from redline.feeds.books.per_instrument import Books
from redline.feeds.events import Flag

MATCH_BY = ("seq", "ts_recv", "ts_event")  # update id, or a timestamp where ids differ


def match_top_to_quotes(
    book: np.ndarray, top: np.ndarray, quotes: np.ndarray, by: str = "seq"
) -> dict[str, float]:
    """Compare `top` (l2.TOP_DTYPE after each delta of `book`) with the quote stream by
    update id (`by="seq"`), or by a timestamp. Quotes must be in that field's order
    (Binance's `u` only grows). Returns counts and match rates over the checked events."""
    qkey = quotes[by]
    if len(qkey) > 1 and not bool(np.all(qkey[1:] >= qkey[:-1])):
        raise ValueError(f"quotes are not in {by} order")
    end = ((book["flags"] & Flag.LAST) != 0) & ((book["flags"] & Flag.SNAPSHOT) == 0)
    rows = np.flatnonzero(end)
    q = np.searchsorted(qkey, book[by][rows], side="right") - 1
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


def check_books(book: np.ndarray, quotes: np.ndarray, by: str = "seq") -> dict:
    """Replay `book` (BOOK_DELTA records, stream order) through one L2 or L3 book per
    instrument and match the top of book after each event against the same instrument's
    `quotes` (`match_top_to_quotes`). Returns {"instruments": {id: figures}, "total": ...}
    with events, price_match, size_match, crossed and gaps."""
    if by not in MATCH_BY:
        raise ValueError(f"by must be one of {', '.join(MATCH_BY)}, got {by!r}")
    books = Books()
    top = books.apply(book)
    per: dict[str, dict] = {}  # by instrument id as text: the report goes to JSON
    for iid in np.unique(book["instrument_id"]).tolist():
        mine = book["instrument_id"] == iid
        q = quotes[quotes["instrument_id"] == iid]
        q = q[np.argsort(q[by], kind="stable")]
        m = match_top_to_quotes(book[mine], top[mine], q, by)
        m["events"] = int(mine.sum())
        m["gaps"] = books[iid].stats["gaps"]
        m["book"] = "L3" if type(books[iid]).__name__ == "L3Book" else "L2"
        per[str(iid)] = m
    checked = sum(m["events_checked"] for m in per.values())

    def weighted(key: str) -> float:
        if not checked:
            return float("nan")
        return (
            sum(m[key] * m["events_checked"] for m in per.values() if m["events_checked"]) / checked
        )

    total = {
        "events": len(book),
        "events_checked": checked,
        "price_match": weighted("price_match"),
        "size_match": weighted("size_match"),
        "crossed": sum(m["crossed"] for m in per.values()),
        "gaps": sum(m["gaps"] for m in per.values()),
    }
    return {"by": by, "instruments": per, "total": total}
