"""Per-instrument feature state that a model reads: the kernels' features (with or without the
book's) or an event window.

- `KernelFeatures` (models with in_features == kernels.features.N_FEATURES): the kernels'
  rolling per-instrument features (EMAs, realised vol, imbalance, flow, ...) updated by each
  QUOTE/TRADE with `redline.kernels.features.FeatureState` (numba, host memory: an update costs
  less than one GPU launch). Features are ratios and log returns, so tick sizes cancel and every
  instrument uses tick 1.
- `WindowFeatures` (any K divisible by 4, any record type): per instrument, the last K/4 events'
  four payload numbers (QUOTE bid/ask px/sz, TRADE px/sz/aggressor/0, BOOK_DELTA
  px/sz/side/action, SENSOR values[:4]), newest first. Finite, so a replay of the last events
  rebuilds it exactly.
- `BookFeatures` (models whose manifest names BOOK_INPUT_NAMES): the kernel features, then the
  book features of one L2 book per instrument kept resident and updated by each BOOK_DELTA
  (kernels/book_features.py).

All map instrument ids to dense rows (bounded: `max_instruments`) and snapshot to bytes: int64
instrument ids [n], then the kind's state arrays for those n rows (`BookFeatures`: see its
doc). The workers' engines (pipeline/workers/engines.py) and `redline train` (`quote_rows`)
read the same state.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from redline.feeds.events import RecordType

# Per record type: the four payload fields an event contributes to its instrument's window.
FIELDS: dict[int, tuple[str, ...]] = {
    RecordType.QUOTE: ("bid_px", "ask_px", "bid_sz", "ask_sz"),
    RecordType.TRADE: ("px", "sz", "aggressor"),
    RecordType.BOOK_DELTA: ("px", "sz", "side", "action"),
}


def event_values(rtype: int, record: np.ndarray, scale: float, out: np.ndarray) -> None:
    """The four numbers an event adds to the window -> out [4] float32 (no allocation)."""
    if rtype == RecordType.SENSOR:
        out[:] = record["values"][:4]
        return
    names = FIELDS.get(rtype)
    if names is None:
        raise ValueError(f"engine: record type {rtype} carries no features")
    for i, name in enumerate(names):
        out[i] = record[name]
    out[len(names) :] = 0.0
    out *= scale


def record1(record) -> np.ndarray:
    """Any event record (0-d array, np.void or 1-element array) as a 1-element array."""
    return np.asarray(record).reshape(1)


class _Instruments:
    """instrument_id -> dense row, bounded; part of every snapshot. An instrument past the
    bound gets row -1 and is counted in `overflow`: per record, never the end of the run."""

    def __init__(self, max_instruments: int) -> None:
        self.max = max_instruments
        self.index: dict[int, int] = {}
        self.ids = np.zeros(max_instruments, np.int64)
        self.overflow = 0  # events of instruments that found no row

    def row(self, instrument_id: int) -> int:
        i = self.index.get(instrument_id)
        if i is None:
            i = len(self.index)
            if i >= self.max:
                self.overflow += 1
                return -1
            self.index[instrument_id] = i
            self.ids[i] = instrument_id
        return i

    def snapshot(self) -> bytes:
        return self.ids[: len(self.index)].tobytes()

    def restore(self, blob, n: int) -> None:
        ids = np.frombuffer(blob, np.int64, n)
        self.index = {int(v): i for i, v in enumerate(ids)}
        self.ids[:n] = ids


class WindowFeatures:
    """The last K/4 events' payload numbers per instrument (host copy; see module doc)."""

    kind = "window"

    def __init__(self, k: int, max_instruments: int = 1024, scale: float = 1.0) -> None:
        if k % 4:
            raise ValueError(f"engine: model in_features must be a multiple of 4, got {k}")
        self.k = k
        self.scale = float(scale)
        self.inst = _Instruments(max_instruments)
        self.win = np.zeros((max_instruments, k), np.float32)  # [I, K]
        self._vals = np.zeros(4, np.float32)

    def update(self, rtype: int, rec1: np.ndarray, out: np.ndarray) -> None:
        event_values(rtype, rec1[0], self.scale, self._vals)
        r = self.inst.row(int(rec1["instrument_id"][0]))
        if r < 0:  # no room: no state for it (counted); nothing may be decided on this row
            out[:] = 0.0
            return
        w = self.win[r]
        w[4:] = w[:-4].copy()  # shift by one event, newest first
        w[:4] = self._vals
        out[:] = w

    def update_many(self, rtype: int, records: np.ndarray, rows: np.ndarray, at: list[int]):
        """`update` of each of records [n] (one type), in order, into rows[at[j]]."""
        for j, r in enumerate(at):
            self.update(rtype, records[j : j + 1], rows[r])

    def snapshot(self) -> bytes:
        n = len(self.inst.index)
        return self.inst.snapshot() + self.win[:n].tobytes()

    def restore(self, blob) -> None:
        n, rest = divmod(len(blob), 8 + 4 * self.k)
        if rest:
            raise ValueError(f"engine: state blob of {len(blob)} bytes is not n * {8 + 4 * self.k}")
        self.inst.restore(blob, n)
        self.win[:] = 0
        self.win[:n] = np.frombuffer(blob, np.float32, n * self.k, 8 * n).reshape(n, self.k)


