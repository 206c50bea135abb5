"""Shared builders for the pipeline tests."""

from __future__ import annotations

import numpy as np
import pytest

from redline.feeds.events import STAGES, Origin, RecordType, empty

BUDGET_NS = 2_000_000  # deadline = ts_recv + 2 ms


def build_decisions(
    n: int, *, seed: int = 0, start_ns: int = 1_700_000_000_000_000_000, step_ns: int = 1_000_000
) -> np.ndarray:
    """`n` DECISION records with lognormal stage gaps, every origin, and
    DEFAULT decisions stamped like a safe default at the deadline (no worker
    or answer stamps)."""
    rng = np.random.default_rng(seed)
    d = empty(RecordType.DECISION, n)
    d["ts_recv"] = start_ns + np.arange(n, dtype=np.int64) * step_ns
    d["ts_event"] = d["ts_recv"] - 50_000
    d["seq"] = np.arange(n)
    d["input_seq"] = np.arange(n) + 1000
    d["input_source_id"] = 7
    d["instrument_id"] = 3
    d["model_version"] = 2
    d["origin"] = rng.integers(0, 4, n)
    d["deadline"] = d["ts_recv"] + BUDGET_NS
    t = d["ts_recv"].copy()
    for stage in STAGES:
        t = t + rng.lognormal(np.log(20_000), 0.8, n).astype(np.int64)
        d[stage] = t
    default = d["origin"] == Origin.DEFAULT
    for stage in ("ts_worker_start", "ts_worker_end", "ts_answer"):
        d[stage][default] = 0
    d["ts_decision"][default] = d["deadline"][default] + 1_000
    d["score"] = rng.standard_normal(n).astype(np.float32)
    return d


@pytest.fixture
def make_decisions():
    return build_decisions
