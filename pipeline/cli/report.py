"""`redline report JOURNAL`: the latency breakdown of a decision journal.

Prints p50/p99/p99.9/max per stage, decisions by origin and deadline misses,
writes three PNGs into STEM_report/ beside the journal (latency histogram per
stage, latency over time with the budget line, decisions per second) and, with
`--json`, the figures under the contract keys plus `worker_events` (the worker
log's entries, null when there is none). Worker faults and restarts come from
the worker log beside the journal (`observe/worker_log.py`) and are marked on
both plots over time. A journal without decisions is an error: there is nothing
to report. Same accounting as the live metrics (`latency.LatencyStats`), so a
report and a scrape of the same run agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from redline.feeds.events import Origin
from redline.pipeline.cli.json_out import add_json_arg, write_json
from redline.pipeline.observe.journal import read_journal
from redline.pipeline.observe.latency import (
    TICK_TO_DECISION,
    LatencyStats,
    count_by_origin,
    count_deadline_misses,
    counted,
    stage_durations,
)
from redline.pipeline.observe.worker_log import WorkerEvent, read_worker_log, worker_log_path

PLOTS = ("latency_histograms.png", "latency_over_time.png", "decisions_per_second.png")
_MAX_SCATTER = 50_000  # points drawn in the over-time plot; more only blurs it
_TIME_BINS = 100  # bins of the p50/p99 lines over time


def journal_figures(decisions: np.ndarray) -> dict:
    """The report's figures (contract keys plus a few of its own)."""
    stats = LatencyStats()
    stats.record(decisions)
    summary = stats.summary()
    span_s = 0.0
    if decisions.size > 1:
        span_s = float(decisions["ts_decision"].max() - decisions["ts_decision"].min()) / 1e9
    versions, counts = np.unique(decisions["model_version"], return_counts=True)
    return {
        "decisions": int(decisions.size),
        "decisions_by_origin": count_by_origin(decisions),
        "deadline_misses": count_deadline_misses(decisions),
        "latency_ns": summary["latency_ns"],
        "stages": summary["stages"],
        "latency_samples": summary["latency_samples"],
        "latency_excluded": summary["latency_excluded"],
        "model_versions": {str(v): int(c) for v, c in zip(versions, counts, strict=True)},
        "span_s": span_s,
        "decisions_per_s": decisions.size / span_s if span_s > 0 else None,
    }


