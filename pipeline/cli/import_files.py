"""`redline import FILE... OUT [--format dbn|binance|tardis] [--overwrite]`: recordings -> our Parquet.

Every supported source goes through this one command. The format of each
file is read from its first bytes when `--format` is not given (DBN, plain
or zstd; a Binance capture, USD-M, COIN-M or spot, plain or gzip; Tardis.dev
CSV, plain or gzip). A Binance exchangeInfo answer (JSON) given among the files
sets the captures' tick, lot and face value; without one they are inferred from
the prices (the instrument table's `source` says which). OUT is a new or empty folder (one
file per record type plus `instruments.parquet`) or a `.parquet` file when the
import holds a single record type; `--overwrite` replaces an earlier import
there (see `feeds/importers/destination.py`). A record two inputs both hold is
written once and counted; a file cut short or corrupt stops the import with
where it breaks, and nothing is written. A ROS 2 bag (a folder holding metadata.yaml,
or one .mcap/.db3 file; MCAP or sqlite3 storage) is imported alone into SENSOR records
(`OUT/sensors.parquet`); `--topic-map TOPIC=SENSOR_ID` names a topic's sensor (see
`feeds/importers/ros2_bag.py`), and a topic of a type not imported is named and counted.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from redline.feeds.importers import dbn as dbn_import
from redline.feeds.importers import destination, ros2_bag
from redline.feeds.importers.detect import FORMATS, import_files
from redline.pipeline.cli.json_out import add_json_arg, write_json


def register(sub) -> None:
    p = sub.add_parser(
        "import",
        help="import recordings (Databento DBN, Binance capture, Tardis CSV, ROS 2 bag) into "
        "redline Parquet",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("paths", nargs="+", metavar="FILE... OUT", help="input files, then OUT")
    p.add_argument(
        "--format", choices=(*FORMATS, "ros2"), help="input format (default: detect per file)"
    )
    p.add_argument(
        "--topic-map",
        action="append",
        metavar="TOPIC=SENSOR_ID",
        help="ROS 2 bag: the sensor id of a Range/Imu/TwistStamped topic (repeatable; default: "
        "by topic name, then by message type)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier import in OUT (default: OUT must be new or empty)",
    )
    add_json_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    if len(args.paths) < 2:
        raise ValueError("give at least one FILE and the OUT directory or .parquet file")
    *files, out = (Path(p) for p in args.paths)
    destination.check(out, args.overwrite)  # before the work, not after it
    if args.format == "ros2" or any(ros2_bag.is_bag(f) for f in files):
        return _run_bag(args, files, out)
    if args.topic_map:
        raise ValueError("--topic-map maps ROS 2 bag topics; no bag is given")
    t0 = time.perf_counter()
    imp = import_files(files, args.format)
    t_import = time.perf_counter() - t0
    written = imp.write(out, args.overwrite)
    seconds = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in files)
    figures: dict[str, Any] = {
        "events": imp.events,
        "quotes": len(imp.quotes),
        "trades": len(imp.trades),
        "book_deltas": len(imp.book),
        "instruments": [i.symbol for i in imp.instruments],
        "input_bytes": size,
        "import_s": round(t_import, 4),
        "total_s": round(seconds, 4),
        "events_per_s": round(imp.events / t_import) if t_import > 0 else None,
        "written": {k: str(v) for k, v in written.items()},
        **imp.stats,
    }
    print(
        f"redline import: {len(files)} file(s), {size / 1e6:.1f} MB -> {out}: "
        f"{len(imp.quotes):,} quotes, {len(imp.trades):,} trades, {len(imp.book):,} book deltas, "
        f"{len(imp.instruments)} instrument(s) in {seconds:.2f} s"
    )
    for name, st in imp.stats.get("dbn", {}).items():
        if st["skipped_records"]:
            print(
                f"  {name}: skipped {st['skipped_records']:,} records of schema {st['schema']} "
                f"(imported: {dbn_import.SUPPORTED})",
                file=sys.stderr,
            )
        for kind, n in st["repeats_dropped"].items():
            print(
                f"  {name}: dropped {n:,} {kind} another input already holds "
                f"(written once; a trades file's trades win)"
            )
    for key, value in imp.stats.items():
        if key.startswith("binance"):
            print(f"  {key}: " + ", ".join(f"{k}={v}" for k, v in value.items()))
    for name, st in imp.stats.get("tardis", {}).items():
        print(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in st.items()))
    for inst in imp.instruments:
        print(
            f"  {inst.symbol}: tick {inst.tick_size}, lot {inst.lot_size}, multiplier "
            f"{inst.multiplier} ({inst.source or 'source not recorded'})"
        )
    for name, lat in imp.stats.get("latency_ns", {}).items():
        if "p50" in lat:
            print(
                f"  latency {name} (ts_recv - ts_event, {lat['count']:,} records, "
                f"{lat['excluded']:,} snapshot/bad-ts excluded): p50 {lat['p50'] / 1e3:.1f} µs, "
                f"p99 {lat['p99'] / 1e3:.1f} µs"
            )
        if lat.get("no_ts_event"):
            print(
                f"  latency {name}: {lat['no_ts_event']:,} records without an event time "
                f"(the source sends none: ts_event 0) left out"
            )
    write_json(args.json, figures)
    return 0


def _run_bag(args, files: list[Path], out: Path) -> int:
    if len(files) != 1:
        raise ValueError(
            f"{', '.join(map(str, files))}: a ROS 2 bag is imported alone; give one bag and OUT"
        )
    t0 = time.perf_counter()
    bag = ros2_bag.import_bag(files[0], ros2_bag.parse_topic_map(args.topic_map))
    written = bag.write(out, args.overwrite)
    seconds = time.perf_counter() - t0
    figures = {**bag.figures(), "total_s": round(seconds, 4), "written": str(written)}
    skipped = figures["skipped_topics"]
    print(
        f"redline import: {files[0]} -> {written}: {len(bag.sensors):,} sensor records from "
        f"{len(bag.topics) - skipped} topic(s), {skipped} topic(s) skipped "
        f"({figures['skipped_messages']:,} messages) in {seconds:.2f} s"
    )
    info, skipped_lines = bag.lines()
    for line in info:
        print(line)
    for line in skipped_lines:
        print(line, file=sys.stderr)
    write_json(args.json, figures)
    return 0
