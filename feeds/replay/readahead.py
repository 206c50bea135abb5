"""A background thread that reads replay chunks ahead, for the file the merge needs soonest."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from redline.feeds.replay.files import Chunk, EventFile


class ReadAhead:
    """One background thread reading chunks ahead, for the file needed soonest.

    The merge next needs the file whose held chunk ends earliest, so speculative reads
    go to the file with the smallest `ts_recv` frontier. A read the merge is waiting on
    is always served, even when the read-ahead budget is spent."""

    def __init__(self, files: list[EventFile], batch_rows: int, readahead: int) -> None:
        self._files = files
        self._batch_rows = batch_rows
        self._readahead = readahead
        self._queues: list[deque] = [deque() for _ in files]
        self._frontier = [np.iinfo(np.int64).min] * len(files)
        self._finished = [False] * len(files)  # source yielded its end or an error
        self._queued = 0
        self._queued_rows = 0
        self._wanted: int | None = None
        self._stop = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="redline-replay-read", daemon=True)
        self.peak_queued_rows = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=10)

    def take(self, i: int) -> Chunk | BaseException | None:
        """The next chunk of file `i`, None at its end, or the error met reading it."""
        with self._cond:
            while not self._queues[i]:
                self._wanted = i
                self._cond.notify_all()
                self._cond.wait()
            item = self._queues[i].popleft()
            self._queued -= 1
            if isinstance(item, Chunk):
                self._queued_rows -= len(item.records)
            self._cond.notify_all()
            return item

    def queued_rows(self) -> int:
        return self._queued_rows

    def _pick(self) -> int | None:
        w = self._wanted
        if w is not None and not self._queues[w] and not self._finished[w]:
            return w
        if self._queued >= self._readahead:
            return None
        best = None
        for i, done in enumerate(self._finished):
            if not done and (best is None or self._frontier[i] < self._frontier[best]):
                best = i
        return best

    def _run(self) -> None:
        sources = [f.chunks(self._batch_rows) for f in self._files]
        while True:
            with self._cond:
                while not self._stop and (i := self._pick()) is None:
                    self._cond.wait()
                if self._stop:
                    return
            item: Chunk | BaseException | None
            try:
                item = next(sources[i])  # decode outside the lock: pyarrow releases the GIL
            except StopIteration:
                item = None
            except BaseException as exc:  # delivered in order, raised by the consumer
                item = exc
            with self._cond:
                self._queues[i].append(item)
                self._queued += 1
                if isinstance(item, Chunk):
                    self._frontier[i] = int(item.ts[-1])
                    self._queued_rows += len(item.records)
                    self.peak_queued_rows = max(self.peak_queued_rows, self._queued_rows)
                else:
                    self._finished[i] = True
                if self._wanted == i:
                    self._wanted = None
                self._cond.notify_all()
