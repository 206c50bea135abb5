"""Shared by the bench scripts (each still runs alone: `python bench/bench_x.py` puts this
folder on sys.path): time a call after warm-up, report a distribution (never a mean), and
report every figure over N runs as the median with min-max, never a best run.

A bench measures each figure and its baseline in the same run, N runs in all (`--runs`,
default 3), and hands the per-run figures to `Runs`: one dict per run, the same keys in each.
`Runs` prints the command line, the UTC date and the load average at start and end,
aggregates every number over the runs (`summarize`: median, min, max, the per-run values) and
writes `--json` as {"command", "date_utc", "load_start", "load_end", "runs", "aggregate"}.
A ratio to a baseline is taken within each run first, then aggregated: each run's figure is
divided by that run's baseline.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def timed(fn: Callable[[], object], calls: int, warmup: int) -> np.ndarray:
    """ns per call of `fn`, `calls` samples after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    out = np.empty(calls, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(calls):
        t0 = clock()
        fn()
        out[i] = clock() - t0
    return out


def percentiles(samples: np.ndarray, scale: float = 1.0) -> dict[str, float]:
    """p50 / p99 / p99.9 / max of `samples` divided by `scale` (1e3: ns -> µs), and n."""
    x = np.asarray(samples, np.float64) / scale
    if not len(x):
        nan = float("nan")
        return {"p50": nan, "p99": nan, "p999": nan, "max": nan, "n": 0}
    p50, p99, p999 = np.percentile(x, [50, 99, 99.9])
    return {
        "p50": float(p50),
        "p99": float(p99),
        "p999": float(p999),
        "max": float(x.max()),
        "n": len(x),
    }


# -- N runs: median with min-max --------------------------------------------------------


def add_runs_arg(ap, default: int = 3, aliases: tuple[str, ...] = ()) -> None:
    """`--runs N` (and older spellings of it, e.g. --rounds, kept working)."""
    ap.add_argument(
        "--runs",
        *aliases,
        dest="runs",
        type=int,
        default=default,
        help=f"runs, each with its own baseline; figures are median (min-max) (default {default})",
    )


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)


def agg(values: list) -> dict:
    """median, min, max and the per-run values of numbers (None / NaN left out of the three)."""
    xs = [float(v) for v in values if _is_num(v) and not np.isnan(float(v))]
    if not xs:
        return {"median": None, "min": None, "max": None, "runs": list(values)}
    return {
        "median": float(np.median(xs)),
        "min": min(xs),
        "max": max(xs),
        "runs": list(values),
    }


def summarize(runs: list[Any]) -> Any:
    """Per-run figures (dicts of the same shape) -> the same shape with every number replaced
    by agg() over the runs; lists of numbers are aggregated element by element; other values
    are kept when equal in every run, else listed per run."""
    first = runs[0]
    if isinstance(first, dict):
        keys = [k for k in first if all(isinstance(r, dict) and k in r for r in runs)]
        return {k: summarize([r[k] for r in runs]) for k in keys}
    if all(v is None or _is_num(v) for v in runs):
        return agg(runs)
    if (
        isinstance(first, list | tuple)
        and all(isinstance(r, list | tuple) and len(r) == len(first) for r in runs)
        and first
    ):
        return [summarize([r[i] for r in runs]) for i in range(len(first))]
    return first if all(r == first for r in runs) else list(runs)


def fmt(a: dict | None, spec: str = ",.0f", scale: float = 1.0, unit: str = "") -> str:
    """'median (min-max)' of an agg() dict, each divided by `scale`; one run: just the value."""
    if not a or a.get("median") is None:
        return "–"
    m, lo, hi = (a[k] / scale for k in ("median", "min", "max"))
    if len(a.get("runs", ())) <= 1:
        return f"{m:{spec}}{unit}"
    return f"{m:{spec}}{unit} ({lo:{spec}}-{hi:{spec}})"


def ratio(num: list, den: list) -> list:
    """Per-run ratios num[i] / den[i] (None where either is missing or den is 0)."""
    out = []
    for a, b in zip(num, den, strict=True):
        ok = _is_num(a) and _is_num(b) and b
        out.append(float(a) / float(b) if ok else None)
    return out


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Runs:
    """One bench invocation of N runs: says the command, date, machine and load at the start;
    collects each run's figures; at the end the load again, and writes the JSON.

        session = Runs(args.runs)          # prints the header
        for i in session:                  # 0 .. N-1, prints "run i/N" with the load
            session.add(measure_once())    # a dict, the same keys every run
        agg = session.finish(args.json)    # load at end, JSON; returns summarize(runs)
    """

    def __init__(self, n: int, name: str | None = None, argv: list[str] | None = None) -> None:
        if n < 1:
            raise SystemExit("--runs must be >= 1")
        self.n = n
        argv = sys.argv if argv is None else argv
        self.command = shlex.join([os.path.relpath(sys.executable), *argv])
        self.date_utc = _now()
        self.load_start = _load()
        self.load_end: list[float] | None = None
        self.runs: list[dict] = []
        self.meta: dict[str, Any] = {}
        print(f"command: {self.command}")
        print(
            f"date: {self.date_utc}; machine: {os.cpu_count()} CPUs, {platform.machine()}, "
            f"Python {platform.python_version()}; runs: {n}"
        )
        print(f"load average at start (1/5/15 min): {self._fmt_load(self.load_start)}", flush=True)

    @staticmethod
    def _fmt_load(x: list[float]) -> str:
        return " / ".join(f"{v:.2f}" for v in x)

    def __iter__(self):
        for i in range(self.n):
            print(f"-- run {i + 1}/{self.n}, load {self._fmt_load(_load())}", flush=True)
            yield i

    def add(self, figures: dict) -> None:
        self.runs.append(figures)

    def aggregate(self) -> Any:
        return summarize(self.runs) if self.runs else {}

    def finish(self, json_path: str | None = None, extra: dict | None = None) -> Any:
        self.load_end = _load()
        self.date_end_utc = _now()
        print(
            f"load average at end (1/5/15 min): {self._fmt_load(self.load_end)}; {self.date_end_utc}"
        )
        out = self.aggregate()
        if json_path:
            from redline.pipeline.cli.json_out import write_json

            write_json(
                json_path,
                {
                    "command": self.command,
                    "date_utc": self.date_utc,
                    "date_end_utc": self.date_end_utc,
                    "cpus": os.cpu_count(),
                    "load_start": self.load_start,
                    "load_end": self.load_end,
                    **self.meta,
                    **(extra or {}),
                    "runs": self.runs,
                    "aggregate": out,
                },
            )
        return out


def table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    """Print a plain table: the first column left-aligned, the others right-aligned."""
    cols = list(zip(headers, *rows, strict=True))
    widths = [max(len(str(c)) for c in col) for col in cols]
    if title:
        print(f"\n{title}")

    def line(cells: list[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    print(line(headers))
    for r in rows:
        print(line(r))
    sys.stdout.flush()
