"""What happens to synthetic packets between the source and the receiver.

Shared by the market and driving generators: a receive time for every packet
(base latency with slow wander, jitter, load-driven queueing and occasional
stalls that release a backlog at once), rare late packets that arrive after
their successors (A/B-feed arbitration, a retransmit), runs of lost packets,
and the zstd Parquet writer every bundled file goes through.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from redline.feeds.event_schema import parquet_layout, to_arrow
from redline.feeds.events import Flag

GENERATOR_KEY = b"redline.generator"  # schema metadata: how a bundled file was made
ROW_GROUP_ROWS = 65_536  # replay streams by row group; keeps its read-ahead small
SERIALIZE_NS = 40  # minimum spacing of back-to-back packets on one link


@dataclass(frozen=True, slots=True)
class Link:
    """Latency model of one source's path to the receiver (all ns)."""

    base_ns: float  # median latency when calm
    jitter_ns: float  # mean of the iid exponential jitter
    wander: float = 0.15  # log-sd of the slow drift of the base latency
    queue_ns: float = 0.0  # extra latency per unit of excess load (microbursts queue)
    stalls_per_s: float = 0.0  # rate of stalls (GC, NIC ring full, link retrain)
    stall_ns: float = 0.0  # median stall length
    late_rate: float = 0.0  # fraction of packets delayed (retransmit, B-feed pick-up)...
    late_ns: float = 0.0  # ...by about this much: they land after any later packets sent within it
    loss_rate: float = 0.0  # fraction of packets that start a run of lost packets

    def __post_init__(self) -> None:
        for name in ("base_ns", "jitter_ns", "queue_ns", "stall_ns", "late_ns"):
            if getattr(self, name) < 0:
                raise ValueError(f"Link.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("late_rate", "loss_rate"):
            if not 0.0 <= getattr(self, name) < 0.1:
                raise ValueError(f"Link.{name} must be in [0, 0.1), got {getattr(self, name)}")


@numba.njit(cache=True)
def _ou(ts: np.ndarray, tau_ns: float, eps: np.ndarray) -> np.ndarray:
    """Unit-variance Ornstein-Uhlenbeck path sampled at irregular times."""
    out = np.empty(ts.size)
    w = eps[0] if ts.size else 0.0
    for k in range(ts.size):
        if k:
            a = np.exp(-(ts[k] - ts[k - 1]) / tau_ns)
            w = a * w + np.sqrt(1.0 - a * a) * eps[k]
        out[k] = w
    return out


def receive_times(
    rng: np.random.Generator,
    ts_event: np.ndarray,
    link: Link,
    load: np.ndarray | None = None,
) -> np.ndarray:
    """ts_recv for packets sent at `ts_event` (int64 ns, in send order).

    `load` (optional, per packet) is local activity / mean activity; latency
    grows with it. Receipt stays in send order except for the `late_rate`
    packets, which arrive `late_ns` (median) late, after the successors sent
    within that time: busy links reorder, quiet ones only see a latency spike.
    """
    n = ts_event.size
    if n == 0:
        return np.empty(0, np.int64)
    drift = np.exp(link.wander * _ou(ts_event.astype(np.float64), 2e9, rng.standard_normal(n)))
    lat = link.base_ns * drift + rng.exponential(link.jitter_ns, n)
    if load is not None:
        lat += link.queue_ns * np.maximum(load - 1.0, 0.0)
    recv = ts_event + lat.astype(np.int64)
    span_s = (ts_event[-1] - ts_event[0]) / 1e9
    for _ in range(rng.poisson(link.stalls_per_s * span_s)):
        start = rng.integers(ts_event[0], ts_event[-1] + 1)
        end = start + int(link.stall_ns * rng.lognormal(0.0, 0.7))
        held = (ts_event >= start) & (ts_event < end)
        recv[held] = np.maximum(recv[held], end + int(link.base_ns))
    # One link delivers in order, never two packets closer than SERIALIZE_NS.
    k = np.arange(n, dtype=np.int64) * SERIALIZE_NS
    recv = np.maximum.accumulate(recv - k) + k
    late = rng.random(n) < link.late_rate
    recv[late] += (link.late_ns * rng.lognormal(0.0, 0.5, late.sum())).astype(np.int64)
    return recv


def lost_packets(
    rng: np.random.Generator, n: int, rate: float, keep_first: bool = True
) -> np.ndarray:
    """Mask of lost packets: runs of 1-4 starting at a `rate` fraction of packets."""
    lost = np.zeros(n, dtype=bool)
    starts = np.flatnonzero(rng.random(n) < rate)
    for s, length in zip(starts, rng.integers(1, 5, starts.size), strict=True):
        lost[s : s + length] = True
    if keep_first and n:
        lost[0] = False
    return lost


def gap_flags(seq: np.ndarray) -> np.ndarray:
    """GAP_BEFORE for each record (of one source, in seq order) after missing seqs."""
    flags = np.zeros(seq.size, dtype=np.uint8)
    if seq.size > 1:
        flags[1:][np.diff(seq.astype(np.int64)) > 1] = Flag.GAP_BEFORE
    return flags


def write_records(path: Path, records: np.ndarray, generator: str) -> None:
    """Write records as zstd Parquet sorted by (ts_recv, source_id, seq), replay's order."""
    order = np.lexsort((records["seq"], records["source_id"], records["ts_recv"]))
    table = pa.Table.from_batches([to_arrow(records[order])])
    meta = dict(table.schema.metadata or {})
    meta[GENERATOR_KEY] = generator.encode()
    table = table.replace_schema_metadata(meta)
    pq.write_table(table, path, compression="zstd", compression_level=9,
                   row_group_size=ROW_GROUP_ROWS, **parquet_layout(table.schema))  # fmt: skip
