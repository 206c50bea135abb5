"""How long the host kept each worker waiting for a CPU, from Linux's own count.

A worker the scheduler leaves on its run queue answers late through no fault of its own. The
arbiter's measure of the host (host_delay.py) is its own lag, which misses a pause of one
worker alone: seen, one of two healthy workers tripped SLOW on a host with every core taken
while its peer answered in time. Linux counts, per task, the ns it spent runnable but not
running (/proc/PID/schedstat, second field; the worker loop runs on its main thread, the one
PID names). A late answer is the worker's own only if it was later than the time the worker
spent waiting there since the request went out.

Sampled from the health check at most once per SAMPLE_NS per worker (a read is ~2 µs), the
last HISTORY samples kept. Where there is no such file (not Linux, a fake link), nothing is
excused this way.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

SAMPLE_NS = 1_000_000
HISTORY = 1024  # samples kept: about a second at one a millisecond


class RunQueueWait:
    """Per worker: (when, ns waited on a run queue so far) samples of its current process."""

    def __init__(self, n_workers: int) -> None:
        self._pid: list[int | None] = [None] * n_workers
        self._fd: list[int | None] = [None] * n_workers
        self._t = np.zeros((n_workers, HISTORY), np.int64)
        self._wait = np.zeros((n_workers, HISTORY), np.int64)
        self._n = [0] * n_workers  # samples taken of the current process
        self._last = [0] * n_workers  # when the newest was taken (a list: read on every poll)

    def sample(self, w: int, pid: int | None, now: int) -> None:
        if pid != self._pid[w]:
            self._open(w, pid)
        n = self._n[w]
        if self._fd[w] is None or (n and now - self._last[w] < SAMPLE_NS):
            return
        wait = self._read(w)
        if wait is not None:
            self._t[w, n % HISTORY], self._wait[w, n % HISTORY] = now, wait
            self._n[w], self._last[w] = n + 1, now

    def waited_since(self, w: int, t: int) -> int:
        """ns worker `w` waited for a CPU from its last sample at or before `t` until now (0:
        not known)."""
        n = self._n[w]
        if not n or self._fd[w] is None:
            return 0
        k = np.arange(max(0, n - HISTORY), n) % HISTORY
        before = k[self._t[w, k] <= t]
        if not len(before):
            return 0  # older than what is kept
        now = self._read(w)
        return 0 if now is None else max(0, now - int(self._wait[w, before[-1]]))

    def close(self) -> None:
        for w in range(len(self._fd)):
            self._open(w, None)

    def _open(self, w: int, pid: int | None) -> None:
        if self._fd[w] is not None:
            os.close(self._fd[w])
        self._pid[w], self._fd[w], self._n[w] = pid, None, 0
        if pid is not None:  # no file (not Linux, the process gone): nothing excused
            with contextlib.suppress(OSError):
                self._fd[w] = os.open(f"/proc/{pid}/schedstat", os.O_RDONLY)

    def _read(self, w: int) -> int | None:
        try:
            return int(os.pread(self._fd[w], 128, 0).split()[1])
        except (OSError, IndexError, ValueError):
            return None  # the process exited: its restart opens the new one
