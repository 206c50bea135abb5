import numpy as np
import pytest

from redline.feeds import events as ev


def make_records(
    rtype: ev.RecordType,
    n: int,
    *,
    seed: int = 1,
    source_id: int = 1,
    t0: int = 1_700_000_000_000_000_000,
    step_ns: int = 1_000,
) -> np.ndarray:
    """`n` records of `rtype` with random payloads, seq 0..n-1 and evenly spaced stamps."""
    rng = np.random.default_rng(seed)
    recs = ev.empty(rtype, n)
    for name in recs.dtype.names:
        col = recs[name]
        if col.dtype.kind == "f":
            recs[name] = rng.standard_normal(col.shape).astype(col.dtype)
        else:
            info = np.iinfo(col.dtype)
            recs[name] = rng.integers(max(info.min, -(2**40)), min(info.max, 2**40), col.shape)
    recs["seq"] = np.arange(n)
    recs["source_id"] = source_id
    recs["ts_event"] = t0 + step_ns * np.arange(n)
    recs["ts_recv"] = recs["ts_event"] + 500
    recs["flags"] = 0
    recs["ts_recv_source"] = 0
    return recs


@pytest.fixture
def records():
    return make_records
