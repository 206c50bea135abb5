"""The four latency legs of a simulated order, in order of occurrence.

feed      the venue's event -> our receipt: taken from the data (`ts_recv - ts_event`),
          so a strategy decides on what it would have seen, when it would have seen it
decision  our receipt -> the order leaves: what the graph takes (arbiter, workers,
          strategy); constant, or sampled from what a decision journal measured
entry     the order leaves -> the venue has it (matching sees the book as of then)
ack       the venue fills -> we know (the strategy's position moves then)

`Legs` holds them as the compiled loops read them: the decision leg as samples (one: a
constant), drawn by a hash of the decision's number so a run (and any chunking of it) draws
the same ones; entry and ack as (time, ns) points interpolated linearly at the moment the
order leaves or the venue answers, held flat before the first and after the last (one point:
a constant).

A recorded order-latency file (`entry=file:PATH`, `ack=file:PATH`) is CSV (a header line)
or Parquet with three integer columns:

    ts_ns        when the order was sent, ns, the data's clock (ascending)
    entry_ns     how long it took to reach the venue (ns, >= 0)
    response_ns  how long the venue's answer took to come back (ns, >= 0)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numba as nb
import numpy as np

from redline.feeds.settings import NonNegativeInt, Settings
from redline.venue.pairs import settings_from_pairs

ORDER_LATENCY_COLUMNS = ("ts_ns", "entry_ns", "response_ns")


class Latency(Settings):
    """Constant decision, entry and ack legs in microseconds (the feed leg is the data's)."""

    decision_us: NonNegativeInt = 0
    entry_us: NonNegativeInt = 0
    ack_us: NonNegativeInt = 0

    @classmethod
    def parse(cls, text: str) -> Latency:
        """`decision=50,entry=120,ack=80` (µs; missing legs are 0)."""
        legs = {leg: f"{leg}_us" for leg in ("decision", "entry", "ack")}
        return settings_from_pairs("--latency", text, cls, legs)

    def vector_ns(self) -> np.ndarray:
        return np.array([self.decision_us, self.entry_us, self.ack_us], np.int64) * 1000

    def legs(self) -> Legs:
        d, e, a = (int(x) for x in self.vector_ns())
        return Legs(np.array([d], np.int64), *_flat(e), *_flat(a))


def _flat(ns: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(1, np.int64), np.array([ns], np.int64)


@dataclass
class Legs:
    """Decision samples (ns) and the entry and ack legs' (time, ns) points."""

    decision: np.ndarray
    entry_ts: np.ndarray
    entry_ns: np.ndarray
    ack_ts: np.ndarray
    ack_ns: np.ndarray

    def with_decision(self, samples: np.ndarray, where: str) -> Legs:
        """These legs with the decision leg drawn from `samples` (ns, e.g. a journal's)."""
        s = np.sort(np.asarray(samples, np.int64))
        if not len(s):
            raise ValueError(f"--latency decision: {where} holds no decision to sample from")
        if s[0] < 0:
            raise ValueError(f"--latency decision: {where} has a negative latency ({s[0]} ns)")
        return Legs(s, self.entry_ts, self.entry_ns, self.ack_ts, self.ack_ns)

    def with_recorded(self, leg: str, path: str | Path) -> Legs:
        """These legs with `leg` (entry or ack) interpolated from an order-latency file."""
        ts, entry, response = read_order_latency(path)
        if leg == "entry":
            return Legs(self.decision, ts, entry, self.ack_ts, self.ack_ns)
        return Legs(self.decision, self.entry_ts, self.entry_ns, ts, response)

    def arrays(self) -> tuple[np.ndarray, ...]:
        return self.decision, self.entry_ts, self.entry_ns, self.ack_ts, self.ack_ns

    def describe(self) -> dict:
        """What the report and --json say about the legs: µs figures per leg."""

        def stats(ns: np.ndarray) -> dict:
            us = ns / 1000.0
            if len(us) == 1:
                return {"constant_us": float(us[0])}
            p50, p99 = np.percentile(us, [50, 99])
            return {"points": len(us), "p50_us": float(p50), "p99_us": float(p99),
                    "max_us": float(us.max())}  # fmt: skip

        return {"decision": stats(self.decision), "entry": stats(self.entry_ns),
                "ack": stats(self.ack_ns)}  # fmt: skip


def read_order_latency(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ts_ns, entry_ns, response_ns) from a recorded order-latency file, checked."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    p = Path(path)
    where = f"--latency file:{p}"
    if not p.is_file():
        raise ValueError(f"{where}: no such file; give a CSV or Parquet order-latency file")
    try:
        table = pq.read_table(p) if p.suffix == ".parquet" else pcsv.read_csv(p)
    except (pa.ArrowInvalid, OSError) as exc:
        first = str(exc).splitlines()[0]
        raise ValueError(f"{where}: not a readable CSV or Parquet file ({first})") from None
    missing = [c for c in ORDER_LATENCY_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(
            f"{where}: no column {', '.join(missing)}; it needs {', '.join(ORDER_LATENCY_COLUMNS)}"
        )
    cols = []
    for c in ORDER_LATENCY_COLUMNS:
        col = table[c]
        if not pa.types.is_integer(col.type) or col.null_count:
            raise ValueError(f"{where}: column {c} must be integers (ns) without gaps")
        cols.append(col.to_numpy().astype(np.int64))
    ts, entry, response = cols
    if not len(ts):
        raise ValueError(f"{where}: no rows")
    if (np.diff(ts) < 0).any():
        raise ValueError(f"{where}: ts_ns goes back at row {int(np.argmax(np.diff(ts) < 0)) + 1}; "
                         "sort it by ts_ns")  # fmt: skip
    for name, col in (("entry_ns", entry), ("response_ns", response)):
        if (col < 0).any():
            raise ValueError(f"{where}: {name} is negative at row {int(np.argmax(col < 0))}")
    return ts, entry, response


@nb.njit(cache=True, inline="always")
def drawn(samples, k) -> int:
    """The decision leg of decision number `k`: a sample picked by a hash of `k` (splitmix64),
    so it depends on nothing but `k`."""
    n = samples.shape[0]
    if n == 1:
        return samples[0]
    z = np.uint64(k) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return samples[np.int64(z % np.uint64(n))]


@nb.njit(cache=True, inline="always")
def at(ts, ns, t) -> int:
    """The leg at time `t`, linear between the recorded points, flat outside them."""
    n = ts.shape[0]
    if n == 1 or t <= ts[0]:
        return ns[0]
    if t >= ts[n - 1]:
        return ns[n - 1]
    i = np.searchsorted(ts, t, side="right")  # ts[i - 1] <= t < ts[i]
    x0, x1, y0 = ts[i - 1], ts[i], ns[i - 1]
    return y0 + np.int64(round((ns[i] - y0) * ((t - x0) / (x1 - x0))))