class KernelFeatures:
    """`redline.kernels.features.FeatureState` behind the engine's state interface."""

    kind = "kernels"

    def __init__(self, max_instruments: int = 1024) -> None:
        kf = kernel_features_module()
        self.kf = kf
        self.k = kf.N_FEATURES
        self.inst = _Instruments(max_instruments)
        self.state = kf.FeatureState(np.ones(max_instruments))  # ratios: ticks cancel

    def update(self, rtype: int, rec1: np.ndarray, out: np.ndarray) -> None:
        row = self.inst.row(int(rec1["instrument_id"][0]))
        if row < 0:  # no room: no state for it (counted)
            out[:] = 0.0
            return
        if rtype == RecordType.QUOTE:
            self.state.update_quote(row, rec1, 0, out)
        elif rtype == RecordType.TRADE:
            self.state.update_trade(row, rec1, 0, out)
        else:  # other records carry no features here: the row stays as it was
            out[:] = self.state.features(row)

    def update_many(self, rtype: int, records: np.ndarray, rows: np.ndarray, at: list[int]):
        """`update` of each of records [n] (one type), in order, into rows[at[j]]: the ids
        read once and the batch handed to numba as it is, no per-event record view."""
        row_of = self.inst.row
        ids = records["instrument_id"].tolist()
        if rtype == RecordType.QUOTE:
            step = self.state.update_quote
        elif rtype == RecordType.TRADE:
            step = self.state.update_trade
        else:
            for i, r in zip(ids, at, strict=True):
                k = row_of(i)
                rows[r] = self.state.features(k) if k >= 0 else 0.0
            return
        for j, (i, r) in enumerate(zip(ids, at, strict=True)):
            k = row_of(i)
            if k >= 0:
                step(k, records, j, rows[r])
            else:  # no room: no state for it (counted)
                rows[r] = 0.0

    def snapshot(self) -> bytes:
        n = len(self.inst.index)
        return self.inst.snapshot() + self.state.sf[:n].tobytes() + self.state.si[:n].tobytes()

    def restore(self, blob) -> None:
        sf, si = self.state.sf, self.state.si
        per = 8 + 8 * sf.shape[1] + 8 * si.shape[1]
        n, rest = divmod(len(blob), per)
        if rest:
            raise ValueError(f"engine: state blob of {len(blob)} bytes is not n * {per}")
        self.inst.restore(blob, n)
        self.state.reset()
        off = 8 * n
        sf[:n] = np.frombuffer(blob, np.float64, n * sf.shape[1], off).reshape(n, sf.shape[1])
        off += 8 * n * sf.shape[1]
        si[:n] = np.frombuffer(blob, np.int64, n * si.shape[1], off).reshape(n, si.shape[1])


