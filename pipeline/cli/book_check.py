"""`redline book-check DIR [--by seq|ts_recv|ts_event] [--json PATH]`: replay an import's book
deltas through the L2 (or L3) book and check the top of book after every event against the
same import's quotes, by update id (or a timestamp): a data-quality check for any capture.

Exit 0 when every checked event matched, 1 when some did not (the figures say how many), 2 on
bad input (no book deltas, no quotes)."""

from __future__ import annotations

import sys

import numpy as np

from redline.pipeline.cli.json_out import add_json_arg, write_json


def register(sub) -> None:
    p = sub.add_parser(
        "book-check", help="rebuild an import's books and check them against its quotes"
    )
    p.add_argument("dir", metavar="DIR", help="an import's folder (or its Parquet files)")
    p.add_argument("more", nargs="*", metavar="FILE", help="more files or folders read with DIR")
    p.add_argument(
        "--by",
        choices=("seq", "ts_recv", "ts_event"),
        default="seq",
        help="match each book event to the last quote at or before it by this field "
        "(seq: the venue's update id; default %(default)s)",
    )
    add_json_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from redline.feeds.books.check import check_books
    from redline.feeds.events import RecordType
    from redline.feeds.replay.reader import replay

    paths = [args.dir, *args.more]
    found: dict[RecordType, list[np.ndarray]] = {RecordType.BOOK_DELTA: [], RecordType.QUOTE: []}
    for rtype, recs in replay(paths):
        if rtype in found:
            found[rtype].append(recs)
    book, quotes = (found[t] for t in (RecordType.BOOK_DELTA, RecordType.QUOTE))
    where = " ".join(paths)
    if not book:
        raise ValueError(
            f"{where}: no book deltas to rebuild a book from; give an import of L2/L3 data"
        )
    if not quotes:
        raise ValueError(f"{where}: no quotes to check the book against; import the venue's L1 too")
    report = check_books(np.concatenate(book), np.concatenate(quotes), by=args.by)
    for iid, m in report["instruments"].items():
        print(
            f"instrument {iid} ({m['book']}): {m['events']:,} deltas, {m['events_checked']:,} "
            f"events checked, price match {m['price_match']:.2%}, size match "
            f"{m['size_match']:.2%}, crossed {m['crossed']:,}, gaps {m['gaps']:,}"
            + (
                f", {m['events_without_prior_quote']:,} before the first quote"
                if m["events_without_prior_quote"]
                else ""
            )
        )
    t = report["total"]
    print(
        f"redline book-check: {t['events']:,} deltas, {t['events_checked']:,} events checked "
        f"by {args.by}: price match {t['price_match']:.2%}, size match {t['size_match']:.2%}, "
        f"crossed {t['crossed']:,}, gaps {t['gaps']:,}"
    )
    write_json(args.json, report)
    if not t["events_checked"]:
        print(
            "redline book-check: no book event had a quote at or before it; try --by ts_recv",
            file=sys.stderr,
        )
        return 1
    return 0 if t["price_match"] == 1.0 and t["size_match"] == 1.0 else 1
