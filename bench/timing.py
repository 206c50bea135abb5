"""Shared by the bench scripts (each still runs alone: `python bench/bench_x.py` puts this
folder on sys.path): time a call after warm-up, and report a distribution, never a mean."""

from __future__ import annotations

import time
from collections.abc import Callable

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