class BookFeatures:
    """`KernelFeatures` followed by the book features of one resident L2 book per instrument
    (BOOK_INPUT_NAMES): QUOTE/TRADE update the kernel part, BOOK_DELTA the instrument's book,
    and every row carries both as of its event. L2 deltas only (level sizes): a delta with an
    order id belongs to an L3 feed, which this state does not keep; it is counted in `l3_deltas`
    and not applied, never read as a level.

    Snapshots: int64 n, the kernel state of the n rows (`KernelFeatures.snapshot`), then per row
    its book's levels and validity (`book_features.book_words`): what the features read, not
    the book's counters."""

    kind = "book"

    def __init__(self, max_instruments: int = 1024) -> None:
        from redline.feeds.books.l2 import TOP_DTYPE, L2Book
        from redline.kernels.book_features import book_features, warm
        from redline.kernels.feature_names import N_BOOK_FEATURES

        self.kernel = KernelFeatures(max_instruments)
        self.inst = self.kernel.inst  # one row per instrument for both parts
        self.nk = self.kernel.k
        self.k = self.nk + N_BOOK_FEATURES
        self.books: dict[int, object] = {}  # row -> L2Book, made by the row's first delta
        self.book = np.zeros((max_instruments, N_BOOK_FEATURES), np.float32)  # [I, 4] now
        self._top = np.empty(1, TOP_DTYPE)  # the book's top after a delta: read, not kept
        self.l3_deltas = 0
        self._new_book, self._book_features = L2Book, book_features  # imported once: per delta
        warm()

    def update(self, rtype: int, rec1: np.ndarray, out: np.ndarray) -> None:
        nk = self.nk
        if rtype != RecordType.BOOK_DELTA:
            self.kernel.update(rtype, rec1, out[:nk])
            row = self.inst.index.get(int(rec1["instrument_id"][0]), -1)
            out[nk:] = self.book[row] if row >= 0 else 0.0
            return
        row = self.inst.row(int(rec1["instrument_id"][0]))
        if row < 0:  # no room: no state for it (counted)
            out[:] = 0.0
            return
        self._apply_delta(row, rec1)
        out[:nk] = self.kernel.state.features(row)
        out[nk:] = self.book[row]

    def _apply_delta(self, row: int, rec1: np.ndarray) -> None:
        if rec1["order_id"][0] != 0:
            self.l3_deltas += 1
            return
        book = self.books.get(row)
        if book is None:
            book = self.books[row] = self._new_book(int(rec1["instrument_id"][0]))
        book.apply(rec1, self._top)
        self._book_features(book, self.book[row])

    def update_many(self, rtype: int, records: np.ndarray, rows: np.ndarray, at: list[int]):
        """`update` of each of records [n] (one type), in order, into rows[at[j]]; quotes and
        trades through `KernelFeatures.update_many` (one numba call each, no record view)."""
        if rtype == RecordType.BOOK_DELTA:
            for j, r in enumerate(at):
                self.update(rtype, records[j : j + 1], rows[r])
            return
        nk, index = self.nk, self.inst.index
        self.kernel.update_many(rtype, records, rows[:, :nk], at)
        for i, r in zip(records["instrument_id"].tolist(), at, strict=True):
            k = index.get(i, -1)
            rows[r, nk:] = self.book[k] if k >= 0 else 0.0

    def snapshot(self) -> bytes:
        from redline.kernels.book_features import book_words

        n = len(self.inst.index)
        books = [book_words(self.books.get(row)) for row in range(n)]
        return np.int64(n).tobytes() + self.kernel.snapshot() + b"".join(w.tobytes() for w in books)

    def restore(self, blob) -> None:
        from redline.kernels.book_features import read_book

        blob = memoryview(blob).cast("B")
        self.books.clear()
        self.book[:] = 0.0
        if not len(blob):  # the empty state
            self.kernel.restore(b"")
            return
        n = int(np.frombuffer(blob, np.int64, 1)[0]) if len(blob) >= 8 else -1
        kf = self.kernel.state
        end = 8 + n * (8 + 8 * kf.sf.shape[1] + 8 * kf.si.shape[1])
        if not 0 <= n <= self.inst.max or len(blob) < end or (len(blob) - end) % 8:
            raise ValueError(f"engine: book state blob of {len(blob)} bytes does not hold {n} rows")
        self.kernel.restore(blob[8:end])
        words = np.frombuffer(blob, np.int64, (len(blob) - end) // 8, end)
        at = 0
        for row in range(n):
            book, at = read_book(words, at, int(self.inst.ids[row]))
            if book is not None:
                self.books[row] = book
                self._book_features(book, self.book[row])
        if at != len(words):
            raise ValueError(f"engine: book state blob has {8 * (len(words) - at)} bytes left")


def quote_rows(state, batches) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Replay through a feature state: each (rtype, records) of `batches` (replay order, one
    record type per batch, as `feeds.replay.reader.replay` yields them) goes through
    `state.update_many` as a worker applies an EVENTS batch; yields (quotes, rows float32
    [len(quotes), state.k]) per batch of quotes, the model's inputs as of each quote."""
    for rtype, records in batches:
        rows = np.zeros((len(records), state.k), np.float32)  # [n, K]
        state.update_many(rtype, records, rows, list(range(len(records))))
        if rtype == RecordType.QUOTE:
            yield records, rows


def kernel_features_module():
    """`redline.kernels.features`, imported on first use: it pulls in numba, which only
    kernel-feature models need. `redline.kernels` exports lazily, so this never imports torch
    (2.2 s idle, 5-15 s on a loaded 2 vCPU VM): a worker restart is what a failover costs."""
    from redline.kernels import features

    return features


def make_features(plan, kind: str = "auto", max_instruments: int = 1024, scale: float = 1.0):
    """The feature state a plan needs: "book" when its input_features are BOOK_INPUT_NAMES,
    else "kernels" when in_features == N_FEATURES ("auto"), else "window"."""
    from redline.kernels.feature_names import BOOK_INPUT_NAMES

    if kind == "auto":
        if tuple(getattr(plan, "input_features", None) or ()) == BOOK_INPUT_NAMES:
            kind = "book"
        elif plan.in_features == kernel_features_module().N_FEATURES:
            kind = "kernels"
        else:
            kind = "window"
    if kind == "book":
        f = BookFeatures(max_instruments)
        if f.k != plan.in_features:
            raise ValueError(
                f"engine: book features are {f.k} wide, model takes {plan.in_features}"
            )
        return f
    if kind == "kernels":
        f = KernelFeatures(max_instruments)
        if f.k != plan.in_features:
            raise ValueError(
                f"engine: kernel features are {f.k} wide, model takes {plan.in_features}"
            )
        return f
    if kind == "window":
        return WindowFeatures(plan.in_features, max_instruments, scale)
    raise ValueError(f"engine: features {kind!r}, expected auto, kernels, book or window")
