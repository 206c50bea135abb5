"""Replay throughput and memory: `redline.feeds.replay.reader` against a plain pyarrow read.

    .venv/bin/python bench/bench_replay.py                      # 10M and 50M events, 3 runs
    .venv/bin/python bench/bench_replay.py --sizes 2000000 --runs 2

For each size, QUOTE files are generated (vectorised, seeded, one instrument and source
per file, all spanning the same time range, so the merge interleaves them) and then
read, each measurement in its own subprocess so that its peak RSS is its own:

- `plain`: `pq.read_table(file)` then every column `.to_numpy()`, file after file: the
  baseline (columns, no record packing, no merge, no order checks);
- `single`: `replay(file)` for each file alone (the one-file path, no merge);
- `merge`: `replay(all files)`, merged by ts_recv.

A run is one pass of each mode, back to back (plain, single, merge), so drift hits every
mode alike; --runs runs (`--repeats` is the older name). Every figure is the median (min-max)
over the runs, never the best: events/s; "x plain", the mode's time over plain's time in the
same run (> 1 is slower); the CPU time per event of all threads (on a shared VM the steadier
figure) and its ratio to plain's in the same run; the consumer's wait per batch
(p50/p99/p99.9: the time the loop body spends waiting for the next batch); the peak RSS, and
with two sizes or more the ratio of the largest size's to the smallest's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from timing import Runs, add_runs_arg, fmt, ratio, summarize, table

from redline.feeds import event_schema as es
from redline.feeds import events as ev
from redline.feeds.replay.reader import replay

MODES = ("plain", "single", "merge")
BLOCK = 1 << 20  # rows generated and written at a time: generation memory stays flat


def generate(folder: Path, n: int, n_files: int, compression: str, row_group: int) -> list[Path]:
    """`n` valid QUOTE records over `n_files` files, interleaved in time."""
    rng = np.random.default_rng(20261123)
    per_file = [n // n_files + (k < n % n_files) for k in range(n_files)]
    paths = []
    schema = es.arrow_schema(ev.RecordType.QUOTE)
    for k, rows in enumerate(per_file):
        path = folder / f"quotes_{k}.parquet"
        t, px, seq = 1_790_000_000_000_000_000 + k, 100_000 + 1_000 * k, 0
        with pq.ParquetWriter(path, schema, compression=compression) as writer:
            for start in range(0, rows, BLOCK):
                m = min(BLOCK, rows - start)
                r = ev.empty(ev.RecordType.QUOTE, m)
                # ~1 event per µs in all; receive latency 20 µs + jitter below the
                # smallest gap, so ts_event and ts_recv both increase within a file
                r["ts_event"] = t + np.cumsum(rng.integers(500, 2 * 1_000 * n_files, m))
                r["ts_recv"] = r["ts_event"] + 20_000 + rng.integers(0, 400, m)
                r["seq"] = np.arange(seq, seq + m, dtype=np.uint64)
                r["instrument_id"] = k + 1
                r["source_id"] = k + 1
                r["ts_recv_source"] = ev.TsSource.KERNEL
                r["bid_px"] = px + np.cumsum(rng.integers(-1, 2, m))
                r["ask_px"] = r["bid_px"] + rng.integers(1, 4, m)
                r["bid_sz"] = rng.integers(1, 200, m)
                r["ask_sz"] = rng.integers(1, 200, m)
                writer.write_table(pa.Table.from_batches([es.to_arrow(r)]), row_group)
                t, px, seq = int(r["ts_event"][-1]), int(r["bid_px"][-1]), seq + m
        paths.append(path)
    return paths


def measure(mode: str, paths: list[Path], batch_rows: int, readahead: int) -> dict:
    """One pass of `mode` over `paths` (runs in a child process)."""
    waits: list[int] = []
    events = 0
    cpu0 = time.process_time()
    t0 = time.perf_counter_ns()
    if mode == "plain":
        for p in paths:
            table = pq.read_table(p)
            cols = [c.to_numpy() for c in table.columns]
            events += len(cols[0])
            del table, cols
    else:
        groups = [[p] for p in paths] if mode == "single" else [paths]
        for group in groups:
            last = time.perf_counter_ns()
            for batch in replay(group, batch_rows=batch_rows, readahead=readahead):
                now = time.perf_counter_ns()
                waits.append(now - last)
                events += len(batch.records)
                last = time.perf_counter_ns()
    seconds = (time.perf_counter_ns() - t0) / 1e9
    cpu = time.process_time() - cpu0  # all threads: on a shared VM, CPU is the fairer cost
    out = {
        "cpu_ns_per_event": cpu * 1e9 / max(events, 1),
        "mode": mode,
        "events": events,
        "seconds": seconds,
        "events_per_s": events / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if waits:
        w = np.asarray(waits[1:] or waits)  # the first wait includes opening the files
        out["wait_us"] = {q: float(np.percentile(w, p)) / 1e3 for q, p in _QS}
    return out


_QS = (("p50", 50), ("p99", 99), ("p999", 99.9))


def child(mode: str, paths: list[Path], args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--batch-rows", str(args.batch_rows)]
    cmd += ["--readahead", str(args.readahead), *map(str, paths)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000_000, 50_000_000])
    ap.add_argument("--files", type=int, default=4, help="files per size (default 4)")
    add_runs_arg(ap, aliases=("--repeats",))
    ap.add_argument("--compression", default="zstd", help="as the bundled data (default zstd)")
    ap.add_argument("--row-group", type=int, default=1 << 20, help="rows per row group")
    ap.add_argument("--batch-rows", type=int, default=65536)
    ap.add_argument("--readahead", type=int, default=4)
    ap.add_argument("--dir", type=Path, help="where to write the files (default: a temp dir)")
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.paths, args.batch_rows, args.readahead)))
        return

    session = Runs(args.runs)
    results: dict[int, dict[str, list[dict]]] = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for n in args.sizes:
            folder = Path(tmp) / str(n)
            folder.mkdir()
            t0 = time.perf_counter()
            paths = generate(folder, n, args.files, args.compression, args.row_group)
            mb = sum(p.stat().st_size for p in paths) / 2**20
            print(
                f"\n{n:,} events in {args.files} files, {mb:.0f} MB {args.compression}, "
                f"generated in {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
            child("plain", paths, args)  # warm-up: page cache and imports
            runs: dict[str, list[dict]] = {m: [] for m in MODES}
            for _ in session:  # interleaved, so drift hits every mode alike
                for mode in MODES:
                    runs[mode].append(child(mode, paths, args))
            add_ratios(runs)
            results[n] = runs
            report_size(n, runs)
            for p in paths:
                p.unlink()
    rss = report_rss(results)
    session.runs = [
        {str(n): {m: rs[i] for m, rs in r.items()} for n, r in results.items()}
        for i in range(args.runs)
    ]
    session.finish(args.json, extra={"rss_ratio_largest_to_smallest": rss})


def add_ratios(runs: dict[str, list[dict]]) -> None:
    """Per run: each mode against plain of the same run."""
    for rs in runs.values():
        x = ratio([r["seconds"] for r in rs], [p["seconds"] for p in runs["plain"]])
        x_cpu = ratio(
            [r["cpu_ns_per_event"] for r in rs], [p["cpu_ns_per_event"] for p in runs["plain"]]
        )
        for r, a, b in zip(rs, x, x_cpu, strict=True):
            r["x_plain_time"], r["x_plain_cpu"] = a, b


def report_size(n: int, runs: dict[str, list[dict]]) -> None:
    rows = []
    for mode, rs in runs.items():
        a = summarize(rs)
        w = a.get("wait_us")
        wait = f"{fmt(w['p50'])} / {fmt(w['p99'])} / {fmt(w['p999'])}" if w else "–"
        rows.append([mode, fmt(a["events_per_s"], ".2f", 1e6), fmt(a["x_plain_time"], ".2f"),
                     fmt(a["cpu_ns_per_event"]), fmt(a["x_plain_cpu"], ".2f"), wait,
                     fmt(a["peak_rss_mb"])])  # fmt: skip
    table(
        f"{n:,} events, median (min-max) of {len(runs['plain'])} runs",
        ["mode", "M events/s", "x plain (time)", "CPU ns/event", "x plain (CPU)",
         "wait per batch p50 / p99 / p99.9 µs", "peak RSS MB"],
        rows,
    )  # fmt: skip


def report_rss(results: dict[int, dict[str, list[dict]]]) -> dict:
    if len(results) < 2:
        return {}
    lo, hi = min(results), max(results)
    print(f"\npeak RSS {hi:,} vs {lo:,} events, median (min-max) of the runs:")
    out = {}
    for mode in MODES:
        a = summarize([r["peak_rss_mb"] for r in results[lo][mode]])
        b = summarize([r["peak_rss_mb"] for r in results[hi][mode]])
        out[mode] = b["median"] / a["median"]
        print(f"  {mode:8} {fmt(a)} MB -> {fmt(b)} MB   ratio of medians {out[mode]:.2f}")
    return out


if __name__ == "__main__":
    main()
