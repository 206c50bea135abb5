"""The node kinds of a graph, each a small loop body over its edges.

A node never blocks inside `step()`: it takes what is waiting on its input
edges, does its stage, sends downstream and returns how much it did. The
runtime decides how the node waits between steps (await, busy-poll or block;
see runtime.py). Each node stamps its stage with the graph's clock:

    feed      ts_recv (ZmqFeed, on arrival), ts_feed (handed to the graph)
    features  ts_features (the instrument's features updated; optional node)
    arbiter   ts_features (taken off its edge, when no features node is
              upstream), ts_request, ts_worker_start/end, ts_answer (the
              workers and the arbiter)
    strategy  ts_decision (decision emitted)

Stopping is by end of stream: the feed sends EOS when its source ends (or on
`stop_intake()`); every other node forwards EOS once everything it accepted
has gone downstream, so a drain loses nothing.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import zmq

from redline.feeds.clock import Clock
from redline.feeds.events import DECISION_DTYPE, RecordType, record_type_of
from redline.feeds.live.zmq_feed import ZmqFeed
from redline.feeds.sequence import SequenceTracker
from redline.pipeline.graph import config as gc
from redline.pipeline.observe.latency import LatencyStats, count_by_origin, count_deadline_misses
from redline.pipeline.transport.zmq_edge import Receiver, Sender
from redline.strategies.signal_trader import ANSWER_DTYPE, SignalTrader

_MAX_BATCHES = 64  # feed batches taken per step, so a burst can't starve the loop
_DECISION_SIZE = DECISION_DTYPE.itemsize
# _emit copies decisions into answers as bytes: the answer must start with the decision's layout.
assert all(ANSWER_DTYPE.fields[f][:2] == DECISION_DTYPE.fields[f][:2] for f in DECISION_DTYPE.names)
_ACCOUNT_ROWS = 256  # the journal node accounts latency once this many decisions wait ...
_ACCOUNT_EVERY_NS = 50_000_000  # ... or the oldest has waited this long (or at stats/end)
_SUBMIT_SLICE = 16  # events the arbiter node submits per step (~50-100 µs each here)


class Node:
    """What the runtime drives. Subclasses set `inputs`, `output` and `step`."""

    kind = ""

    def __init__(self, name: str, spec: gc._NodeSpec, clock: Clock) -> None:
        self.name = name
        self.spec = spec
        self.clock = clock
        self.inputs: list[Receiver] = []
        self.output: Sender | None = None
        self.ending = False  # EOS queued downstream (or, for a sink, consumed)
        self.events = 0  # records taken in

    @property
    def done(self) -> bool:
        """EOS delivered downstream (or consumed): the node's loop may end."""
        return self.ending and (self.output is None or self.output.flush())

    def held_back(self) -> bool:
        """The output edge is full: take in nothing until it drains (backpressure)."""
        return self.output is not None and self.output.blocked and not self.output.flush()

    def step(self) -> int:
        """Do what is waiting; never blocks. Returns the number of records handled."""
        raise NotImplementedError

    def timeout_s(self) -> float | None:
        """How long the node may wait for input before it must step again (None: until input)."""
        if self.output is not None and self.output.blocked:
            return 0.001  # waiting for room downstream: retry soon
        return None

    def wait_sockets(self) -> list[zmq.Socket]:
        """Sockets whose input wakes the node; may change between steps."""
        return [r.socket for r in self.inputs]

    def stop_intake(self) -> None:
        """SIGINT/SIGTERM: only the feed takes in new work; others drain by EOS."""

    def finish(self) -> None:
        """End now (drain timed out): forward EOS so downstream can finish too."""
        if not self.ending:
            self._end()

    def _end(self) -> None:
        if self.output is not None:
            self.output.send_eos()
        self.ending = True

    def close(self) -> None:
        pass

    def stats(self) -> dict[str, Any]:
        return {"kind": self.kind, "events": self.events}


