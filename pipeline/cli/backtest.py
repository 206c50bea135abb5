"""`redline backtest DATA... --strategy NAME [--param k=v ...] [--mode fast|faithful]
[--venue auto|l1|l2] [--queue MODEL] [--step-ms T] [--latency ...] [--orders ...] [--risk ...]
[--fee-bps X] [--maker-bps X] [--json PATH] [--report DIR]`: a strategy (a target position, or
quotes) behind pre-trade risk against the simulated venue over recordings, with the latency
legs given, and what it made.

`--mode fast` (the default) runs the strategy, risk and venue in one compiled loop over the
data; `--mode faithful` pushes the same quotes and trades through the live graph (two worker
processes, the arbiter, the strategy node on the same venue: backtest_faithful.py). Both
report the same figures, `journal_sha256` included, so the two can be compared.

DATA: Parquet recordings or folders of them (`redline import` output, `replay_data/`). The
venue (`--venue auto`): the L2 book with a queue model (venue/l2.py) where the data hold
BOOK_DELTA records, else the recorded top of book (venue/l1.py, QUOTE records). The queue
model (`--queue auto`): `exact` where the book deltas are L3 (order by order, with an
`order_id`: each cancel is ahead of our order or behind it by when its order got its place),
else `risk_averse`. Money is the quote currency where an instrument table lies beside the data
(`instruments.parquet`, `market_instruments.parquet`, `NAME.instruments.parquet`), the coin for
an inverse (COIN-M) contract, else ticks; the summary says which.

`--latency` legs, comma-separated (missing ones are 0):
    decision=US | decision=journal:PATH   constant µs, or drawn from the tick-to-decision
                                          latencies a decision journal measured (whole
                                          decisions, so its stages keep their correlation)
    entry=US | entry=file:PATH            constant µs, or interpolated from a recorded
    ack=US | ack=file:PATH                order-latency file (venue/latency.py: CSV or Parquet,
                                          columns ts_ns, entry_ns, response_ns)
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

from redline.pipeline.cli.json_out import add_json_arg, write_json

TABLE_NAMES = ("instruments.parquet", "market_instruments.parquet")


def register(sub) -> None:
    p = sub.add_parser("backtest", help="a strategy against the simulated venue over recordings")
    p.add_argument("data", nargs="+", metavar="DATA", help="Parquet recordings or folders")
    p.add_argument("--strategy", required=True, help="ema_cross, market_maker or model_signal")
    p.add_argument("--param", action="append", default=[], metavar="K=V",
                   help="a strategy parameter, e.g. --param alpha=0.02 (repeat)")  # fmt: skip
    p.add_argument("--latency", default="", metavar="LEGS",
                   help="decision=US|journal:PATH,entry=US|file:PATH,ack=US|file:PATH "
                   "(µs; default 0 each)")  # fmt: skip
    p.add_argument("--mode", choices=("fast", "faithful"), default="fast",
                   help="fast: one compiled loop over the data; faithful: through the live "
                   "graph with two worker processes (L1 venue)")  # fmt: skip
    p.add_argument("--venue", choices=("auto", "l1", "l2"), default="auto",
                   help="fills against the top of book (l1, QUOTE records) or the L2 book with "
                   "a queue model (l2, BOOK_DELTA and TRADE records); auto: l2 where the data "
                   "hold book deltas, unless the strategy steps on quotes")  # fmt: skip
    p.add_argument("--queue", default="auto", metavar="MODEL",
                   help="L2 queue model: risk_averse (only trades advance us), power[:N] (a "
                   "cancel is ahead of us with weight ahead^N, N=2 by default), log, or exact "
                   "(L3 data: a cancel is ahead of us when its order came first); auto: exact "
                   "on L3 data, else risk_averse")  # fmt: skip
    p.add_argument("--orders", default="", metavar="K=V,...",
                   help="kind=market|limit|ioc|post_only,offset=TICKS (default "
                   "market; a quoting strategy sends post-only)")  # fmt: skip
    p.add_argument("--risk", default="", metavar="K=V,...",
                   help="pre-trade limits: max_position, max_notional, max_orders_per_s, "
                   "band_bps, kill_loss, state=active|reducing|halted (0: no limit)")  # fmt: skip
    p.add_argument("--fee-bps", type=float, default=0.0, help="taker fee, basis points")
    p.add_argument("--maker-bps", type=float, default=0.0, help="maker fee (< 0: a rebate)")
    p.add_argument("--step-ms", type=float, default=0.0, metavar="T",
                   help="L2: the strategy steps on an instrument at most once per T ms of data "
                   "time (a timer; 0: on every book update)")  # fmt: skip
    p.add_argument("--report", metavar="DIR",
                   help="write report.png (equity, position, drawdown), executions.parquet and "
                   "summary.md")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from redline.strategies.target import params, strategy
    from redline.venue.orders import Orders
    from redline.venue.risk import Risk

    p = params(args.strategy, args.param)
    legs = _legs(args.latency)
    orders = Orders.parse(args.orders) if args.orders else None
    limits = Risk.parse(args.risk)
    module = strategy(args.strategy)
    venue, kinds = _venue(args.data, args.venue, on_quotes=hasattr(module, "stream"))
    ids, total = _instruments(args.data, kinds)
    value, unit = _value_per_tick(args.data, ids)
    common = dict(value_per_tick=value, fee_bps=args.fee_bps, maker_bps=args.maker_bps,
                  risk=limits, orders=orders)  # fmt: skip
    if args.mode == "faithful":
        if venue != "l1":
            raise ValueError("--mode faithful: the graph's strategy node trades the L1 venue; "
                             "give --venue l1")  # fmt: skip
        from redline.pipeline.cli.backtest_faithful import run_faithful

        t0 = time.perf_counter()
        bt, result, graph = run_faithful(args.data, args.strategy, module, p, legs, ids, common)
        seconds = time.perf_counter() - t0
    else:
        bt, result, seconds = _fast(args, module, p, legs, ids, common, venue, kinds, total)
        graph = {}
    queue = result.figures.get("queue_model")
    f = (
        result.figures
        | graph
        | {
            "strategy": args.strategy,
            "params": {k: getattr(p, k) for k in p.__struct_fields__},
            "venue": venue,
            "mode": args.mode,
            "latency": legs.describe() | {"given": args.latency},
            "orders_as": {f: getattr(bt.orders, f) for f in bt.orders.__struct_fields__},
            "risk": {f: getattr(limits, f) for f in limits.__struct_fields__},
            "money": unit,
            "events_per_s": result.events / seconds if seconds > 0 else 0.0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rejections": _rejections(result.figures),
        }
    )
    print(
        f"redline backtest: {args.strategy} on {f['events']:,} events ({venue}"
        f"{', queue ' + queue if queue else ''}) "
        f"({f['events_per_s'] / 1e6:.2f} M/s): {f['orders']:,} orders, {f['fills']:,} filled, "
        f"{f['refused']:,} refused by risk {_reasons(f['refused_by_reason'])}, "
        f"{f['rejections'] - f['refused']:,} more rejected or unfilled, "
        f"{f['cancels']:,} cancels ({f['cancels_too_late']:,} too late), "
        f"{f['resting_at_end']} resting and {f['in_flight_at_end']} in flight at the end; "
        f"pnl {f['pnl']:,.2f} {unit} after fees {f['fees']:,.2f}, sharpe {f['sharpe']:.2f}, "
        f"max drawdown {f['max_drawdown']:,.2f}, fill ratio {f['fill_ratio']:.2%}; "
        f"latency {_legs_text(f['latency'])}; journal sha256 {f['journal_sha256'][:16]}"
    )
    if graph:
        origins = ", ".join(f"{k} {n:,}" for k, n in graph["decisions_by_origin"].items())
        print(f"redline backtest: faithful graph: decisions by origin {origins}; lost decisions "
              f"{graph['lost_decisions']:,}; worker restarts {graph['restarts']}")  # fmt: skip
    if args.report:
        from redline.pipeline.cli import backtest_report

        paths = backtest_report.write(Path(args.report), result, f, unit)
        print(f"redline backtest: report in {paths[0].parent} "
              f"({', '.join(p.name for p in paths)})")  # fmt: skip
    write_json(args.json, f)
    return _faithful_losses(graph)


def _fast(args, module, p, legs, ids, common, venue, kinds, total):
    """Fast mode: the compiled loop over the data; (the backtest, its result, seconds)."""
    from redline.feeds.replay.files import event_paths
    from redline.feeds.replay.reader import replay
    from redline.venue.backtest import Backtest
    from redline.venue.l2_backtest import L2Backtest

    if not args.step_ms >= 0 or (args.step_ms and venue != "l2"):
        raise ValueError(f"--step-ms {args.step_ms}: a timer of 0 ms or more, for the L2 venue "
                         f"(this run's is {venue})")  # fmt: skip
    stream = None
    if venue == "l2":
        if hasattr(module, "stream"):
            raise ValueError(f"--strategy {args.strategy} steps on quotes: give --venue l1")
        queue = args.queue
        if queue == "auto":
            queue = "exact" if _holds_l3(args.data) else "risk_averse"
        model, power = _queue(queue)
        bt = L2Backtest(module, p, legs, ids, queue=model, power=power,
                        step_ns=round(args.step_ms * 1e6), **common)  # fmt: skip
    else:
        stream = module.stream(p, args.data, ids) if hasattr(module, "stream") else None
        bt = Backtest(stream or module, p, legs, ids, **common)
    t0 = time.perf_counter()
    with _progress(total, args.no_progress) as advance:
        if stream is not None:  # model_signal: each chunk's predictions, then its steps

            def feed(quotes, rows):
                bt.feed(quotes, rows)
                advance(len(quotes))

            stream.run(feed)
        else:
            # Chunks of 256k events: big enough that Python's share is noise, small enough
            # that the read-ahead and the order buffer stay a few tens of MB whatever the
            # length. Only the files the venue reads: merging the others in costs ~1 µs a run.
            for _, recs in replay(event_paths(args.data, kinds), batch_rows=1 << 18):
                bt.feed(recs)
                advance(len(recs))
    result = bt.finish()
    return bt, result, time.perf_counter() - t0


def _faithful_losses(graph: dict) -> int:
    """Exit status of a run: 3 (said on stderr) when the faithful graph lost, dropped or did
    not step anything it took in, else 0."""
    lost = {k: graph.get(k, 0) for k in ("lost_decisions", "lost", "drops", "missing_quote")}
    if not any(lost.values()) and not graph.get("graph_exit"):
        return 0
    shown = ", ".join(f"{k} {v:,}" for k, v in lost.items())
    print(f"redline backtest: the faithful graph lost input ({shown}); its figures miss it",
          file=sys.stderr)  # fmt: skip
    return 3


def _rejections(figures: dict) -> int:
    """Orders refused before they left, refused by the venue, or that found nothing to take
    (venue/backtest.py)."""
    from redline.venue.backtest import rejections

    return rejections(figures)


def _reasons(by_reason: dict[str, int]) -> str:
    shown = [f"{name} {n:,}" for name, n in by_reason.items() if n]
    return f"({', '.join(shown)})" if shown else "(none)"


def _venue(paths: list[str], venue: str, on_quotes: bool = False) -> tuple[str, tuple]:
    """The venue to fill on and the record types it reads, checked against the data.
    `on_quotes`: the strategy steps on quotes (model_signal), so auto picks l1 for it."""
    from redline.feeds.events import RecordType
    from redline.feeds.replay.files import event_files

    files, _ = event_files(paths)
    held = {f.rtype for f in files}
    if venue == "auto":
        venue = "l2" if RecordType.BOOK_DELTA in held and not on_quotes else "l1"
    kinds = (RecordType.BOOK_DELTA, RecordType.TRADE) if venue == "l2" else (RecordType.QUOTE,)
    if kinds[0] not in held:
        fix = "give book deltas or --venue l1" if venue == "l2" else "give quotes or --venue l2"
        raise ValueError(f"{' '.join(paths)}: no {kinds[0].name} records to backtest on; {fix}")
    return venue, kinds


def _instruments(paths: list[str], kinds: tuple) -> tuple[list[int], int]:
    """Instrument ids and the number of records of `kinds` in `paths`, from the id column."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from redline.feeds.replay.files import event_files

    files, _ = event_files(paths)
    used = [f for f in files if f.rtype in kinds]
    ids: set[int] = set()
    for f in used:
        col = pq.read_table(f.path, columns=["instrument_id"])["instrument_id"]
        ids.update(pc.unique(col).to_pylist())
    return sorted(ids), sum(f.num_rows for f in used)


