"""The records that flow between graph stages, each carrying its stamps.

A market event enters as a QUOTE (or other event record); from the features
stage on it travels as a REQUEST (header + stage stamps + deadline + the
latest quote + the feature vector), comes back from the arbiter as an ANSWER
(a DECISION record plus the quote the strategy prices against) and leaves the
strategy as a DECISION. Each stage writes its own `ts_*` field with the
graph's clock, so a decision carries its whole latency breakdown (STAGES in
`redline.feeds.events`).
"""

from __future__ import annotations

import itertools

import numpy as np

from redline.feeds.events import DECISION_DTYPE, HEADER_FIELDS, STAGES

_QUOTE_FIELDS = [("bid_px", "<i8"), ("ask_px", "<i8")]


def request_dtype(n_features: int) -> np.dtype:
    """A request to the workers for `n_features` float32 features."""
    if n_features <= 0:
        raise ValueError(f"request_dtype: n_features must be > 0, got {n_features}")
    return np.dtype(
        HEADER_FIELDS
        + [(s, "<i8") for s in STAGES]
        + [("deadline", "<i8")]
        + _QUOTE_FIELDS
        + [("features", "<f4", (n_features,))]
    )


# What the arbiter hands the strategy: the decision-to-be and its quote.
ANSWER_DTYPE = np.dtype(DECISION_DTYPE.descr + _QUOTE_FIELDS)


def stage_latencies(decisions: np.ndarray) -> dict[str, np.ndarray]:
    """Per-stage durations (ns) of decision records: each stamp minus the one before.

    A stage that was not stamped (0: e.g. no worker answered before a safe
    default) gives no sample for itself or the stage after it.
    """
    out: dict[str, np.ndarray] = {}
    for prev, cur in itertools.pairwise(STAGES):
        a, b = decisions[prev], decisions[cur]
        ok = (a > 0) & (b > 0)
        out[cur] = (b - a)[ok]
    return out
