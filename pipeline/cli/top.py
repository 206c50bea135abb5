"""`redline top`: the graph's Prometheus figures, live in the terminal.

Polls a `metrics.Metrics` endpoint, parses the scrape into a `Snapshot` and
renders it with rich. Rates come from two snapshots and the graph's own
uptime gauge, so they do not depend on when this process polled; the first
frame (and `--once`) shows the average since the graph started.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

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


def register(sub) -> None:
    p = sub.add_parser("top", help="show a running graph's metrics live in the terminal")
    p.add_argument("--url", default=DEFAULT_URL, help=f"metrics endpoint (default {DEFAULT_URL})")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    p.add_argument("--once", action="store_true", help="print one snapshot and exit")
    p.set_defaults(run=run)


def run(args) -> int:
    if args.interval <= 0:
        raise ValueError(f"--interval must be > 0, got {args.interval}")
    console = Console()
    cur = scrape(args.url)
    if args.once:
        console.print(render(cur))
        return 0
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
