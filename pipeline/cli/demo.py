"""`redline demo`: the main job on bundled data, no arguments needed.

A publisher process replays the bundled market recording (quotes and trades)
over a real ZeroMQ socket (tcp, PUSH) into the `demo` graph: feed -> arbiter
with two redundant workers (CUDA when there is a GPU, else CPU) -> signal
trader -> journal. `--book` adds the recording's L2 book deltas: each worker
keeps every instrument's book resident and the model (replay_data/model_book)
reads its book features. Halfway through, worker A is SIGKILLed (`--no-chaos` to
skip) and the arbiter fails over to B while A is restarted. At the end it
prints the summary (events, decisions by origin, lost decisions, deadline
misses, failovers, tick-to-decision and per-stage p50/p99/p99.9), writes the
journal report (PNG plots) and, with `--json PATH`, the figures.

`--swap`: halfway, a hot swap from demo@1 (the model served) to demo@2 (pipeline/arbiter/
swap.py); the chaos kill moves to 3/4. Summary and JSON: `decisions_by_version`, the journal's.

Sized for a 2-vCPU VM: by default 40 s of the recording at 2x speed, the
events of instrument 1 (ES: ~190 quotes/s and its trades), and a decision for
every quote (the ticks edge blocks: a graph that falls behind holds the
publisher back, so nothing is dropped). With `--book` the ~400 deltas/s triple
the events: on 2 vCPUs 120-290 of 3,839 decisions were safe defaults even in
real time (the arbiter's cost per small delta batch; BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from redline.pipeline.arbiter.swap import ScheduledSwap
from redline.pipeline.cli.folders import output_folder
from redline.pipeline.cli.json_out import add_json_arg, write_json
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.runtime import Runtime
from redline.pipeline.observe.worker_log import worker_log_path
from redline.replay_data import DIR

RECORDINGS = ("market_quotes.parquet", "market_trades.parquet")
BOOK = "market_book.parquet"  # --book: the L2 deltas the book model's features read


def _seconds(text: str) -> float:
    s = float(text)
    if not 0 < s <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: give seconds of the recording in (0, 3600]")
    return s


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    s = float(text)
    if not 0 < s <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r}: give a speed in (0, 1000] or 'max'")
    return s


def _instruments(text: str) -> tuple[int, ...]:
    try:
        ids = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give instrument ids separated by commas, e.g. 1,2"
        ) from None
    if any(i < 0 for i in ids):
        raise argparse.ArgumentTypeError(f"{text!r}: instrument ids are >= 0")
    return ids


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="run the main job on the bundled recordings",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--seconds", type=_seconds, default=40.0, help="recording seconds to replay")
    p.add_argument("--speed", type=_speed, default=2.0, help="replay speed (1 = real time) or max")
    p.add_argument(
        "--instruments",
        type=_instruments,
        default=(1,),
        help="instruments replayed, each quote asking for a decision (comma separated)",
    )
    p.add_argument("--no-chaos", action="store_true", help="don't kill a worker halfway")
    p.add_argument(
        "--swap", action="store_true", help="hot-swap the model to demo@2 halfway through"
    )
    p.add_argument("--model", default="", help="model plan folder (empty: the bundled one)")
    p.add_argument("--book", action="store_true",
                   help="also replay the L2 book deltas; the workers keep each instrument's book "
                   "and the model reads its book features (replay_data/model_book)")  # fmt: skip
    p.add_argument(
        "--out", type=Path, default=None, help="folder for the journal and plots (None: a new one)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--driving", action="store_true",
                   help="the driving graph on the bundled drive, closed loop (demo_driving.py)")  # fmt: skip
    add_json_arg(p)
    p.set_defaults(run=run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _publish(
    paths: list[str], endpoint: str, seconds: float, speed: float, instruments: tuple[int, ...]
) -> None:
    """Publisher process: the first `seconds` of the recording's `instruments`, paced."""
    import numpy as np

    from redline.feeds.live.publisher import publish_batches
    from redline.feeds.replay.reader import replay

    def head():
        end = None
        for rtype, recs in replay(paths, batch_rows=4096):
            if end is None:
                end = int(recs["ts_event"][0]) + int(seconds * 1e9)
            keep = recs[(recs["ts_event"] < end) & np.isin(recs["instrument_id"], instruments)]
            if len(keep):
                yield rtype, keep
            if recs["ts_event"][-1] >= end:
                return

    # Read the recording before publishing: the pacer's clock starts when publishing does,
    # and a lazy read of the first batch (parquet decode, ~50-300 ms here) would make the
    # first ~100 events late, sent in one catch-up burst that only measures the read.
    batches = list(head())  # 40 s of one instrument: ~10k records, ~1 MB
    # PUSH into the feed's PULL over a block edge: at its own replay speed the demo drops
    # nothing; a graph that falls behind holds the publisher back instead of losing quotes.
    stats = publish_batches(
        batches, endpoint, speed=speed, socket="push", sndhwm=64, wait_timeout_s=120
    )
    if stats.undelivered:
        raise SystemExit(f"redline demo: publisher: {stats.undelivered}")