class FeedNode(Node):
    """Ingress from a publisher: sequence-checked, `ts_recv` stamped, forwarded.

    The ingress follows the out edge's policy, so a slow graph never queues
    without limit in this process:
    - `block` (PULL): at most `hwm` messages wait on the socket (RCVHWM); the
      feed stops reading while downstream is full, so a PUSH publisher with a
      send HWM blocks. The publisher must keep its socket open until the graph
      has drained: libzmq discards what is still queued at close once the
      reader's HWM is reached (linger does not help; seen on ipc).
    - `conflate`: the feed is never held back; it drains the socket as fast as
      it is woken and the out edge keeps the latest quote per instrument, so
      what waits is bounded by the instrument count. The socket's own queue
      stays unbounded on purpose: a SUB at its HWM makes the publisher drop
      the newest messages (and the END frame), the opposite of keep-latest.
    Records that never arrive show as sequence gaps and are counted as
    `ingress_drops` on the out edge: no drop is silent. A gap in the source
    itself (e.g. a replay cut by `ts_event` whose seq order differs) counts
    too: the feed cannot tell the two apart.
    """

    kind = "feed"

    def __init__(self, name, spec: gc.FeedNode, clock, ctx: zmq.Context, edge: gc.EdgeSpec) -> None:
        super().__init__(name, spec, clock)
        self.tracker = SequenceTracker()
        self.feed = ZmqFeed(
            spec.source,
            kind=spec.socket,
            context=ctx,
            clock=clock,
            tracker=self.tracker,
            rcvhwm=edge.hwm if edge.policy == "block" else 0,
        )
        self._stopping = False

    @property
    def ingress_drops(self) -> int:
        """Records the sequence numbers say were sent and never arrived (gaps not filled late)."""
        t = self.tracker.totals()
        return t["missing"] - t["out_of_order"]

    def wait_sockets(self) -> list[zmq.Socket]:
        return [self.feed.socket]

    def step(self) -> int:
        n = 0
        # A conflating output never holds the feed back: newer quotes replace waiting ones.
        if not self._stopping and not (self.held_back() and not self.output.conflate):
            # Coalesce what is waiting: one edge message per run of same-type
            # batches (a send is a syscall, ~20-50 µs here; a concatenate is ~1 µs).
            run: list[np.ndarray] = []
            for _ in range(_MAX_BATCHES):
                batch = self.feed.recv_batch(0.0)
                if batch is None:
                    break
                if run and run[0].dtype != batch.records.dtype:
                    self._send(run)
                    run = []
                run.append(batch.records)
                n += len(batch.records)
            if run:
                self._send(run)
        self.events += n
        if not n and not self.ending and (self.feed.ended or self._stopping):
            self._end()
        return n

    def _send(self, run: list[np.ndarray]) -> None:
        records = run[0] if len(run) == 1 else np.concatenate(run)
        self.output.send(records, stamp_ns=self.clock.now_ns())  # ts_feed

    def stop_intake(self) -> None:
        self._stopping = True

    def close(self) -> None:
        self.feed.close()

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "ingress_drops": self.ingress_drops, "feed": self.feed.stats()}


class FeaturesNode(Node):
    """Per-instrument feature state kept current as events pass (the design's
    prefetch stage: what the next decision needs is ready before it is asked
    for); stamps `ts_features` on the records it hands on.

    The state is the workers' own kind, `engine.KernelFeatures` (the numba
    kernel of `kernels/features.py`), updated by every QUOTE and TRADE; other
    records pass through. The workers still keep their own resident copy (a
    failover must not depend on this process), so this node is optional: a
    graph without it stamps `ts_features` in the arbiter.
    """

    kind = "features"

    def __init__(self, name, spec: gc.FeaturesNode, clock) -> None:
        super().__init__(name, spec, clock)
        from redline.kernels.feature_state import KernelFeatures

        self.state = KernelFeatures(spec.max_instruments)
        self._row = np.zeros(self.state.k, np.float32)  # [K] scratch: features after an event
        self._rtypes: dict[np.dtype, int] = {}
        self.updates = 0

    def step(self) -> int:
        rx = self.inputs[0]
        n = 0
        if self.held_back():
            return 0
        for records, _, ts_feed in rx.recv():
            rtype = self._rtypes.get(records.dtype)
            if rtype is None:
                rtype = self._rtypes[records.dtype] = int(record_type_of(records.dtype))
            if rtype in (RecordType.QUOTE, RecordType.TRADE):
                update, row = self.state.update, self._row
                for i in range(len(records)):
                    update(rtype, records[i : i + 1], row)
                self.updates += len(records)
            self.output.send(records, stamp_ns=self.clock.now_ns(), feed_ns=ts_feed)
            n += len(records)
        self.events += n
        if rx.ended and not self.ending:
            self._end()
        return n

    def features(self, instrument_id: int) -> np.ndarray:
        """The instrument's current features (float32 [N_FEATURES]); KeyError if never seen."""
        return self.state.state.features(self.state.inst.index[instrument_id])

    def stats(self) -> dict[str, Any]:
        st = self.state
        rejected = sum(st.state.rejected(r) for r in st.inst.index.values())
        return {
            **super().stats(),
            "updates": self.updates,
            "instruments": len(st.inst.index),
            "rejected": rejected,
        }


