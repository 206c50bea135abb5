"""`redline backtest DATA... --strategy NAME [--param k=v ...] [--latency ...] [--orders ...]
[--risk ...] [--fee-bps X] [--maker-bps X] [--json PATH] [--report DIR]`: a strategy (a
target position, or quotes) behind pre-trade risk against the simulated L1 venue over
recorded quotes, with the latency legs given, and what it made.

DATA: Parquet recordings or folders of them (`redline import` output, `replay_data/`). Money is
the quote currency where an instrument table lies beside the data (`instruments.parquet`,
`market_instruments.parquet`, `NAME.instruments.parquet`), else ticks; the summary says which.
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
    p.add_argument("--strategy", required=True, help="ema_cross or market_maker")
    p.add_argument("--param", action="append", default=[], metavar="K=V",
                   help="a strategy parameter, e.g. --param alpha=0.02 (repeat)")  # fmt: skip
    p.add_argument("--latency", default="", metavar="LEGS",
                   help="decision=US,entry=US,ack=US in microseconds (default 0 each)")  # fmt: skip
    p.add_argument("--orders", default="", metavar="K=V,...",
                   help="kind=market|limit|ioc|post_only,offset=TICKS (default "
                   "market; a quoting strategy sends post-only)")  # fmt: skip
    p.add_argument("--risk", default="", metavar="K=V,...",
                   help="pre-trade limits: max_position, max_notional, max_orders_per_s, "
                   "band_bps, kill_loss, state=active|reducing|halted (0: no limit)")  # fmt: skip
    p.add_argument("--fee-bps", type=float, default=0.0, help="taker fee, basis points")
    p.add_argument("--maker-bps", type=float, default=0.0, help="maker fee (< 0: a rebate)")
    p.add_argument("--report", metavar="DIR", help="write executions.parquet and equity.png")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from redline.feeds.events import RecordType
    from redline.feeds.replay.reader import replay
    from redline.strategies.target import params
    from redline.venue.backtest import Backtest
    from redline.venue.latency import Latency
    from redline.venue.orders import Orders
    from redline.venue.risk import Risk

    p = params(args.strategy, args.param)
    latency = Latency.parse(args.latency)
    orders = Orders.parse(args.orders) if args.orders else None
    limits = Risk.parse(args.risk)
    ids, total = _quote_instruments(args.data)
    value, unit = _value_per_tick(args.data, ids)
    bt = Backtest(args.strategy, p, latency, ids, value, fee_bps=args.fee_bps,
                  maker_bps=args.maker_bps, risk=limits, orders=orders)  # fmt: skip
    t0 = time.perf_counter()
    with _progress(total, args.no_progress) as advance:
        # Chunks of 256k quotes: big enough that Python's share is noise, small enough that
        # the read-ahead and the order buffer stay a few tens of MB whatever the length.
        for rtype, recs in replay(args.data, batch_rows=1 << 18):
            if rtype == RecordType.QUOTE:
                bt.feed(recs)
                advance(len(recs))
    result = bt.finish()
    seconds = time.perf_counter() - t0
    f = result.figures | {
        "strategy": args.strategy,
        "params": {k: getattr(p, k) for k in p.__struct_fields__},
        "latency_us": {
            "decision": latency.decision_us,
            "entry": latency.entry_us,
            "ack": latency.ack_us,
        },
        "orders_as": {f: getattr(bt.orders, f) for f in bt.orders.__struct_fields__},
        "risk": {f: getattr(limits, f) for f in limits.__struct_fields__},
        "money": unit,
        "events_per_s": result.events / seconds if seconds > 0 else 0.0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rejections": _rejections(result.figures),
    }
    print(
        f"redline backtest: {args.strategy} on {f['events']:,} quotes "
        f"({f['events_per_s'] / 1e6:.2f} M/s): {f['orders']:,} orders, {f['fills']:,} filled, "
        f"{f['refused']:,} refused by risk {_reasons(f['refused_by_reason'])}, "
        f"{f['rejections'] - f['refused']:,} more rejected or unfilled, "
        f"{f['cancels']:,} cancels ({f['cancels_too_late']:,} too late), "
        f"{f['resting_at_end']} resting and {f['in_flight_at_end']} in flight at the end; "
        f"pnl {f['pnl']:,.2f} {unit} after fees {f['fees']:,.2f}, sharpe {f['sharpe']:.2f}, "
        f"max drawdown {f['max_drawdown']:,.2f}, fill ratio {f['fill_ratio']:.2%}; "
        f"latency decision {latency.decision_us} µs, entry {latency.entry_us} µs, "
        f"ack {latency.ack_us} µs; journal sha256 {f['journal_sha256'][:16]}"
    )
    if args.report:
        _report(Path(args.report), result, unit)
    write_json(args.json, f)
    return 0


def _rejections(figures: dict) -> int:
    """Orders refused before they left (risk, in-flight bound), refused by the venue, or that
    found nothing to take (market and IOC)."""
    return (figures["refused"] + figures["post_only_crossed"] + figures["open_orders_full"]
            + figures["expired_unfilled"])  # fmt: skip


def _reasons(by_reason: dict[str, int]) -> str:
    shown = [f"{name} {n:,}" for name, n in by_reason.items() if n]
    return f"({', '.join(shown)})" if shown else "(none)"


def _quote_instruments(paths: list[str]) -> tuple[list[int], int]:
    """Instrument ids and the number of QUOTE records in `paths`, from the id column only."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from redline.feeds.events import RecordType
    from redline.feeds.replay.files import event_files

    files, _ = event_files(paths)
    quotes = [f for f in files if f.rtype == RecordType.QUOTE]
    if not quotes:
        raise ValueError(f"{' '.join(paths)}: no QUOTE records to backtest on")
    ids: set[int] = set()
    for f in quotes:
        col = pq.read_table(f.path, columns=["instrument_id"])["instrument_id"]
        ids.update(pc.unique(col).to_pylist())
    return sorted(ids), sum(f.num_rows for f in quotes)


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
                    return {i: float(table[i].tick_size * table[i].multiplier) for i in ids}, (
                        "quote currency"
                    )
    return {}, "ticks"


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


def _report(out: Path, result, unit: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pyarrow as pa
    import pyarrow.parquet as pq

    from redline.pipeline.cli.folders import output_folder

    out = output_folder(out, "--report")
    ex = result.executions
    pq.write_table(
        pa.table({name: ex[name] for name in ex.dtype.names}), out / "executions.parquet"
    )
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot((result.bars_ts - result.bars_ts[0]) / 1e9 if len(result.bars_ts) else [],
            result.bars_eq, label="equity")  # fmt: skip
    ax.set_xlabel("data time (s)")
    ax.set_ylabel(f"equity ({unit})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(out / "equity.png", dpi=100)
    plt.close(fig)
    print(f"redline backtest: report in {out} (executions.parquet, equity.png)")
