"""One order book per instrument, fed from a mixed BOOK_DELTA stream.

A replayed `book.parquet` may interleave instruments (and sources: L2 levels
from Binance, L3 orders from DBN). `Books.apply` splits a batch by
instrument (stable, so each book sees its deltas in stream order), runs each
book's compiled loop once, and puts the top of book back in stream order.
An instrument's book is L3 when the first batch that names it carries order
ids, L2 otherwise.
"""

from __future__ import annotations

import numpy as np

from redline.feeds.books.l2 import TOP_DTYPE, L2Book
from redline.feeds.books.l3 import L3Book
from redline.feeds.events import BOOK_DELTA_DTYPE


class Books:
    """Books by instrument id."""

    def __init__(self) -> None:
        self._books: dict[int, L2Book | L3Book] = {}

    def __getitem__(self, instrument_id: int) -> L2Book | L3Book:
        try:
            return self._books[int(instrument_id)]
        except KeyError:
            raise KeyError(f"no book for instrument {instrument_id} yet") from None

    def __contains__(self, instrument_id: int) -> bool:
        return int(instrument_id) in self._books

    def __len__(self) -> int:
        return len(self._books)

    def apply(self, deltas: np.ndarray) -> np.ndarray:
        """Apply a batch in order; the top of book of each delta's own
        instrument after it, one TOP_DTYPE row per delta."""
        if deltas.dtype != BOOK_DELTA_DTYPE:
            raise TypeError(f"Books.apply wants BOOK_DELTA records, got dtype {deltas.dtype}")
        top = np.empty(len(deltas), TOP_DTYPE)
        iids = deltas["instrument_id"]
        if len(iids) and bool(np.all(iids == iids[0])):  # one instrument: no split
            top[:] = self._book(int(iids[0]), deltas).apply(deltas)
            return top
        order = np.argsort(iids, kind="stable")
        sorted_ids = iids[order]
        cuts = np.flatnonzero(np.diff(sorted_ids)) + 1
        for idx in np.split(order, cuts):
            mine = deltas[idx]
            top[idx] = self._book(int(mine["instrument_id"][0]), mine).apply(mine)
        return top

    def _book(self, iid: int, first: np.ndarray) -> L2Book | L3Book:
        book = self._books.get(iid)
        if book is None:
            l3 = bool(np.any(first["order_id"] != 0))
            book = self._books[iid] = L3Book(iid) if l3 else L2Book(iid)
        return book