def _queue(text: str) -> tuple[str, float]:
    """`risk_averse`, `log`, `exact`, `power` or `power:N` -> (model, N) (`auto`: _fast)."""
    model, colon, n = text.partition(":")
    if model in ("risk_averse", "power", "log", "exact") and not colon:
        return model, 2.0
    if model == "power" and colon:
        try:
            if float(n) > 0:
                return model, float(n)
        except ValueError:
            pass
    raise ValueError(
        f"--queue {text!r}: give risk_averse, log, power, power:N (N > 0), exact or auto"
    )


def _holds_l3(paths: list[str]) -> bool:
    """Whether any BOOK_DELTA file in `paths` holds L3 deltas (a nonzero `order_id`): from each
    row group's statistics where the writer kept them, else by reading that row group's ids."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from redline.feeds.events import RecordType
    from redline.feeds.replay.files import event_paths

    for path in event_paths(paths, (RecordType.BOOK_DELTA,)):
        pf = pq.ParquetFile(path)
        col = pf.schema_arrow.get_field_index("order_id")
        for g in range(pf.metadata.num_row_groups):
            stats = pf.metadata.row_group(g).column(col).statistics
            if stats is not None and stats.has_min_max:
                if stats.max != 0:
                    return True
            elif pc.any(pc.not_equal(pf.read_row_group(g, columns=["order_id"])[0], 0)).as_py():
                return True
    return False


def _legs(text: str):
    """--latency: constant µs legs, a journal's decisions, recorded order latencies."""
    from redline.venue.latency import Latency

    constant, recorded = [], []
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = (x.strip() for x in part.partition("="))
        kind, colon, path = value.partition(":")
        if not colon:
            constant.append(part)
            continue
        if (key, kind) not in (("decision", "journal"), ("entry", "file"), ("ack", "file")):
            raise ValueError(
                f"--latency {part!r}: give decision=journal:PATH, entry=file:PATH, "
                "ack=file:PATH or a leg in µs"
            )
        recorded.append((key, path))
    legs = Latency.parse(",".join(constant)).legs()
    for leg, path in recorded:
        if leg == "decision":
            legs = legs.with_decision(_journal_latencies(path), f"journal {path}")
        else:
            legs = legs.with_recorded(leg, path)
    return legs


