"""The four latency legs of a simulated order, in order of occurrence.

feed      the venue's event -> our receipt: taken from the data (`ts_recv - ts_event`),
          so a strategy decides on what it would have seen, when it would have seen it
decision  our receipt -> the order leaves: what the graph takes (arbiter, workers,
          strategy); constant here, a journal's measured histogram later
entry     the order leaves -> the venue has it (matching sees the book as of then)
ack       the venue fills -> we know (the strategy's position moves then)
"""

from __future__ import annotations

import numpy as np

from redline.feeds.settings import NonNegativeInt, Settings
from redline.venue.pairs import settings_from_pairs


class Latency(Settings):
    """Constant decision, entry and ack legs in microseconds (the feed leg is the data's)."""

    decision_us: NonNegativeInt = 0
    entry_us: NonNegativeInt = 0
    ack_us: NonNegativeInt = 0

    @classmethod
    def parse(cls, text: str) -> Latency:
        """`decision=50,entry=120,ack=80` (µs; missing legs are 0)."""
        legs = {leg: f"{leg}_us" for leg in ("decision", "entry", "ack")}
        return settings_from_pairs("--latency", text, cls, legs)

    def vector_ns(self) -> np.ndarray:
        return np.array([self.decision_us, self.entry_us, self.ack_us], np.int64) * 1000