class ArbiterNode(Node):
    """Every event of the selected instruments to both workers (all events when
    `instruments` is empty); a decision asked for each of their quotes.

    The arbiter (workers' `Arbiter`) is injected: the runtime builds it with
    its worker processes (see runtime.build_arbiter).
    """

    kind = "arbiter"

    def __init__(self, name, spec: gc.ArbiterNode, clock, arbiter) -> None:
        super().__init__(name, spec, clock)
        self.arb = arbiter
        self._decide_on = frozenset(spec.instruments)
        self._decide_ids = np.array(sorted(self._decide_on), np.uint32)
        self.filtered = 0  # events of other instruments, not sent to the workers
        self._quote: dict[int, tuple[int, int]] = {}  # instrument -> latest (bid, ask)
        self.asked = 0
        self.answered = 0
        # (records, ts_feed, ts_features or 0 = stamp when taken, next)
        self._backlog: deque[tuple[np.ndarray, int, int, int]] = deque()
        self.killed_pid = 0
        self._rtypes: dict[np.dtype, int] = {}

    def wait_sockets(self) -> list[zmq.Socket]:
        socks = [r.socket for r in self.inputs]
        # A restarted worker gets a new socket: the runtime re-reads this list.
        socks += [s for s in (getattr(link, "sock", None) for link in self.arb.links) if s]
        return socks

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

    def _submit(self, records: np.ndarray, ts_feed: int, taken: int) -> None:
        rtype = self._rtypes.get(records.dtype)
        if rtype is None:  # structured dtype equality is slow: look each dtype up once
            rtype = self._rtypes[records.dtype] = int(record_type_of(records.dtype))
        is_quote = rtype == RecordType.QUOTE
        if not is_quote and rtype not in (
            RecordType.TRADE,
            RecordType.BOOK_DELTA,
            RecordType.SENSOR,
        ):
            return
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
        self.arb.submit_batch(records, decide=decide, ts_feed=ts_feed, ts_features=taken,
                              rtype=rtype)  # fmt: skip
        self.asked += sum(decide)

    def _emit(self, batch) -> int:
        recs = batch.records
        n = len(recs)
        if not n:
            return 0
        self.answered += n
        out = np.empty(n, ANSWER_DTYPE)
        # ANSWER_DTYPE is DECISION_DTYPE plus two fields at the end: copy the decisions as
        # raw bytes, one memcpy instead of one strided copy per field.
        out.view(np.uint8).reshape(n, -1)[:, :_DECISION_SIZE] = (
            np.ascontiguousarray(recs).view(np.uint8).reshape(n, -1)
        )
        out["score"] = batch.outputs[:, 0]
        quote = self._quote
        px = [quote.get(inst, (0, 0)) for inst in recs["instrument_id"].tolist()]
        out["bid_px"] = [p[0] for p in px]
        out["ask_px"] = [p[1] for p in px]
        self.output.send(out, stamp_ns=self.clock.now_ns())
        return n

    def kill_worker(self, index: int = 0) -> int:
        """Chaos: SIGKILL worker `index` (0 = A) as a crash would; returns its pid."""
        import os
        import signal

        pid = self.arb.links[index].pid
        if pid:
            os.kill(pid, signal.SIGKILL)
            self.killed_pid = pid
        return pid or 0

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
            "arbiter": self.arb.stats(),
        }


