"""`redline record --endpoint ADDR --out DIR`: capture a live feed to rotating zstd
Parquet segments. SIGINT or SIGTERM closes the open segment and exits 0; so does
the end of the stream (unless --keep-running).

A journal left damaged mid-file by an earlier run is recovered with every readable
row and kept aside: one line on stderr names it, the byte ranges skipped and the rows
kept, and the summary and --json ("recovered") repeat it. The rows are kept, so this is
reported, not an error: the exit status is what the recording itself gives."""

from __future__ import annotations

import signal
import sys

from redline.feeds.live.recorder import Recorder
from redline.feeds.live.source import is_udp, open_feed
from redline.feeds.sequence import SequenceTracker
from redline.pipeline.cli.folders import output_folder
from redline.pipeline.cli.json_out import add_json_arg, write_json


def register(sub) -> None:
    p = sub.add_parser("record", help="capture a live feed to zstd Parquet segments")
    p.add_argument("--endpoint", required=True, help="tcp://, ipc:// or udp://HOST:PORT")
    p.add_argument("--out", required=True, help="folder for the segments")
    p.add_argument("--socket", choices=("sub", "pull"), default="sub", help="ZeroMQ socket kind")
    p.add_argument("--bind", action="store_true", help="bind instead of connecting (ZeroMQ)")
    p.add_argument("--interface", help="udp multicast: IPv4 address of the interface to join on")
    p.add_argument("--hardware", action="store_true", help="udp: ask for NIC hardware RX stamps")
    p.add_argument("--ifname", help="udp: the NIC (e.g. eth0) whose hwtstamp config to read")
    p.add_argument("--segment-rows", type=int, default=1_000_000, help="rows per segment")
    p.add_argument("--segment-seconds", type=float, default=60.0, help="seconds per segment")
    p.add_argument("--flush-ms", type=float, default=100.0, help="journal flush interval")
    p.add_argument("--fsync", action="store_true", help="sync to disk at every flush")
    p.add_argument("--ends", type=int, default=1, help="END frames (publishers) that end it")
    p.add_argument("--keep-running", action="store_true", help="ignore the end of stream")
    add_json_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    if args.flush_ms <= 0:
        raise ValueError(f"--flush-ms must be > 0, got {args.flush_ms}")
    output_folder(args.out)
    tracker = SequenceTracker(first_seq=None, mark_gaps=False)  # store records as they came
    kwargs: dict = {"tracker": tracker, "expected_ends": args.ends}
    if is_udp(args.endpoint):
        kwargs.update(interface=args.interface, hardware=args.hardware, ifname=args.ifname)
    else:
        kwargs.update(kind=args.socket, bind=args.bind)
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.append(signum))
    recorder = Recorder(
        args.out,
        segment_rows=args.segment_rows,
        segment_seconds=args.segment_seconds,
        flush_interval_s=args.flush_ms / 1e3,
        fsync=args.fsync,
    )
    recovered = recorder.recovery_stats()  # said before the feed opens: said even if it fails
    if recovered["rows"]:
        print(f"redline record: recovered {recovered['rows']} rows from a crashed run")
    for damaged in recovered["damaged"]:
        print(_damage_line(damaged), file=sys.stderr, flush=True)
    feed = open_feed(args.endpoint, **kwargs)
    print(f"redline record: listening on {feed.endpoint}", flush=True)
    poll_s = min(args.flush_ms / 2e3, 0.05)
    try:
        while not stop and (args.keep_running or not feed.ended):
            batch = feed.recv_batch(poll_s)
            while batch is not None and not stop:
                recorder.write(batch)
                batch = feed.recv_batch(0.0)
                recorder.tick()
            recorder.tick()
    finally:
        recorder.close()
        feed.close()
    stats = feed.stats()
    why = "signal" if stop else "end of stream"
    print(
        f"redline record: {recorder.rows} events in {recorder.segments_closed} segments "
        f"to {args.out} ({why}); malformed {stats['malformed']}, gaps {stats['sequence']['gaps']}"
        f"{_recovery_summary(recovered)}"
    )
    write_json(
        args.json,
        {
            "events": recorder.rows,
            "segments": recorder.segments_closed,
            "feed": stats,
            "recovered": recovered,
        },
    )
    return 0


def _damage_line(damaged: dict) -> str:
    """The stderr line for one damaged journal: a damaged file is never kept aside silently."""
    ranges = damaged["skipped"]
    shown = ", ".join(f"[{a}, {b})" for a, b in ranges[:5])  # 5: one readable line
    more = f" and {len(ranges) - 5} more" if len(ranges) > 5 else ""
    frames = damaged["skipped_frames"]
    return (
        f"redline record: damaged journal {damaged['journal']}: skipped bytes {shown}{more} "
        f"({damaged['skipped_bytes']} bytes, {frames} bad frame{'s' * (frames != 1)}), "
        f"kept {damaged['rows']} rows in its segment; the journal is kept as "
        f"{damaged['kept_as']} (reported, not an error)"
    )


def _recovery_summary(recovered: dict) -> str:
    """The summary's words on what the start recovered; empty when nothing was."""
    if not recovered["rows"] and not recovered["damaged"]:
        return ""
    words = f"; recovered {recovered['rows']} rows from a crashed run"
    if recovered["damaged"]:
        kept = ", ".join(d["kept_as"] for d in recovered["damaged"])
        words += f" ({recovered['skipped_bytes']} bytes skipped, damaged journal kept as {kept})"
    return words