def print_figures(figures: dict, console: Console) -> None:
    table = Table(title="latency (µs)", title_justify="left")
    for col in ("stage", "p50", "p99", "p99.9", "max"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    rows = [(TICK_TO_DECISION, figures["latency_ns"]), *figures["stages"].items()]
    for stage, p in rows:
        table.add_row(stage, *(_us(p[k]) for k in ("p50", "p99", "p999", "max")))
    console.print(table)
    origins = ", ".join(f"{k} {v:,}" for k, v in figures["decisions_by_origin"].items())
    console.print(f"decisions {figures['decisions']:,} ({origins})")
    console.print(
        f"deadline misses {figures['deadline_misses']:,}; "
        f"left out of latency (bad ts_recv / snapshot) {figures['latency_excluded']:,}"
    )


def _us(ns: int | None) -> str:
    return "–" if ns is None else f"{ns / 1e3:,.1f}"


def write_plots(
    decisions: np.ndarray, out: Path, worker_events: Sequence[WorkerEvent] = ()
) -> list[Path]:
    """Write the three PNGs into `out`; returns their paths. `worker_events` (wall-clock
    stamps, as the decisions carry) become a marker each on the two plots over time.
    Legends sit outside the axes: they never hide the tail or the tallest bar."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in PLOTS]
    budget_us = _budget_us(decisions)
    t0 = int(decisions["ts_decision"].min()) if decisions.size else 0

    fig = plt.figure(figsize=(16, 7.5), layout="constrained")
    _histograms(fig, stage_durations(decisions), budget_us)
    fig.savefig(paths[0], dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(12, 4.5), layout="constrained")
    _over_time(ax, decisions, t0, budget_us)
    _mark_workers(ax, worker_events, t0)
    _legend_outside(ax)
    fig.savefig(paths[1], dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(12, 4.5), layout="constrained")
    _per_second(ax, decisions, t0)
    _mark_workers(ax, worker_events, t0)
    _legend_outside(ax)
    fig.savefig(paths[2], dpi=80)
    plt.close(fig)
    return paths


def _histograms(fig, durations: dict[str, np.ndarray], budget_us: float) -> None:
    """One histogram per stage, log-spaced bins on a log x axis; one legend for all, below."""
    axes = fig.subplots(2, 4)
    for ax, (stage, ns) in zip(axes.flat, durations.items(), strict=True):
        us = ns[ns > 0] / 1e3
        ax.set_title(stage)
        if us.size == 0:
            ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
            continue
        lo, hi = us.min(), us.max()
        bins = np.geomspace(lo, hi * 1.001, 60) if hi > lo else 10
        ax.hist(us, bins=bins, color="tab:blue")
        ax.set_xscale("log")
        ax.set_xlabel("µs")
        for q, style in ((50, "-"), (99, "--"), (99.9, ":")):
            ax.axvline(np.percentile(us, q), color="tab:red", linestyle=style, label=f"p{q}")
        if stage == TICK_TO_DECISION and budget_us:
            ax.axvline(budget_us, color="black", linewidth=2, label=f"budget {budget_us:,.0f} µs")
    handles: dict[str, object] = {}
    for ax in axes.flat:  # the same lines in every panel: one legend entry each
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=4)
    fig.suptitle("latency per stage")


def _over_time(ax, decisions: np.ndarray, t0: int, budget_us: float) -> None:
    """Tick-to-decision over time, p50/p99 per time bin, misses in red, the budget line."""
    rows = _latency_rows(decisions)
    t = (rows["ts_decision"] - t0) / 1e9
    lat_us = (rows["ts_decision"] - rows["ts_recv"]) / 1e3
    step = max(1, rows.size // _MAX_SCATTER)
    ax.scatter(t[::step], lat_us[::step], s=2, alpha=0.5, label="tick to decision")
    if rows.size:
        # p50 / p99 per time bin: the trend a cloud of points hides.
        edges = np.linspace(t.min(), t.max(), _TIME_BINS + 1)
        which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, _TIME_BINS - 1)
        order = np.argsort(which, kind="stable")
        groups = np.split(lat_us[order], np.flatnonzero(np.diff(which[order])) + 1)
        mids = (edges[:-1] + edges[1:])[np.unique(which)] / 2
        for q, color in ((50, "tab:green"), (99, "tab:orange")):
            ax.plot(mids, [np.percentile(g, q) for g in groups], color=color, label=f"p{q} per bin")
        missed = (rows["deadline"] != 0) & (rows["ts_decision"] > rows["deadline"])
        if missed.any():
            ax.scatter(t[missed], lat_us[missed], s=6, color="tab:red", label="deadline miss")
        if (lat_us > 0).all():
            ax.set_yscale("log")
    if budget_us:
        ax.axhline(budget_us, color="black", linewidth=1.5, label=f"budget {budget_us:,.0f} µs")
    ax.set_xlabel("s since first decision")
    ax.set_ylabel("µs")
    ax.set_title("tick-to-decision latency over time")


def _per_second(ax, decisions: np.ndarray, t0: int) -> None:
    """Decisions per second, stacked by origin."""
    if decisions.size == 0:  # `redline demo` plots whatever its run journaled
        ax.text(0.5, 0.5, "no decisions", ha="center", va="center", transform=ax.transAxes)
        return
    sec = (decisions["ts_decision"] - t0) // 1_000_000_000
    n_bins = int(sec.max()) + 1
    bottom = np.zeros(n_bins)
    for origin in Origin:
        per_s = np.bincount(sec[decisions["origin"] == origin], minlength=n_bins)
        # bars start at their second: a marker at t s lands inside the bar of second t
        ax.bar(np.arange(n_bins), per_s, bottom=bottom, label=origin.name.lower(), width=1.0,
               align="edge")  # fmt: skip
        bottom += per_s
    ax.set_xlabel("s since first decision")
    ax.set_ylabel("decisions / s")
    ax.set_title("decisions per second")


def _mark_workers(ax, events: Sequence[WorkerEvent], t0: int) -> None:
    """A vertical line per worker event: red dashed for a fault, green dotted for recovery."""
    for e in events:
        color, style = ("tab:red", "--") if e.fault else ("tab:green", ":")
        # A legend entry stays short: a swap's reasons run to a paragraph (the journal keeps it
        # whole), and a legend that wide collapsed the axes beside it.
        why = f" ({e.why if len(e.why) <= 40 else e.why[:39] + '…'})" if e.why else ""
        ax.axvline((e.ts_ns - t0) / 1e9, color=color, linestyle=style, linewidth=1.2,
                   label=f"worker {e.worker} {e.what}{why}")  # fmt: skip


def _legend_outside(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, fontsize="small")


def _budget_us(decisions: np.ndarray) -> float:
    """The graph's budget as the decisions carry it (deadline - ts_recv), in µs; 0 if none."""
    d = decisions[(decisions["deadline"] != 0) & (decisions["ts_recv"] != 0)]
    return float(np.median(d["deadline"] - d["ts_recv"])) / 1e3 if d.size else 0.0


def _latency_rows(decisions: np.ndarray) -> np.ndarray:
    """Rows that count for tick-to-decision (LatencyStats' rules)."""
    d = decisions
    return d[counted(d) & (d["ts_recv"] != 0) & (d["ts_decision"] != 0)]


def default_out_dir(journal: Path) -> Path:
    """STEM_report/ beside the journal: run.arrow -> run_report/."""
    return journal.with_name(journal.stem + "_report")


def register(sub) -> None:
    p = sub.add_parser("report", help="latency breakdown and plots of a decision journal")
    p.add_argument("journal", type=Path, help="journal file written by the graph (Arrow IPC)")
    p.add_argument(
        "--out",
        type=Path,
        help="folder for the PNGs (default: STEM_report/ beside the journal, e.g. "
        "runs/run_report/ for runs/run.arrow)",
    )
    add_json_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    decisions = read_journal(args.journal)
    if decisions.size == 0:
        raise ValueError(
            f"{args.journal}: the journal holds no decisions; nothing to report (did the graph "
            "get events, and does a node decide on them? see `redline run`'s summary)"
        )
    events = read_worker_log(args.journal)
    figures = journal_figures(decisions)
    figures["worker_events"] = None if events is None else [asdict(e) for e in events]
    console = Console()
    print_figures(figures, console)
    t0 = int(decisions["ts_decision"].min())
    if events is None:
        console.print(
            f"no worker log ({worker_log_path(args.journal).name} beside the journal): "
            "the plots carry no fault or restart markers"
        )
    for e in events or ():
        console.print(
            f"worker {e.worker} {e.what} at {(e.ts_ns - t0) / 1e9:,.3f} s"
            + (f" ({e.why})" if e.why else "")
        )
    out = args.out if args.out is not None else default_out_dir(args.journal)
    for path in write_plots(decisions, out, events or ()):
        console.print(f"wrote {path}")
    write_json(args.json, figures)
    return 0
