"""Replay throughput and memory: `redline.feeds.replay.reader` against a plain pyarrow read.

    .venv/bin/python bench/bench_replay.py                      # 10M and 50M events
    .venv/bin/python bench/bench_replay.py --sizes 2000000 --repeats 2

For each size, QUOTE files are generated (vectorised, seeded, one instrument and source
per file, all spanning the same time range, so the merge interleaves them) and then
read, each measurement in its own subprocess so that its peak RSS is its own:

- `plain`: `pq.read_table(file)` then every column `.to_numpy()`, file after file: the
  baseline (columns, no record packing, no merge, no order checks);
- `single`: `replay(file)` for each file alone (the one-file path, no merge);
- `merge`: `replay(all files)`, merged by ts_recv.

Prints events/s (best and median of the repeats) and its ratio to `plain` from the
same run ("x plain": plain's best rate / this mode's best rate, so > 1 is slower), the
CPU time per event of all threads (median; on a shared VM the steadier figure) and
its ratio, the consumer's wait per batch (p50/p99/p99.9, last repeat: the time the
loop body spends waiting for the next batch), and the peak RSS per mode with the ratio
between the largest and the smallest size.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

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
    ap.add_argument("--repeats", type=int, default=3, help="passes per mode (default 3)")
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
                f"generated in {time.perf_counter() - t0:.1f} s"
            )
            child("plain", paths, args)  # warm-up: page cache and imports
            runs: dict[str, list[dict]] = {m: [] for m in MODES}
            for _ in range(args.repeats):  # interleaved, so drift hits every mode alike
                for mode in MODES:
                    runs[mode].append(child(mode, paths, args))
            results[n] = runs
            report_size(runs)
            for p in paths:
                p.unlink()
    report_rss(results)
    if args.json:
        Path(args.json).write_text(json.dumps({str(n): r for n, r in results.items()}, indent=2))


def report_size(runs: dict[str, list[dict]]) -> None:
    base = max(r["events_per_s"] for r in runs["plain"])
    base_cpu = statistics.median(r["cpu_ns_per_event"] for r in runs["plain"])
    print(
        f"{'mode':8} {'best Mev/s':>10} {'median':>7} {'x plain':>8} {'CPU ns/ev':>9} "
        f"{'x plain':>8} {'wait per batch p50 / p99 / p99.9 µs':>37} {'peak RSS MB':>12}"
    )
    for mode, rs in runs.items():
        rates = [r["events_per_s"] / 1e6 for r in rs]
        best = max(rates)
        cpu = statistics.median(r["cpu_ns_per_event"] for r in rs)
        wait = rs[-1].get("wait_us")
        w = f"{wait['p50']:.0f} / {wait['p99']:.0f} / {wait['p999']:.0f}" if wait else "-"
        rss = max(r["peak_rss_mb"] for r in rs)
        print(
            f"{mode:8} {best:10.1f} {statistics.median(rates):7.1f} {base / 1e6 / best:8.2f} "
            f"{cpu:9.0f} {cpu / base_cpu:8.2f} {w:>37} {rss:12.0f}"
        )


def report_rss(results: dict[int, dict[str, list[dict]]]) -> None:
    if len(results) < 2:
        return
    lo, hi = min(results), max(results)
    print(f"\npeak RSS {hi:,} vs {lo:,} events:")
    for mode in MODES:
        a = max(r["peak_rss_mb"] for r in results[lo][mode])
        b = max(r["peak_rss_mb"] for r in results[hi][mode])
        print(f"  {mode:8} {a:7.0f} MB -> {b:7.0f} MB   ratio {b / a:.2f}")


if __name__ == "__main__":
    main()
