"""`redline backtest --report DIR`: what a backtest did, for a person to read.

- `report.png`: equity, position and drawdown over data time, one panel each;
- `executions.parquet`: the per-order log, one row per order (fills, partial fills, refusals
  with their reason: venue/orders.py EXECUTION_DTYPE);
- `summary.md`: the figures of the run as a table, the latency legs it used and the refusals
  by reason.

Position is what the strategy saw: each order's filled lots counted at its last ack (`ts_ack`),
the moment the strategy heard of it; fills never acknowledged before the data ended (in flight)
are left out and said so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from redline.venue.orders import Status

FILES = ("report.png", "executions.parquet", "summary.md")


def position_steps(ex: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(ts_ack [n], net position after each [n], lots filled but never acknowledged)."""
    filled = ex[ex["qty"] != 0]
    heard = filled[filled["ts_ack"] > 0]
    order = np.argsort(heard["ts_ack"], kind="stable")
    ts = heard["ts_ack"][order]
    return (
        ts,
        np.cumsum(heard["qty"][order]),
        int(np.abs(filled["qty"][filled["ts_ack"] == 0]).sum()),
    )


def drawdown(equity: np.ndarray) -> np.ndarray:
    """Equity minus its running peak (<= 0)."""
    return equity - np.maximum.accumulate(equity) if len(equity) else equity


def write(out: Path, result, figures: dict, unit: str) -> list[Path]:
    """The three files in `out` (made if missing); returns their paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from redline.pipeline.cli.folders import output_folder

    out = output_folder(out, "--report")
    ex = result.executions
    pq.write_table(pa.table({n: ex[n] for n in ex.dtype.names}), out / FILES[1])
    unheard = _plot(out / FILES[0], result, ex, unit)
    (out / FILES[2]).write_text(_summary(figures, unit, unheard, ex))
    return [out / f for f in FILES]


def _plot(path: Path, result, ex: np.ndarray, unit: str) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = result.bars_ts[0] if len(result.bars_ts) else 0
    bars_s = (result.bars_ts - t0) / 1e9
    ts, pos, unheard = position_steps(ex)
    fig, ax = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    ax[0].plot(bars_s, result.bars_eq)
    ax[0].set_ylabel(f"equity ({unit})")
    ax[1].step(np.r_[0.0, (ts - t0) / 1e9], np.r_[0, pos], where="post")
    ax[1].set_ylabel("net position (lots, all instruments)")
    ax[2].fill_between(bars_s, drawdown(result.bars_eq), 0.0, step="post", alpha=0.5)
    ax[2].set_ylabel(f"drawdown ({unit})")
    ax[2].set_xlabel("data time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return unheard


def _summary(f: dict, unit: str, unheard: int, ex: np.ndarray) -> str:
    rows = [
        ("strategy", f"{f['strategy']} {f['params']}"),
        ("venue", f["venue"]),
        ("events", f"{f['events']:,}"),
        ("orders", f"{f['orders']:,}"),
        ("fills (orders with a fill)", f"{f['fills']:,}"),
        ("fill ratio", f"{f['fill_ratio']:.2%}"),
        ("rejections", f"{f['rejections']:,}"),
        (f"pnl ({unit}, after fees)", f"{f['pnl']:,.2f}"),
        (f"fees ({unit})", f"{f['fees']:,.2f}"),
        ("sharpe (annualised)", f"{f['sharpe']:.2f}"),
        (f"max drawdown ({unit})", f"{f['max_drawdown']:,.2f}"),
        (f"turnover ({unit} traded)", f"{f['turnover']:,.2f}"),
        ("journal sha256", f["journal_sha256"]),
    ]
    lines = ["# Backtest", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += ["", "## Latency legs used", "", "| leg | how |", "|---|---|"]
    for leg, d in f["latency"].items():
        if isinstance(d, dict):
            how = ", ".join(f"{k} {v}" for k, v in d.items())
            lines.append(f"| {leg} | {how} |")
    lines += ["", "## Refused by pre-trade risk, by reason", ""]
    by = {k: v for k, v in f.get("refused_by_reason", {}).items() if v}
    lines += [f"- {k}: {v:,}" for k, v in by.items()] or ["- none"]
    counts = np.bincount(ex["status"], minlength=max(Status) + 1)
    lines += ["", "## How the orders ended", ""]
    lines += [f"- {s.name.lower()}: {int(counts[s]):,}" for s in Status if counts[s]] or ["- none"]
    if unheard:
        lines += ["", f"{unheard:,} lots filled but not acknowledged when the data ended are "
                      "not in the position plot."]  # fmt: skip
    return "\n".join(lines) + "\n"
