"""`redline top`: the graph's Prometheus figures, live in the terminal.

Polls a `metrics.Metrics` endpoint, parses the scrape into a `Snapshot` and
renders it with rich. Rates come from two snapshots and the graph's own
uptime gauge, so they do not depend on when this process polled; the first
frame (and `--once`) shows the average since the graph started.

`--count N` prints N snapshots `--interval` apart and exits; `--json PATH`
(one snapshot unless `--count` says more) writes them for scripts: the last
snapshot's figures at the top level, every snapshot under `snapshots`. Keys
(stable; counts are ints, latencies int ns, null where a stage has no samples):

    uptime_s, events, decisions, decisions_by_origin {origin: n}, deadline_misses,
    failovers, drops_by_edge {edge: n}, workers_up {worker: bool},
    model_versions {worker: n}, latency_ns {p50, p99, p999, max} (tick to decision),
    stages {stage: {count, p50, p99, p999, max}}, events_per_s, decisions_per_s
    (rates since the previous snapshot, or since the graph started for the first)
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from redline.pipeline.cli.json_out import add_json_arg, write_json
from redline.pipeline.observe.latency import TICK_TO_DECISION
from redline.pipeline.observe.metrics import DEFAULT_PORT, QUANTILES

DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}/metrics"


@dataclass(frozen=True)
class Snapshot:
    """One scrape. Latencies in ns; None where the stage has no samples."""

    uptime_s: float = 0.0
    events: float = 0.0
    decisions: dict[str, float] = field(default_factory=dict)  # origin -> total
    deadline_misses: float = 0.0
    failovers: float = 0.0
    drops: dict[str, float] = field(default_factory=dict)  # edge -> total
    workers: dict[str, float] = field(default_factory=dict)  # worker -> 1 up / 0 down
    model_versions: dict[str, float] = field(default_factory=dict)
    stages: dict[str, dict[str, float | None]] = field(default_factory=dict)


def parse_scrape(text: str) -> Snapshot:
    """Prometheus text exposition from `Metrics` -> Snapshot."""
    scalars: dict[str, float] = {}
    by_label: dict[str, dict[str, float]] = {
        "redline_decisions_total": {},
        "redline_drops_total": {},
        "redline_worker_up": {},
        "redline_model_version": {},
    }
    stages: dict[str, dict[str, float | None]] = {}
    quantile_key = dict(QUANTILES)

    def stage_row(name: str) -> dict[str, float | None]:
        return stages.setdefault(name, {"p50": None, "p99": None, "p999": None, "max": None})

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in by_label:
                by_label[s.name][next(iter(s.labels.values()), "")] = s.value
            elif s.name == "redline_stage_latency_seconds":
                row = stage_row(s.labels["stage"])
                key = quantile_key.get(s.labels.get("quantile", ""))
                if key:
                    row[key] = s.value * 1e9
            elif s.name == "redline_stage_latency_seconds_count":
                stage_row(s.labels["stage"])["count"] = s.value
            elif s.name == "redline_stage_latency_max_seconds":
                stage_row(s.labels["stage"])["max"] = s.value * 1e9
            elif not s.labels:
                scalars[s.name] = s.value
    if "redline_events_total" not in scalars:
        raise ValueError("scrape has no redline_events_total: not a redline metrics endpoint")
    return Snapshot(
        uptime_s=scalars.get("redline_uptime_seconds", 0.0),
        events=scalars["redline_events_total"],
        decisions=by_label["redline_decisions_total"],
        deadline_misses=scalars.get("redline_deadline_misses_total", 0.0),
        failovers=scalars.get("redline_failovers_total", 0.0),
        drops=by_label["redline_drops_total"],
        workers=by_label["redline_worker_up"],
        model_versions=by_label["redline_model_version"],
        stages=stages,
    )


def rates(cur: Snapshot, prev: Snapshot | None = None) -> dict[str, float | None]:
    """events/s and decisions/s between two snapshots (since start without
    `prev`); None when no graph time has passed."""
    base = prev if prev is not None else Snapshot()
    dt = cur.uptime_s - base.uptime_s
    if dt <= 0:
        return {"events_per_s": None, "decisions_per_s": None}
    decisions = sum(cur.decisions.values()) - sum(base.decisions.values())
    return {"events_per_s": (cur.events - base.events) / dt, "decisions_per_s": decisions / dt}


def _us(ns: float | None) -> str:
    return "–" if ns is None else f"{ns / 1e3:,.1f}"


def _rate(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}/s"


def render(cur: Snapshot, prev: Snapshot | None = None, note: str = "") -> Group:
    """The tables `top` shows for one snapshot."""
    r = rates(cur, prev)
    head = Table.grid(padding=(0, 2))
    head.add_row(
        f"uptime {cur.uptime_s:,.1f} s",
        f"events {cur.events:,.0f} ({_rate(r['events_per_s'])})",
        f"decisions {sum(cur.decisions.values()):,.0f} ({_rate(r['decisions_per_s'])})",
        f"deadline misses {cur.deadline_misses:,.0f}",
        f"failovers {cur.failovers:,.0f}",
    )
    lat = Table(title="latency (µs)", title_justify="left")
    for col in ("stage", "count", "p50", "p99", "p99.9", "max"):
        lat.add_column(col, justify="left" if col == "stage" else "right")
    for stage, row in cur.stages.items():
        lat.add_row(
            stage,
            f"{row.get('count', 0):,.0f}",
            *(_us(row[k]) for k in ("p50", "p99", "p999", "max")),
        )
    side = Table(title="origins · workers · drops", title_justify="left")
    side.add_column("what")
    side.add_column("value", justify="right")
    for origin, n in cur.decisions.items():
        side.add_row(f"decisions {origin}", f"{n:,.0f}")
    for worker, up in cur.workers.items():
        version = cur.model_versions.get(worker)
        label = "up" if up else "[red]DOWN[/red]"
        side.add_row(f"worker {worker}", label + ("" if version is None else f" v{version:.0f}"))
    for edge, n in cur.drops.items():
        side.add_row(f"drops {edge}", f"[red]{n:,.0f}[/red]" if n else "0")
    parts = [head, lat, side]
    if note:
        parts.append(Text(note, style="yellow"))
    return Group(*parts)


def scrape(url: str, timeout_s: float = 2.0) -> Snapshot:
    """Fetch and parse one scrape; ValueError naming the URL when it fails."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            text = resp.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        raise ValueError(f"cannot scrape {url}: {exc}") from None
    return parse_scrape(text)


