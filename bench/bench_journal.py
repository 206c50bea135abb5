"""What the decision journal and latency accounting cost the graph.

Per call, in ns, after warm-up: `Journal.append` of 1 and of 64 decisions on
the live clock (flushing every 100 ms inside append, and in the hot-path mode
where append never flushes on time), against the floor measured in the same
run (a raw copy of the same batch into a preallocated buffer); one `flush()`;
`LatencyStats.record` per batch; `LatencyStats.summary`.

    .venv/bin/python bench/bench_journal.py [--calls 30000] [--runs 3] [--json PATH]

Every case and its floor are measured in each of --runs runs; each figure is printed as the
median (min-max) over the runs, the append / floor ratio taken within each run.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from timing import Runs, add_runs_arg, fmt, percentiles, table, timed

from redline.feeds.clock import LiveClock
from redline.feeds.events import STAGES, RecordType, empty
from redline.pipeline.observe.journal import Journal
from redline.pipeline.observe.latency import LatencyStats


def decisions(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = empty(RecordType.DECISION, n)
    d["ts_recv"] = 1_700_000_000_000_000_000 + np.arange(n) * 100_000
    t = d["ts_recv"].copy()
    for stage in STAGES:
        t = t + rng.lognormal(np.log(20_000), 0.8, n).astype(np.int64)
        d[stage] = t
    d["origin"] = rng.integers(0, 4, n)
    return d


class FloorCopy:
    """The floor: raw bytes of a batch into a preallocated ring of slots."""

    def __init__(self, rows: np.ndarray) -> None:
        void = np.dtype((np.void, rows.dtype.itemsize))
        self.rows = rows.view(void)
        self.buf = empty(RecordType.DECISION, 8192).view(void)
        self.pos = 0

    def __call__(self) -> None:
        n = self.rows.shape[0]
        p = self.pos if self.pos + n <= self.buf.shape[0] else 0
        self.buf[p : p + n] = self.rows
        self.pos = p + n


def flush_of(journal: Journal, rows: np.ndarray) -> Callable[[], int]:
    def run() -> int:
        journal.append(rows)  # fits the buffer: no flush inside
        return journal.flush()

    return run


def measure(calls: int, tmp: Path) -> dict[str, dict[str, float]]:
    """One run: every case and its floor, ns per call."""
    res: dict[str, dict[str, float]] = {}
    for batch in (1, 64):
        rows = decisions(batch)
        res[f"floor: raw copy, batch {batch}"] = percentiles(timed(FloorCopy(rows), calls, 2000))
        for in_append in (True, False):
            j = Journal(
                tmp / f"a{batch}{in_append}.arrow", clock=LiveClock(), flush_in_append=in_append
            )
            name = f"append, batch {batch}" + ("" if in_append else ", hot-path mode")
            res[name] = percentiles(timed(lambda j=j, r=rows: j.append(r), calls, 2000))
            j.close()
    for n in (1024, 8192):
        rows = decisions(n, seed=1)
        with Journal(tmp / f"f{n}.arrow", clock=LiveClock(), capacity=n + 1) as j:
            res[f"append + flush, {n} rows"] = percentiles(timed(flush_of(j, rows), 200, 10))
        stats = LatencyStats()
        res[f"LatencyStats.record, {n} rows"] = percentiles(
            timed(lambda s=stats, r=rows: s.record(r), 200, 10)
        )
    stats = LatencyStats()
    stats.record(decisions(100_000, seed=2))
    res["LatencyStats.summary (8 histograms)"] = percentiles(timed(stats.summary, 200, 10))
    for batch in (1, 64):
        floor = res[f"floor: raw copy, batch {batch}"]["p50"]
        for suffix in ("", ", hot-path mode"):
            res[f"append{suffix} / floor, batch {batch}, p50"] = {
                "ratio": res[f"append, batch {batch}{suffix}"]["p50"] / floor
            }
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=30_000, help="timed calls per append case")
    add_runs_arg(ap)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    session = Runs(args.runs)
    for _ in session:
        tmp = Path(tempfile.mkdtemp(prefix="bench_journal_"))
        session.add(measure(args.calls, tmp))
    a = session.finish(args.json)
    qs = ("p50", "p99", "p999", "max")
    rows = [[case, *(fmt(f[q]) for q in qs)] for case, f in a.items() if "p50" in f]
    table(
        f"ns per call, median (min-max) of {args.runs} runs",
        ["case", "p50", "p99", "p99.9", "max"],
        rows,
    )
    print()
    for case, f in a.items():
        if "ratio" in f:
            print(f"{case}: {fmt(f['ratio'], '.2f', unit='x')}")


if __name__ == "__main__":
    main()