def _journal_latencies(path: str):
    """Tick-to-decision (ns) of each decision a journal counts for latency (the sum of its
    stages, by `redline report`'s rules; stamps out of order are left out there too)."""
    from redline.pipeline.observe.journal import read_journal
    from redline.pipeline.observe.latency import TICK_TO_DECISION, stage_durations

    if not Path(path).is_file():
        raise ValueError(f"--latency decision=journal:{path}: no such journal")
    ns = stage_durations(read_journal(path))[TICK_TO_DECISION]
    return ns[ns >= 0]


def _legs_text(described: dict) -> str:
    parts = []
    for leg in ("decision", "entry", "ack"):
        d = described[leg]
        if "constant_us" in d:
            parts.append(f"{leg} {d['constant_us']:g} µs")
        else:
            parts.append(f"{leg} p50 {d['p50_us']:,.1f} p99 {d['p99_us']:,.1f} µs "
                         f"({d['points']:,} points)")  # fmt: skip
    return ", ".join(parts)


def _value_per_tick(paths: list[str], ids: list[int]) -> tuple[dict[int, float], str]:
    """Money per tick per lot from an instrument table beside the data, else 1 (ticks)."""
    from redline.feeds.instruments import InstrumentTable

    for p in map(Path, paths):
        folder = p if p.is_dir() else p.parent
        candidates = [folder / n for n in TABLE_NAMES] + sorted(
            folder.glob("*.instruments.parquet")
        )
        for table_path in candidates:
            if table_path.is_file():
                table = InstrumentTable.read(table_path)
                if all(i in table for i in ids):
                    return {i: _per_tick(table[i]) for i in ids}, (
                        "coin (inverse)" if any(_inverse(table[i]) for i in ids)
                        else "quote currency"
                    )  # fmt: skip
    return {}, "ticks"


def _inverse(instrument) -> bool:
    """A Binance COIN-M contract (`ETHUSD_PERP`, `BTCUSD_240927`): priced in USD, settled in
    the coin (the importer's own rule, feeds/importers/binance_terms.py)."""
    from redline.feeds.importers.binance_terms import _COINM_SYMBOL

    return bool(_COINM_SYMBOL.fullmatch(instrument.symbol))


def _per_tick(instrument) -> float:
    """Money per tick per lot; for an inverse contract -face / tick_size (venue/portfolio.py)."""
    if _inverse(instrument):
        return -float(instrument.multiplier / instrument.tick_size)
    return float(instrument.tick_size * instrument.multiplier)


class _progress:
    """A progress bar on stderr while quotes go through (off with --no-progress or no tty)."""

    def __init__(self, total: int, off: bool) -> None:
        self.total, self.off = total, off or not sys.stderr.isatty()

    def __enter__(self):
        if self.off:
            return lambda n: None
        from rich.progress import Progress

        self.bar = Progress(transient=True)
        self.bar.start()
        task = self.bar.add_task("quotes", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc) -> None:
        if not self.off:
            self.bar.stop()
