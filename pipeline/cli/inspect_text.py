"""The text `redline inspect` prints: times as UTC dates, spans per file, each source's
sequence figures as its numbering allows, a saturated latency percentile named as such,
the latency line always (records received before their event time said aloud), and a
clock skew named with its size. Reads the report dict of `inspect_files.inspect_paths`
(its keys are documented there)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redline.pipeline.observe.latency import HIGHEST_NS

# A median ts_recv - ts_event beyond this is no network delay but clocks that disagree
# (or data received long after the fact): venue-to-recorder delays are ms, not seconds.
SKEW_BOUND_NS = 1_000_000_000
_GAPS = {
    "contiguous": "{gaps} gaps ({missing} missing)",
    "contiguous per instrument": "{gaps} gaps ({missing} missing, numbered per instrument)",
    "per event": "{gaps} gaps (by the venue's own rule, flagged at import)",
    "shared": "gaps not checkable (one sequence shared across instruments)",
    "none": "no venue sequence to check",
}


def utc(ns: int) -> str:
    """ns since the epoch as a UTC date and time to the µs."""
    t = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
    return f"{t:%Y-%m-%d %H:%M:%S}.{ns % 1_000_000_000 // 1000:06d}"


def duration(ns: int) -> str:
    """A span for people: 25 ms, 3.250 s, 25 min 0.000 s, 30 h 19 min 59.994 s."""
    if ns < 1_000_000_000:
        return f"{ns / 1e6:,.3f} ms"
    h, rest = divmod(ns, 3_600_000_000_000)
    m, rest = divmod(rest, 60_000_000_000)
    sec = f"{rest / 1e9:.3f} s"
    return f"{h} h {m} min {sec}" if h else f"{m} min {sec}" if m else sec


def _latency(lat: dict[str, Any], key: str) -> str:
    if key in lat["saturated"]:
        return f">= {HIGHEST_NS / 1e9:g} s (histogram ceiling)"
    return f"{lat[key]:,}"


def print_report(r: dict[str, Any]) -> None:
    for f in r["files"]:
        print(
            f"{f['path']}: {f['record_type']}, {f['rows']:,} rows in {f['row_groups']} "
            f"row groups, {f['bytes'] / 2**20:.1f} MB"
        )
    seen: set[str] = set()
    for f in r["files"]:
        if f["record_type"] not in seen:
            seen.add(f["record_type"])
            cols = ", ".join(f"{k}:{v}" for k, v in f["columns"].items())
            print(f"  schema {f['record_type']}: {cols}")
    for t in r["instruments"]:
        print(f"{t['path']}: instrument table, {len(t['instruments'])} instruments")
        print(
            f"  {'id':>4}  {'symbol':<10} {'tick':>10} {'decimals':>8} {'lot':>8} {'multiplier':>10}"
            "  source"
        )
        for i in t["instruments"]:
            print(
                f"  {i['instrument_id']:>4}  {i['symbol']:<10} {i['tick_size']:>10} "
                f"{i['price_precision']:>8} {i['lot_size']:>8} {i['multiplier']:>10}  "
                f"{i['source'] or 'not recorded'}"
            )
    for p in r["skipped"]:
        print(f"{p}: skipped (neither a redline event file nor an instrument table)")
    if not r["files"]:
        print("no redline event files found")
    ev = r["events"]
    print(f"events: {ev['total']:,}")
    print("  by record type: " + ", ".join(f"{k} {v:,}" for k, v in ev["by_record_type"].items()))
    print("  by instrument:  " + ", ".join(f"{k}: {v:,}" for k, v in ev["by_instrument"].items()))
    _print_span(r)
    for s, st in r["sources"].items():
        gaps = _GAPS[st["sequence"]].format(**st)
        print(
            f"source {s} ({st['sequence']}): {st['events']:,} events, seq "
            f"{st['seq_first']}..{st['seq_last']}, {gaps}, {st['late']} late, "
            f"{st['duplicates']} duplicates, {st['ts_event_back']} ts_event back"
        )
    oo = r["out_of_order"]
    print(f"out of order: {oo['seq']:,} by seq, {oo['ts_event']:,} by ts_event")
    _print_latency(r["latency_ns"])


def _print_span(r: dict[str, Any]) -> None:
    sp = r["span"]
    if sp["seconds"] is None:
        return
    first, last = sp["ts_recv_first"], sp["ts_recv_last"]
    print(f"span (ts_recv, UTC): {utc(first)} .. {utc(last)} ({duration(last - first)})")
    days = set()
    for f in r["files"]:
        if f["ts_recv_first"] is None:
            continue
        days.update({utc(f["ts_recv_first"])[:10], utc(f["ts_recv_last"])[:10]})
        print(
            f"  {Path(f['path']).name}: {utc(f['ts_recv_first'])} .. {utc(f['ts_recv_last'])} "
            f"({duration(f['ts_recv_last'] - f['ts_recv_first'])})"
        )
    if len(days) > 1:
        print(
            f"  the recordings cover {len(days)} days ({', '.join(sorted(days))}): the span "
            "includes the time between them"
        )


def _print_latency(lat: dict[str, Any]) -> None:
    if lat["count"]:
        print(
            f"ts_recv - ts_event (ns): p50 {_latency(lat, 'p50')}  p99 {_latency(lat, 'p99')}  "
            f"p99.9 {_latency(lat, 'p999')}  max {lat['max']:,}  (n={lat['count']:,}, "
            f"{lat['excluded']:,} excluded, {lat['negative']:,} negative)"
        )
    else:
        print(
            f"ts_recv - ts_event (ns): no record received at or after its event time "
            f"({lat['excluded']:,} excluded, {lat['negative']:,} negative, "
            f"{lat['no_ts_event']:,} without an event time)"
        )
    if lat["median"] is not None:
        n = lat["count"] + lat["negative"]
        print(f"  median {lat['median']:,} ns over {n:,} records, negative ones included")
    if lat["clamped"]:
        print(
            f"  {lat['clamped']:,} latencies above the histogram's {HIGHEST_NS / 1e9:g} s ceiling "
            "(ts_event from another clock or another day?): percentiles there are floors"
        )
    if lat["negative"]:
        print(
            f"ts_recv - ts_event: {lat['negative']:,} records received before their event time "
            f"(down to {lat['min']:,} ns): the recorder's clock runs at least "
            f"{duration(-lat['min'])} behind the source's; left out of the percentiles"
        )
    if lat["no_ts_event"]:
        print(
            f"  {lat['no_ts_event']:,} records carry no event time (the source sends none: "
            f"ts_event 0): left out of the latency figures"
        )
    skew = lat["clock_skew"]
    if skew is not None and skew < 0:
        print(
            f"clock skew: median ts_recv - ts_event is {skew:,} ns: the recorder's clock runs "
            f"about {duration(-skew)} behind the source's; these latencies measure the clocks, "
            f"not the network"
        )
    elif skew is not None:
        print(
            f"clock skew: median ts_recv - ts_event is {duration(skew)} ({skew:,} ns), beyond "
            f"the {SKEW_BOUND_NS / 1e9:g} s a network delay could explain: the clocks disagree "
            f"by about that much (or the data was received long after the fact)"
        )