def recorded_instruments() -> list[int]:
    import pyarrow.parquet as pq

    table = pq.read_table(DIR / "market_instruments.parquet", columns=["instrument_id"])
    return table["instrument_id"].to_pylist()


def count_events(paths: list[str], seconds: float, instruments: tuple[int, ...]) -> int:
    """How many events the publisher will send (for progress and the chaos point)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tables = [pq.read_table(p, columns=["ts_event", "instrument_id"]) for p in paths]
    t0 = min(pc.min(t["ts_event"]).as_py() for t in tables)
    end = t0 + int(seconds * 1e9)
    n = 0
    for t in tables:
        mask = pc.and_(
            pc.less(t["ts_event"], end), pc.is_in(t["instrument_id"], pa_ids(instruments))
        )
        n += pc.sum(mask).as_py() or 0
    return n


def pa_ids(instruments: tuple[int, ...]):
    import pyarrow as pa

    return pa.array(instruments, pa.uint32())


def demo_graph(
    port: int, journal: Path, instruments: tuple[int, ...], model: str = ""
) -> gc.GraphSpec:
    """The bundled `demo` preset, pointed at this run's publisher and journal."""
    spec = gc.load("demo")
    nodes = dict(spec.nodes)
    nodes["feed"] = msgspec.structs.replace(nodes["feed"], source=f"tcp://127.0.0.1:{port}")
    nodes["arbiter"] = msgspec.structs.replace(
        nodes["arbiter"], instruments=instruments, model=model
    )
    nodes["journal"] = msgspec.structs.replace(nodes["journal"], path=str(journal))
    return msgspec.structs.replace(spec, nodes=nodes)


