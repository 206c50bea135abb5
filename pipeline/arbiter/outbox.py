"""The decisions made since the last `Arbiter.poll`, in the order they were made.

Three arrays reused between polls (a poll hands out views, valid until the next poll), grown
by doubling in the rare poll that collects more decisions than the in-flight capacity.
"""

from __future__ import annotations

import numpy as np

from redline.feeds.events import DECISION_DTYPE
from redline.pipeline.arbiter.config import Decisions


class Outbox:
    __slots__ = ("_alarm", "_n", "_rec", "_vec")

    def __init__(self, capacity: int, n_out: int) -> None:
        self._rec = np.zeros(capacity, DECISION_DTYPE)
        self._vec = np.zeros((capacity, n_out), np.float32)
        self._alarm = np.zeros(capacity, bool)
        self._n = 0

    def add(self, rec: np.ndarray, out: np.ndarray, alarm: bool) -> None:
        i = self._n
        if i == len(self._rec):
            self._rec = np.resize(self._rec, 2 * i)
            self._vec = np.resize(self._vec, (2 * i, self._vec.shape[1]))
            self._alarm = np.resize(self._alarm, 2 * i)
        self._rec[i] = rec
        self._vec[i] = out
        self._alarm[i] = alarm
        self._n = i + 1

    def take(self) -> Decisions:
        """Everything added since the last take (views; copy what you keep)."""
        n, self._n = self._n, 0
        return Decisions(self._rec[:n], self._vec[:n], self._alarm[:n])