class StrategyNode(Node):
    """Answers -> decisions (SignalTrader); stamps `ts_decision` as it emits."""

    kind = "strategy"

    def __init__(self, name, spec: gc.StrategyNode, clock) -> None:
        super().__init__(name, spec, clock)
        self.trader = SignalTrader(spec, clock)
        self.decisions = 0

    def step(self) -> int:
        rx = self.inputs[0]
        n = 0
        if self.held_back():
            return 0
        for answers, _, _ in rx.recv():
            out = self.trader.decide(answers)
            out["ts_decision"] = now = self.clock.now_ns()
            if self.output is not None:
                self.output.send(out, stamp_ns=now)
            n += len(out)
        self.events += n
        self.decisions += n
        if rx.ended and not self.ending:
            self._end()
        return n

    def stats(self) -> dict[str, Any]:
        t = self.trader
        return {
            **super().stats(),
            "decisions": self.decisions,
            "reasons": {r.name.lower(): c for r, c in t.counts.items()},
            "positions": dict(t.position),
            "halted": sorted(t.halted),
        }


class JournalNode(Node):
    """Sink: every decision journaled (if a path is set), counted and timed."""

    kind = "journal"

    def __init__(self, name, spec: gc.JournalNode, clock, on_decisions=()) -> None:
        super().__init__(name, spec, clock)
        self.latency = LatencyStats()
        self.by_origin: dict[str, int] = {}
        self.deadline_misses = 0
        self.listeners = list(on_decisions)  # e.g. Metrics.observe_decisions
        # Latency and origin counts are accounted in chunks: LatencyStats.record is ~60 numpy
        # calls whatever the batch size, and the decisions mostly come one at a time.
        self._pending: list[np.ndarray] = []
        self._n_pending = 0
        self._pending_since = 0
        self.journal = None
        if spec.path:
            from redline.pipeline.observe.journal import Journal

            self.journal = Journal(
                spec.path, clock=clock, flush_interval_ns=spec.flush_interval_ms * 1_000_000
            )

    def timeout_s(self) -> float | None:
        t = self.spec.flush_interval_ms / 1000 if self.journal is not None else None
        if self._pending:
            t = _ACCOUNT_EVERY_NS / 1e9 if t is None else min(t, _ACCOUNT_EVERY_NS / 1e9)
        return t

    def step(self) -> int:
        rx = self.inputs[0]
        n = 0
        for decisions, _, _ in rx.recv():
            if self.journal is not None:
                self.journal.append(decisions)
            if not self._pending:
                self._pending_since = self.clock.monotonic_ns()
            self._pending.append(decisions)  # owns its received frame: safe to keep
            self._n_pending += len(decisions)
            for fn in self.listeners:
                fn(decisions)
            n += len(decisions)
        if self._pending and (
            self._n_pending >= _ACCOUNT_ROWS
            or self.clock.monotonic_ns() - self._pending_since >= _ACCOUNT_EVERY_NS
        ):
            self._account()
        self.events += n
        if self.journal is not None and not n:
            self.journal.maybe_flush()
        if rx.ended and not self.ending:
            self._end()
        return n

    def _account(self) -> None:
        """Latency histograms, origin and deadline-miss counts of the pending decisions."""
        if not self._pending:
            return
        decisions = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        self._pending.clear()
        self._n_pending = 0
        self.latency.record(decisions)
        for k, v in count_by_origin(decisions).items():
            self.by_origin[k] = self.by_origin.get(k, 0) + v
        self.deadline_misses += count_deadline_misses(decisions)

    def _end(self) -> None:
        self._account()
        if self.journal is not None:
            self.journal.close()
        self.ending = True

    def close(self) -> None:
        if self.journal is not None and not self.ending:
            self.journal.close()

    def stats(self) -> dict[str, Any]:
        self._account()
        return {
            **super().stats(),
            "decisions": self.events,
            "decisions_by_origin": dict(self.by_origin),
            "deadline_misses": self.deadline_misses,
            "journal": str(self.journal.path) if self.journal is not None else None,
            **self.latency.summary(),
        }