def run(args) -> int:
    if args.driving:
        from redline.pipeline.cli.demo_driving import run as run_driving

        return run_driving(args)
    from rich.console import Console

    console = Console(stderr=True)  # progress and events as they happen
    result = Console()  # the summary: stdout, so `redline demo > out.txt` keeps it
    paths = [str(DIR / name) for name in RECORDINGS + ((BOOK,) if args.book else ())]
    if args.book and not args.model:  # the model whose book features the deltas feed
        from redline.kernels.plans.demo_model import book_model_dir

        args.model = str(book_model_dir())
    if args.out is not None:
        output_folder(args.out)
    known = recorded_instruments()
    missing = sorted(set(args.instruments) - set(known))
    if missing:
        raise ValueError(
            f"--instruments: {missing} not in the bundled recording (it has {sorted(known)})"
        )
    out = Path(args.out or tempfile.mkdtemp(prefix="redline-demo-"))
    journal = out / "journal.arrow"
    # A demo rerun into the same folder starts a new journal and worker log.
    journal.unlink(missing_ok=True)
    worker_log_path(journal).unlink(missing_ok=True)
    total = count_events(paths, args.seconds, args.instruments)
    port = _free_port()
    spec = demo_graph(port, journal, args.instruments, args.model)
    if total == 0:
        raise ValueError(
            f"--seconds {args.seconds:g} --instruments {','.join(map(str, args.instruments))}: "
            "no events selected; give more seconds or other instruments"
        )
    speed = "max" if args.speed is None else f"{args.speed:g}x"
    console.print(
        f"redline demo: {total:,} events ({args.seconds:g} s of the recording at "
        f"{speed}), decisions on instruments {list(args.instruments)}, "
        f"chaos {'off' if args.no_chaos else 'on'}; output in {out}"
    )
    t0 = time.monotonic()
    rt = Runtime(spec)  # starts both workers and waits until they are warm
    kill_at = None if args.no_chaos else max(1, total * (3 if args.swap else 2) // 4)
    swap = ScheduledSwap("demo", "2", at=max(1, total // 2)) if args.swap else None
    pub = multiprocessing.get_context("spawn").Process(
        target=_publish,
        args=(paths, f"tcp://127.0.0.1:{port}", args.seconds, args.speed, args.instruments),
    )
    pub.start()
    try:
        code = _run_with_progress(
            rt, pub, total, kill_at, console, show=not args.no_progress, swap=swap
        )
    finally:
        pub.join(30)
        if pub.is_alive():
            pub.kill()
    wall = time.monotonic() - t0
    figures = summary(rt, wall)
    from redline.pipeline.observe.journal import read_journal

    decisions = read_journal(journal)
    figures["decisions_by_version"] = rt.nodes["arbiter"].by_version(decisions["model_version"])
    from redline.kernels.training import edge

    figures["model_edge"] = edge(args.model)  # out of sample, from the plan's manifest
    if swap is not None:
        figures["swap"] = swap.reply
        # what followed the flip: an automatic rollback (and its reason) is part of the story
        figures["swap_history"] = list(rt.nodes["arbiter"].swapper.history)
        for h in figures["swap_history"][1:]:
            if h.get("action") == "rollback":
                console.print(
                    f"swap: rolled back to {h['serving']} from event {h['flipped_at_event']:,}: "
                    f"{h['reason']}"
                )
    if pub.exitcode:
        console.print(
            f"redline demo: error: the publisher process failed (exit {pub.exitcode}, its "
            "error is above); the graph was stopped"
        )
        return 1
    _print_summary(figures, result)
    if figures["model_edge"]:
        e = figures["model_edge"]
        result.print(
            f"model edge out of sample ({e['horizon_s']:g} s mid move, {e['test_rows']:,} "
            f"rows): corr {e['model_oos_corr']:.3f}, hit rate {e['model_hit_rate']:.1%} (last-move "
            f"baseline {e['baseline_oos_corr']:.3f}, {e['baseline_hit_rate']:.1%})"
        )
    from redline.pipeline.cli.report import write_plots
    from redline.pipeline.observe.worker_log import read_worker_log

    plots = write_plots(decisions, out, read_worker_log(journal) or ())
    result.print(f"report: {journal} and {', '.join(p.name for p in plots)} in {out}")
    write_json(args.json, figures)
    return code if figures["lost_decisions"] == 0 else 1


def _run_with_progress(
    rt: Runtime, pub, total: int, kill_at: int | None, console, show: bool, swap=None
) -> int:
    """Run the graph; on the same loop, show progress, kill worker A at `kill_at` events, and
    stop at once if the publisher process dies (its error is already on stderr)."""
    import uvloop
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    feed, arb, sink = rt.nodes["feed"], rt.nodes["arbiter"], rt.nodes["journal"]

    async def main() -> int:
        graph = asyncio.create_task(rt.run_async())
        cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(
            *cols, TextColumn("{task.fields[note]}"), console=console, disable=not show
        ) as bar:
            task = bar.add_task("events", total=total, note="")
            while True:
                if kill_at is not None and not arb.killed_pid and feed.events >= kill_at:
                    pid = arb.kill_worker(0)
                    console.print(f"chaos: worker A (pid {pid}) killed at {feed.events:,} events")
                if swap is not None:
                    swap.maybe_start(arb, feed.events, console.print)
                bar.update(task, completed=feed.events, note=f"decisions {sink.events:,}")
                if graph.done():
                    if swap is not None and swap.task is not None:
                        if not swap.task.done():  # the run ended mid-swap: its reply says so
                            swap.task.cancel()
                        arb.swapper.close()
                    return graph.result()
                if pub.exitcode:  # nothing more will come: end the graph now
                    rt.stop()
                await asyncio.wait({graph}, timeout=0.05)

    return uvloop.run(main())


def summary(rt: Runtime, wall_s: float) -> dict[str, Any]:
    """The contract figures of a finished demo run."""
    stats = rt.stats()
    nodes = stats["nodes"]
    feed, arb, sink = nodes["feed"], nodes["arbiter"], nodes["journal"]
    arb_stats = arb["arbiter"]
    drops = {e: s["drops"] for e, s in stats["edges"].items()}  # every drop, counted per edge
    conflated = {e: s["drops"] - s.get("ingress_drops", 0) for e, s in stats["edges"].items()}
    graph_s = stats["seconds"] or wall_s
    return {
        "events": feed["events"],
        "decisions": sink["decisions"],
        "decisions_by_origin": sink["decisions_by_origin"],
        # asked for but never journaled: must be 0 (every decision is accounted for)
        "lost_decisions": arb["asked"] - sink["decisions"],
        "deadline_misses": sink["deadline_misses"],
        "failovers": arb_stats.get("failovers", 0),
        "latency_ns": sink["latency_ns"],
        "stages": sink["stages"],
        "events_per_s": feed["events"] / graph_s if graph_s else 0.0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "conflated": conflated,
        "drops_by_edge": drops,  # conflated + lost before the feed (sequence gaps)
        "ingress_drops": feed["ingress_drops"],
        "restarts": arb_stats.get("restarts", 0),
        "killed_worker_pid": rt.nodes["arbiter"].killed_pid or None,
        "strategy": {k: nodes["strategy"][k] for k in ("reasons", "positions", "halted")},
        "feed": feed["feed"],
        "arbiter": arb_stats,
        "arbiter_node": {k: arb[k] for k in ("events", "asked", "filtered")},
        "seconds": wall_s,
    }


def _print_summary(f: dict[str, Any], console) -> None:
    from rich.table import Table

    table = Table(title="tick-to-decision and per stage (µs)", title_justify="left")
    for col in ("stage", "p50", "p99", "p99.9", "max"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for stage, p in [("tick_to_decision", f["latency_ns"]), *f["stages"].items()]:
        table.add_row(stage, *(_us(p[k]) for k in ("p50", "p99", "p999", "max")))
    console.print(table)
    origins = ", ".join(f"{k} {v:,}" for k, v in f["decisions_by_origin"].items())
    console.print(
        f"events {f['events']:,} ({f['events_per_s']:,.0f}/s), decisions {f['decisions']:,} "
        f"({origins}), lost {f['lost_decisions']}, deadline misses {f['deadline_misses']}, "
        f"failovers {f['failovers']}, worker restarts {f['restarts']}, "
        f"decisions_by_version {f['decisions_by_version']}, "
        f"dropped by backpressure {sum(f['drops_by_edge'].values()):,} "
        f"({', '.join(f'{e} {n:,}' for e, n in f['drops_by_edge'].items())}; "
        f"sequence gaps before the feed {f['ingress_drops']:,}), {f['seconds']:.1f} s"
    )


def _us(ns: int | None) -> str:
    return "–" if ns is None else f"{ns / 1e3:,.1f}"