def figures(cur: Snapshot, prev: Snapshot | None = None) -> dict[str, Any]:
    """One snapshot as `--json` writes it (keys in the module docstring)."""

    def ns(row: dict[str, float | None]) -> dict[str, int | None]:
        return {
            k: None if row.get(k) is None else round(row[k]) for k in ("p50", "p99", "p999", "max")
        }

    stages = {
        name: {"count": int(row.get("count", 0)), **ns(row)}
        for name, row in cur.stages.items()
        if name != TICK_TO_DECISION
    }
    return {
        "uptime_s": cur.uptime_s,
        "events": int(cur.events),
        "decisions": int(sum(cur.decisions.values())),
        "decisions_by_origin": {k: int(v) for k, v in cur.decisions.items()},
        "deadline_misses": int(cur.deadline_misses),
        "failovers": int(cur.failovers),
        "drops_by_edge": {k: int(v) for k, v in cur.drops.items()},
        "workers_up": {k: bool(v) for k, v in cur.workers.items()},
        "model_versions": {k: int(v) for k, v in cur.model_versions.items()},
        "latency_ns": ns(cur.stages.get(TICK_TO_DECISION, {})),
        "stages": stages,
        **rates(cur, prev),
    }


def register(sub) -> None:
    p = sub.add_parser("top", help="show a running graph's metrics live in the terminal")
    p.add_argument("--url", default=DEFAULT_URL, help=f"metrics endpoint (default {DEFAULT_URL})")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between polls (default 1)")
    p.add_argument("--once", action="store_true", help="print one snapshot and exit")
    p.add_argument(
        "--count",
        type=int,
        metavar="N",
        help="print N snapshots, --interval apart, and exit (default with --json: 1)",
    )
    add_json_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    if args.interval <= 0:
        raise ValueError(f"--interval must be > 0, got {args.interval}")
    if args.count is not None and args.count < 1:
        raise ValueError(f"--count {args.count}: give at least 1 snapshot")
    if args.once and args.count not in (None, 1):
        raise ValueError(f"--once and --count {args.count}: give one of them")
    console = Console()
    cur = scrape(args.url)
    count = 1 if args.once else args.count
    if count is None and args.json is not None:
        count = 1  # a file for scripts: a snapshot, not a live screen
    if count is not None:
        return _snapshots(args, console, cur, count)
    prev: Snapshot | None = None
    try:
        with Live(render(cur), console=console, refresh_per_second=4) as live:
            while True:
                time.sleep(args.interval)
                try:
                    nxt = scrape(args.url)
                except ValueError as exc:  # keep the last frame, say why it is stale
                    live.update(render(cur, prev, note=str(exc)))
                    continue
                prev, cur = cur, nxt
                live.update(render(cur, prev))
    except KeyboardInterrupt:
        return 0


def _snapshots(args, console: Console, cur: Snapshot, count: int) -> int:
    """`count` snapshots printed one after another (a scrape that fails is the error)."""
    prev: Snapshot | None = None
    taken = []
    for i in range(count):
        if i:
            time.sleep(args.interval)
            prev, cur = cur, scrape(args.url)
        console.print(render(cur, prev))
        taken.append(figures(cur, prev))
    write_json(args.json, {**taken[-1], "snapshots": taken})
    return 0
