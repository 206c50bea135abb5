"""The arbiter node: events to both workers, a decision asked for each quote, answers out."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from redline.feeds.events import DECISION_DTYPE, RecordType, record_type_of
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.nodes.answer_quote import (
    ANSWER_QUOTE_DTYPE,
    QUOTE_COLUMNS,
    AskedQuotes,
)
from redline.pipeline.graph.nodes.base import Node
from redline.pipeline.transport.waiting import Waitable
from redline.strategies.signal_trader import ANSWER_DTYPE

_DECISION_SIZE = DECISION_DTYPE.itemsize
# _emit copies decisions into answers as bytes: the answer must start with the decision's layout.
assert all(ANSWER_DTYPE.fields[f][:2] == DECISION_DTYPE.fields[f][:2] for f in DECISION_DTYPE.names)
# Kinds of record a trading graph works on (quotes ask for decisions, the rest update
# features); sensor frames still reach the workers' window features, other kinds do not.
_MARKET_TYPES = frozenset((RecordType.QUOTE, RecordType.TRADE, RecordType.BOOK_DELTA))
_WORKER_TYPES = _MARKET_TYPES | {RecordType.SENSOR}
_SUBMIT_SLICE = 16  # events the arbiter node submits per step (~50-100 µs each here)


class ArbiterNode(Node):
    """Every event of the selected instruments to both workers (all events when
    `instruments` is empty); a decision asked for each of their quotes.

    The arbiter (workers' `Arbiter`) is injected: the runtime builds it with
    its worker processes (see graph/arbiter_build.py).

    Every replica (both workers, the fallback) holds state for at most
    `capacity` instruments. The first `capacity` instruments seen are admitted;
    events of any further instrument are counted (`instrument_overflow`) and
    never sent, so one frame of new ids is a per-record fault, not the end of
    the run (1,025 distinct ids once made the fallback raise out of the graph).
    """

    kind = "arbiter"

    def __init__(self, name, spec: gc.ArbiterSpec, clock, arbiter,
                 keep_asked_quotes: bool = True) -> None:  # fmt: skip
        """`keep_asked_quotes`: carry each answer's asked quote (a strategy node trading the
        simulated venue reads it); off, the per-quote bookkeeping is skipped and
        `quote_found` is 0 (the runtime turns it off when no such node reads the answers)."""
        super().__init__(name, spec, clock)
        self.arb = arbiter
        self._decide_on = frozenset(spec.instruments)
        self._decide_ids = np.array(sorted(self._decide_on), np.uint32)
        self.filtered = 0  # events of other instruments, not sent to the workers
        self.capacity = min(w.max_instruments for w in spec.workers)
        self._admitted: set[int] = set()
        self.instrument_overflow = 0  # events of instruments past the capacity, not sent
        self._quote: dict[int, tuple[int, int]] = {}  # instrument -> latest (bid, ask)
        # each asked quote, until its answer leaves; None: no strategy node reads them
        self._asked_quotes = AskedQuotes() if keep_asked_quotes else None
        self.asked = 0
        self.answered = 0
        # (records, ts_feed, ts_features or 0 = stamp when taken, next)
        self._backlog: deque[tuple[np.ndarray, int, int, int]] = deque()
        self.killed_pid = 0
        self._rtypes: dict[np.dtype, int] = {}
        self.undecided: dict[str, int] = {}  # record kind -> records no decision can come from
        self._swapper = None  # the hot swap's coordinator, made on the first swap

    def waitables(self) -> list[Waitable]:
        # A restarted worker brings a new channel: the runtime re-reads this list.
        links = [w for w in (link.waitable() for link in self.arb.links) if w is not None]
        return [*self.inputs, *links]

    def timeout_s(self) -> float | None:
        if self.asked > self.answered:
            return 0.0005  # deadlines to watch (await nodes round this up to 1 ms)
        return 0.01  # worker health (heartbeats) while idle

    def step(self) -> int:
        rx = self.inputs[0]
        n = 0
        held = self.held_back()  # answers still go out; no new events come in
        if not held and not self._backlog and not rx.ended:
            for records, sent_ns, ts_feed in rx.recv():
                # From a features node the edge's stamp is ts_features; from the feed, ts_feed.
                ts_features = sent_ns if sent_ns != ts_feed else 0
                rtype = self._rtype(records)
                if rtype not in _MARKET_TYPES:
                    self._undecided(rtype, len(records))
                    if rtype not in _WORKER_TYPES:
                        continue
                if self._decide_on:  # other instruments' events feed no decision here
                    ids = records["instrument_id"]
                    if len(self._decide_ids) == 1:  # np.isin costs ~30 µs a call: the usual
                        mine = ids == self._decide_ids[0]  # single instrument needs no sort
                    else:
                        mine = np.isin(ids, self._decide_ids)
                    k = int(np.count_nonzero(mine))
                    if k < len(records):  # all mine (the usual case): no copy
                        self.filtered += len(records) - k
                        records = records[mine]
                if len(records):
                    records = self._admit(records)
                if len(records):
                    self._backlog.append((records, ts_feed, ts_features, 0))
        # Bounded work per step, so the strategy downstream (same loop) is never
        # kept waiting behind a burst: answers go out after every slice.
        while not held and self._backlog and n < _SUBMIT_SLICE:
            records, ts_feed, ts_features, start = self._backlog[0]
            stop = min(len(records), start + _SUBMIT_SLICE - n)
            self._submit(records[start:stop], ts_feed, ts_features or self.clock.now_ns())
            n += stop - start
            if stop == len(records):
                self._backlog.popleft()
            else:
                self._backlog[0] = (records, ts_feed, ts_features, stop)
        self.events += n
        n += self._emit(self.arb.poll())
        if rx.ended and not self._backlog and self.answered >= self.asked and not self.ending:
            self._end()
        return n

    def _admit(self, records: np.ndarray) -> np.ndarray:
        """The records whose instrument has (or now gets) a row in every replica."""
        if self._decide_on and len(self._decide_on) <= self.capacity:
            return records  # filtered to its instruments already: they always fit
        ids = records["instrument_id"]
        admitted = self._admitted
        new = [i for i in np.unique(ids).tolist() if i not in admitted]
        if not new:
            return records
        room = self.capacity - len(admitted)
        admitted.update(new[:room])
        if len(new) <= room:
            return records
        keep = ~np.isin(ids, new[room:])
        self.instrument_overflow += len(records) - int(np.count_nonzero(keep))
        return records[keep]

    def _rtype(self, records: np.ndarray) -> int:
        rtype = self._rtypes.get(records.dtype)
        if rtype is None:  # structured dtype equality is slow: look each dtype up once
            rtype = self._rtypes[records.dtype] = int(record_type_of(records.dtype))
        return rtype

    def _submit(self, records: np.ndarray, ts_feed: int, taken: int) -> None:
        rtype = self._rtype(records)
        is_quote = rtype == RecordType.QUOTE
        # Per batch, not per event: fields as Python lists (indexing a structured record
        # costs several µs per field), and one EVENTS message per worker for the batch.
        n = len(records)
        decide = [False] * n
        if is_quote:
            insts = records["instrument_id"].tolist()
            bids, asks = records["bid_px"].tolist(), records["ask_px"].tolist()
            for i, inst in enumerate(insts):
                self._quote[inst] = (bids[i], asks[i])
                decide[i] = not self._decide_on or inst in self._decide_on
            if self._asked_quotes is not None:
                self._asked_quotes.keep(records, decide)
        self.arb.submit_batch(records, decide=decide, ts_feed=ts_feed, ts_features=taken,
                              rtype=rtype)  # fmt: skip
        self.asked += sum(decide)

    def _undecided(self, rtype: int, n: int) -> None:
        """Records of a kind no node of this graph decides on (sensor frames into a trading
        graph): counted, and said once, since a feed of only these gives 0 decisions."""
        name = RecordType(rtype).name if rtype in RecordType._value2member_map_ else str(rtype)
        seen = name in self.undecided
        self.undecided[name] = self.undecided.get(name, 0) + n
        if seen:  # said already: every later batch only counts
            return
        which = f"instruments {sorted(self._decide_on)}" if self._decide_on else "any instrument"
        self.warn(
            f"{name} records arrive, and this graph decides only on QUOTE records ({which}): "
            f"they are counted as undecided and start no decision; is this the feed you meant?"
        )

    def _answers(self, batch, dtype: np.dtype) -> np.ndarray:
        """A batch's decisions as `dtype` rows (DECISION_DTYPE plus fields at the end), with
        `score`; the node's own fields are left to fill."""
        recs = batch.records
        n = len(recs)
        self.answered += n
        out = np.empty(n, dtype)
        # Copy the decisions as raw bytes: one memcpy instead of one strided copy per field.
        out.view(np.uint8).reshape(n, -1)[:, :_DECISION_SIZE] = (
            np.ascontiguousarray(recs).view(np.uint8).reshape(n, -1)
        )
        out["score"] = batch.outputs[:, 0]
        return out

    def _emit(self, batch) -> int:
        recs = batch.records
        n = len(recs)
        if not n:
            return 0
        out = self._answers(batch, ANSWER_QUOTE_DTYPE)
        if self._asked_quotes is not None:
            self._asked_quotes.fill(out)
        else:  # the answer rows come uninitialised
            for f in QUOTE_COLUMNS:
                out[f] = 0
        quote = self._quote
        px = [quote.get(inst, (0, 0)) for inst in recs["instrument_id"].tolist()]
        out["bid_px"] = [p[0] for p in px]
        out["ask_px"] = [p[1] for p in px]
        self.output.send(out, stamp_ns=self.clock.now_ns())
        return n

    def held(self) -> int:
        return sum(len(r) - start for r, _, _, start in self._backlog)

    def kill_worker(self, index: int = 0) -> int:
        """Chaos: SIGKILL worker `index` (0 = A) as a crash would; returns its pid."""
        import os
        import signal

        pid = self.arb.links[index].pid
        if pid:
            os.kill(pid, signal.SIGKILL)
            self.killed_pid = pid
        return pid or 0

    # -- hot swap (issue 19): what the control plane's swap / rollback / confirm call ----------

    @property
    def swapper(self):
        """The SwapCoordinator (pipeline/arbiter/swap.py) over the bundled registry (demo@1,
        demo@2: kernels/plans/demo_versions.py); demo@1 is the model this graph serves (the
        bundled one unless the node names another), so demo@2 reads the same features."""
        if self._swapper is None:
            from redline.kernels.plans.demo_versions import demo_registry
            from redline.pipeline.arbiter.swap import SwapCoordinator

            features = self.spec.workers[0].features
            self._swapper = SwapCoordinator(
                self.arb,
                demo_registry(base=self.spec.model or None),
                base_label="demo@1",
                features=features,
            )
        return self._swapper

    def version_label(self, version: int) -> str:
        """A decision's `model_version` as the registry names it ("demo@2"; "none": the safe
        default; the number where no name is known)."""
        models = self.arb.models
        bundled = not self.spec.model and version in self.arb.versions
        if version and bundled and version not in models.labels:
            return "demo@1"  # the bundled model, whether or not a swap has happened yet
        return models.label(version)

    def by_version(self, model_versions: np.ndarray) -> dict[str, int]:
        """Decisions (their `model_version` column) counted per version label."""
        versions, counts = np.unique(model_versions, return_counts=True)
        return {self.version_label(int(v)): int(n) for v, n in zip(versions, counts, strict=True)}

    async def swap(self, model: str, version: str) -> dict:
        return await self.swapper.swap(model, version)

    async def rollback(self) -> dict:
        return await self.swapper.rollback()

    async def confirm(self) -> dict:
        return await self.swapper.confirm()

    def _end(self) -> None:
        self._emit(self.arb.poll())
        self.arb.close()  # undecided requests (only after a forced stop) get the safe default
        self._emit(self.arb.poll())  # ... and go out here; this poll can restart a worker
        self.arb.close()  # that the breaker had out, so stop both again: no orphans
        super()._end()

    def close(self) -> None:
        if not self.ending:
            self.arb.close()

    def stats(self) -> dict[str, Any]:
        return {
            **super().stats(),
            "asked": self.asked,
            "filtered": self.filtered,
            "instrument_overflow": self.instrument_overflow,
            "undecided": dict(self.undecided),
            "arbiter": self.arb.stats(),
        }
