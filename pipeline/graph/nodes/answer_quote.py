"""The quote each answer was asked for, carried with the answer to the strategy node.

An answer's `bid_px`/`ask_px` are its instrument's latest quote when the answer leaves the
arbiter node (what the signal trader prices against: the touch when it decides). A strategy
that trades against the simulated venue must instead step on the very quote its decision was
asked for, sizes and flags included, as replay does (venue/backtest.py), or live and replay
would not decide alike. The arbiter node keeps each quote it asks about until its answer
leaves (`AskedQuotes`) and writes it into the `quote_*` fields of `ANSWER_QUOTE_DTYPE`.
"""

from __future__ import annotations

import numpy as np

from redline.strategies.signal_trader import ANSWER_DTYPE

_QUOTE_FIELDS = ("bid_px", "ask_px", "bid_sz", "ask_sz", "flags")
# What the arbiter node sends: ANSWER_DTYPE, then the asked quote (quote_found 0: not known).
ANSWER_QUOTE_DTYPE = np.dtype(
    [*ANSWER_DTYPE.descr, *((f"quote_{f}", "<i8") for f in _QUOTE_FIELDS[:4]),
     ("quote_flags", "u1"), ("quote_found", "u1")],
    align=True,
)  # fmt: skip
QUOTE_COLUMNS = tuple(ANSWER_QUOTE_DTYPE.names[len(ANSWER_DTYPE.names) :])  # quote_*, found


class AskedQuotes:
    """Quotes asked about and not yet answered, by (source_id, seq): an answer names its
    question by `input_source_id` and `input_seq`, and comes back in any order."""

    def __init__(self) -> None:
        self._waiting: dict[tuple[int, int], tuple[int, ...]] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def keep(self, quotes: np.ndarray, decide: list[bool]) -> None:
        """QUOTE records just submitted; `decide[i]`: a decision was asked for quote i."""
        keys = zip(quotes["source_id"].tolist(), quotes["seq"].tolist(), strict=True)
        cols = zip(*(quotes[f].tolist() for f in _QUOTE_FIELDS), strict=True)
        waiting = self._waiting
        for asked, key, row in zip(decide, keys, cols, strict=True):
            if asked:
                waiting[key] = row

    def fill(self, answers: np.ndarray) -> None:
        """Write each answer's asked quote into its `quote_*` fields and forget it; an answer
        whose quote was never kept gets quote_found 0."""
        keys = zip(answers["input_source_id"].tolist(), answers["input_seq"].tolist(), strict=True)
        pop = self._waiting.pop
        rows = [pop(k, None) for k in keys]
        found = np.array([r is not None for r in rows], bool)
        for f in _QUOTE_FIELDS:  # the answer rows come uninitialised
            answers[f"quote_{f}"] = 0
        answers["quote_found"] = found
        if found.any():
            got = np.array([r for r in rows if r is not None], np.int64)  # [found, 5]
            for c, f in enumerate(_QUOTE_FIELDS):
                answers[f"quote_{f}"][found] = got[:, c]
